// The job's externally visible state: the control contract other tools rely on.

export const JOB_STATES = ['preflight', 'copying', 'catching-up', 'postponed', 'cutting-over', 'done', 'failed', 'aborted'] as const;
export type JobState = (typeof JOB_STATES)[number];

export interface JobStatus {
  jobId: string;
  state: JobState;
  table: string;
  shadowTable: string | null;
  backupTable: string | null;
  rowsCopied: number;
  rowsEstimated: number;
  /** Copy rate over the recent window, once there is enough history. */
  rowsPerSecond: number | null;
  eventsApplied: number;
  backlog: number;
  lagSeconds: number | null;
  /** Why the copy is paused, or null. */
  throttled: string | null;
  etaSeconds: number | null;
  chunkSize: number;
  cutoverAttempts: number;
  error: string | null;
}
