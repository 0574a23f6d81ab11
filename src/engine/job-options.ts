// What a job is given (AlterJobOptions, built from EngineSettings by settings.ts) and
// what it returns (AlterResult): the engine's public contract, apart from the state
// machine that reads it (job.ts).

import type { BeforeChunkCommit } from '../dialects/dialect.js';
import type { ConnectionConfig } from '../util/connection-url.js';
import type { Logger } from '../util/logger.js';
import type { ThrottleConfig } from '../control/throttle-signals.js';
import type { HookRunner } from '../control/hooks.js';
import type { JobState } from './job-state.js';
import type { ChecksumSummary } from './verifier.js';

export interface AlterJobOptions {
  connection: ConnectionConfig;
  table: string;
  alter: string;
  /** Target duration of one chunk; the chunk size adapts to it. */
  chunkTimeMs: number;
  /** Fixed chunk size; turns adaptation off. */
  chunkSize?: number;
  cutoverLockTimeoutMs: number;
  cutoverRetries: number;
  /** End the sessions that block the cut-over's lock after this long (off by default). */
  killBlockersAfterMs?: number;
  /**
   * PostgreSQL: how long a cut-over attempt waits for transactions whose snapshot is
   * older than the new table's rows (default 60 s; 0: do not wait, only warn).
   */
  cutoverSnapshotWaitMs?: number;
  dropOldTable: boolean;
  /** Record a revert point at the swap, so `shadowshift revert` can undo the ALTER (RevertSupport). */
  revertible?: boolean;
  /** How long after the swap the revert stays allowed (default 24 h). */
  revertWindowSeconds?: number;
  /** Undo the table's last revertible ALTER instead (`alter` is not used): engine/revert-point.ts. */
  revert?: boolean;
  postponeCutoverFlagFile?: string;
  log: Logger;
  throttle?: Partial<ThrottleConfig>;
  /** Replica lag above which the copy pauses (seconds). */
  maxLagSeconds?: number;
  /** Status thresholds above which the copy pauses, e.g. Threads_running=25. */
  maxLoad?: Map<string, number>;
  /** PostgreSQL: WAL bytes the job's slot may hold back before the copy pauses. */
  maxSlotLagBytes?: number;
  hooks?: HookRunner;
  /** Keep the job's state on a failure or signal so `--resume` can continue it (every job writes checkpoints; a crash always leaves them). */
  resumable?: boolean;
  /** Continue the job recorded in the table's checkpoint instead of starting over. */
  resume?: boolean;
  /**
   * Continue the table's checkpoint when it is for this same ALTER (a crashed earlier run of
   * the same step: `migrate up` run again), else start a new job (a checkpoint for another
   * ALTER is then refused at preflight, as without the option).
   */
  resumeIfSameAlter?: boolean;
  checkpointIntervalSeconds?: number;
  /** A checkpoint older than this is refused (the binlog/WAL it needs may be gone). */
  checkpointMaxAgeSeconds?: number;
  /** Compare original and shadow before the cut-over (default on where the dialect supports it). */
  checksum?: boolean;
  /** While postponed, checksum again this often. */
  checksumIntervalSeconds?: number;
  /** Build the shadow's secondary indexes after the copy (CopySettings.deferIndexes). */
  deferIndexes?: boolean;
  /** PostgreSQL: seconds the copy may read at the stream's snapshot without row locks (CopySettings.snapshotMaxSeconds; 0: never). */
  copySnapshotMaxSeconds?: number;
  /** Lock the rows each chunk reads, from the first chunk (CopySettings.rowLocks). */
  copyRowLocks?: boolean;
  /** Chunks copied at once (CopySettings.threads; default 1). */
  copyThreads?: number;
  /** Rest after each chunk, as a multiple of its duration (CopySettings.niceRatio; default 0). */
  copyNiceRatio?: number;
  /** Told about chunks, cut-over attempts and errors (metrics). */
  observer?: JobObserver;
  /** For tests that need a deterministic interleaving (invariants 2 and 3). */
  testHooks?: {
    beforeChunkCommit?: BeforeChunkCommit;
    /** Runs after the shadow exists and just before the change stream reads its start position. */
    beforeStreamStart?: () => Promise<void>;
    /** Runs after the cut-over's wait for older snapshots, before its lock. */
    afterSnapshotWait?: () => Promise<void>;
    /** Runs right after the cut-over's drain, under its lock (a backup arriving mid cut-over). */
    afterCutoverDrain?: (attempt: number) => Promise<void>;
    /** Runs under the cut-over's lock once the swap is ready, before it (MySQL: the shadow has the table's triggers; CutoverOptions.beforeSwapForTests). */
    beforeSwap?: () => Promise<void>;
    /** MySQL: runs right after the RENAME, before the triggers and foreign keys get their own names back (a crash there: test/mysql/triggers.test.ts, test/mysql/foreign-keys-child.test.ts). */
    beforeOwnNames?: () => Promise<void>;
    /** Runs right after the swap, before anything else (a crash there: test/acceptance/resume-phases.test.ts). */
    afterSwap?: () => Promise<void>;
    /** Runs once catching-up is entered and saved, before its first apply (a crash there: test/acceptance/resume-matrix.test.ts). */
    catchingUp?: () => Promise<void>;
    /** Runs after each key range the checksum compared, its snapshot still open (a crash mid-checksum). */
    checksumCompared?: (ranges: number) => Promise<void>;
  };
}

export interface JobObserver {
  /** The job entered `state` (the demo times each state with it). */
  stateChanged?(state: JobState): void;
  chunkCopied?(rows: number, seconds: number): void;
  cutoverAttempt?(result: 'ok' | 'failed', blockedSeconds: number): void;
  error?(where: string): void;
}

/** One observer that tells `first`, then each of `more` (which may change later). */
export function fanOutObserver(first: JobObserver | undefined, more: Set<JobObserver>): JobObserver {
  const tell = <K extends keyof JobObserver>(name: K, ...args: Parameters<NonNullable<JobObserver[K]>>) => {
    for (const o of [first, ...more]) (o?.[name] as ((...a: typeof args) => void) | undefined)?.(...args);
  };
  return {
    stateChanged: (...a) => tell('stateChanged', ...a),
    chunkCopied: (...a) => tell('chunkCopied', ...a),
    cutoverAttempt: (...a) => tell('cutoverAttempt', ...a),
    error: (...a) => tell('error', ...a),
  };
}


export interface AlterResult {
  table: string;
  backupTable: string | null;
  rowsCopied: number;
  eventsApplied: number;
  cutoverAttempts: number;
  /** How long the successful cut-over held application writes to the table (lock request to release). */
  cutoverLockedMs: number;
  seconds: number;
  /** Chunks the checksum found different and recopied, over all its runs in this process; anything but 0 is an engine bug. */
  repairedChunks: number;
  checksum: ChecksumSummary;
}
