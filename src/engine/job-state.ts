// The job's externally visible state: the control contract other tools rely on.

import type { SessionBlocker } from '../dialects/dialect.js';
import type { SavedCheckpoint } from './checkpointing.js';

export const JOB_STATES = ['preflight', 'copying', 'catching-up', 'postponed', 'cutting-over', 'done', 'failed', 'aborted'] as const;
export type JobState = (typeof JOB_STATES)[number];

/**
 * What the job is doing within its state, finer than `state` (which stays the control
 * contract): the deferred index build and the checksum run inside `copying` and
 * `catching-up`, the cleanup after `done`, `failed` or `aborted`.
 */
export const JOB_PHASES = ['preflight', 'copying', 'building-indexes', 'catching-up', 'checksum', 'postponed', 'cutting-over', 'cleanup', 'done', 'failed', 'aborted'] as const;
export type JobPhase = (typeof JOB_PHASES)[number];

/**
 * What the job waits for outside itself:
 * - `old-snapshots`: transactions whose snapshot is older than something the job needs
 *   (PostgreSQL CREATE INDEX CONCURRENTLY, the cut-over's snapshot wait);
 * - `lock`: a table or metadata lock another session holds (cut-over, checksum, cleanup);
 * - `row-lock`: a row lock another transaction holds (a chunk of the copy);
 * - `replica-lag`: a replica behind by more than --max-lag;
 * - `throttle`: another throttle signal (flag file, max-load, throttle query, slot lag, ctl throttle);
 * - `postpone`: the cut-over is postponed (flag file or ctl postpone).
 */
export type WaitKind = 'old-snapshots' | 'lock' | 'row-lock' | 'replica-lag' | 'throttle' | 'postpone';

/** A session the job waits for. */
export type WaitBlocker = SessionBlocker;

export interface WaitingFor {
  what: WaitKind;
  /** The phase that waits. */
  phase: JobPhase;
  /** When the wait began (ISO 8601). */
  since: string;
  seconds: number;
  /** In words: which statement or signal waits, and on what. */
  detail: string;
  /** The sessions it waits for ([] for throttle signals, or when the server does not say). */
  blockers: WaitBlocker[];
}

export interface JobStatus {
  jobId: string;
  state: JobState;
  /** What the job is doing within its state (see JOB_PHASES). */
  phase: JobPhase;
  /** What the job waits for outside itself right now, or null (see WaitingFor). */
  waitingFor: WaitingFor | null;
  /** The last checkpoint saved (a crash now resumes from it with `--resume`), or null before the first. */
  lastCheckpoint: SavedCheckpoint | null;
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
  /**
   * PostgreSQL: the copy reads at the stream's start without row locks, and the changes
   * since are applied only once it ends (copy-loop.ts): a throttle then pauses both.
   */
  copyAtStreamStart?: boolean;
  etaSeconds: number | null;
  chunkSize: number;
  cutoverAttempts: number;
  /**
   * Chunks the checksum recopied because they differed, over every checksum run of
   * this process (a resumed job counts from zero). A repair means the copy or the
   * stream lost a change: anything but 0 is an engine bug to report.
   */
  repairedChunks: number;
  /**
   * While the cut-over waits for transactions whose snapshot is older than the new
   * table's rows: how long so far, and who (pid, age, user, application, state,
   * statement with literals replaced).
   */
  snapshotWait?: { seconds: number; sessions: Array<{ pid: number; ageSeconds: number | null; user: string | null; application: string | null; state: string | null; query: string }> } | null;
  /** The shadow has been swapped in: the table has the new definition and backupTable holds the old one, even if the job then failed. */
  swapped: boolean;
  error: string | null;
}
