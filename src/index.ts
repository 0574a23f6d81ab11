// The programmatic API: what the CLI uses, for tools that embed shadowshift.

export { AlterJob, type AlterJobOptions, type AlterPlanReport, type AlterResult, type JobObserver } from './engine/job.js';
export type { JobPhase, JobState, JobStatus, WaitBlocker, WaitingFor, WaitKind } from './engine/job-state.js';
export type { ChecksumSummary } from './engine/verifier.js';
export { alterJobOptions, defaultEngineSettings, engineSettings } from './engine/settings.js';
export type { EngineSettings, EngineSettingsInput, JobTarget } from './engine/settings.js';
export { JOB_PHASES, JOB_STATES } from './engine/job-state.js';
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
