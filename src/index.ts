// The programmatic API: what the CLI uses, for tools that embed shadowshift.

export { AlterJob, type AlterJobOptions, type AlterPlanReport, type AlterResult, type JobObserver } from './engine/job.js';
export type { JobState, JobStatus } from './engine/job-state.js';
export { JOB_STATES } from './engine/job-state.js';
export { parseConnectionUrl, resolveUrl, redactUrl, type ConnectionConfig } from './util/connection-url.js';
export { createLogger, silentLogger, type Logger } from './util/logger.js';
export {
  ShadowshiftError,
  UsageError,
  PreflightError,
  DataLossError,
  CutoverAttemptError,
  AbortedError,
  TransientDatabaseError,
} from './util/errors.js';
export { sendControlCommand } from './control/control-client.js';
export type { ControlCommand, ControlReply, ControlRequest } from './control/control-server.js';
