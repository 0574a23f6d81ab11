// What an online ALTER may be told, in one shape for every way in: `alter`, the
// engine ALTERs of `migrate`, `demo` (through `alter`) and the library. The CLI
// builds it once (src/cli/engine-options.ts); the defaults live here only, so a
// flag left out means the same thing whichever command runs the engine.

import type { ThrottleConfig } from '../control/throttle-signals.js';
import type { ConnectionConfig } from '../util/connection-url.js';
import type { Logger } from '../util/logger.js';
import type { HookRunner } from '../control/hooks.js';
import { DEFAULT_CHECKPOINT_INTERVAL_SECONDS, DEFAULT_CHECKPOINT_MAX_AGE_SECONDS } from './checkpointing.js';
import type { AlterJobOptions, JobObserver } from './job.js';
import { DEFAULT_REVERT_WINDOW_SECONDS } from './revert-point.js';

export interface CopySettings {
  /** Target duration of one chunk; the chunk size adapts to it. */
  chunkTimeMs: number;
  /** Fixed rows per chunk; turns adaptation off. */
  chunkSize?: number;
  /**
   * Build the shadow's secondary indexes after the copy, where the dialect can. Unset:
   * unless the dialect sees a cost beyond the job (MySQL: replicas would stall on the
   * build); false: never; true: even then.
   */
  deferIndexes?: boolean;
  /**
   * PostgreSQL: how long the copy may read at the stream's snapshot, without row locks,
   * before the rest reads current data under them (the snapshot holds back vacuum); 0:
   * never. Also ended when the slot holds more than the slot-lag limit.
   */
  snapshotMaxSeconds: number;
  /**
   * Lock the rows each chunk reads, from the first chunk: MySQL `LOCK IN SHARE MODE` instead
   * of a consistent read after a marker commit; PostgreSQL as snapshotMaxSeconds 0.
   */
  rowLocks: boolean;
  /** Chunks copied at once, each on its own connection (consecutive ranges; the stream is applied between rounds). */
  threads: number;
  /** After each chunk (or round) the copy rests this many times as long as it took; 0: no rest (LiveThrottleSettings.niceRatio). */
  niceRatio: number;
}

export interface CutoverSettings {
  /** How long one attempt may block writes. */
  lockTimeoutMs: number;
  retries: number;
  /** End the sessions blocking the cut-over's lock after this long; off when absent. */
  killBlockersAfterMs?: number;
  /** PostgreSQL: how long an attempt waits for snapshots older than the shadow's rows (0: only warn). */
  snapshotWaitMs: number;
  dropOldTable: boolean;
  /** Record, at the swap, what `shadowshift revert` needs to undo the ALTER without losing a write. */
  revertible: boolean;
  /** How long after the swap a revert stays allowed. */
  revertWindowSeconds: number;
  /** While this file exists the cut-over waits (changes keep being applied). */
  postponeFlagFile?: string;
}

export interface ChecksumSettings {
  /** Compare original and shadow before the cut-over, where the dialect can. */
  enabled: boolean;
  /** While postponed, compare again this often. */
  intervalSeconds: number;
}

export interface ResumeSettings {
  /** Keep the job's state on a failure or signal so a resume can continue it. */
  resumable: boolean;
  /** Continue the job recorded in the table's checkpoint. */
  resume: boolean;
  /**
   * Continue the table's checkpoint when it is for this same ALTER, else start anew:
   * `migrate up` run again after a crash, which cannot be told to resume.
   */
  resumeIfSameAlter: boolean;
  checkpointIntervalSeconds: number;
  /** An older checkpoint is refused: the binlog/WAL it needs may be gone. */
  checkpointMaxAgeSeconds: number;
}

export interface ThrottleSettings {
  /** Fixed for the run: flag file, query, critical load, replicas and their heartbeat. */
  signals: Partial<ThrottleConfig>;
  /** Replica lag (seconds) above which the copy pauses. */
  maxLagSeconds: number;
  /** Read live: a change to this map (ctl, a runner's backfills) reaches a running job. */
  maxLoad: Map<string, number>;
  /** PostgreSQL: WAL bytes the job's slot may hold back; the engine's default when absent. */
  maxSlotLagBytes?: number;
}

export interface EngineSettings {
  copy: CopySettings;
  cutover: CutoverSettings;
  checksum: ChecksumSettings;
  resume: ResumeSettings;
  throttle: ThrottleSettings;
}

/** Any part of any group; what is left out takes its default. */
export type EngineSettingsInput = { [G in keyof EngineSettings]?: Partial<EngineSettings[G]> };

/** Also the default of a job built without settings (AlterJobOptions.copySnapshotMaxSeconds absent). */
export const DEFAULT_COPY_SNAPSHOT_MAX_SECONDS = 600;
export const DEFAULT_COPY_THREADS = 1;
/**
 * A MySQL chunk (and a PostgreSQL one once it locks rows) holds its rows for this long:
 * against 500 ms, 200 cut the application's p99 by about 30% at no cost in total time
 * under load (bench/RESULTS.md, P4-CT).
 */
export const DEFAULT_CHUNK_TIME_MS = 200;

/** A new object each time: the maxLoad map is live state a caller may change. */
export function defaultEngineSettings(): EngineSettings {
  return {
    copy: { chunkTimeMs: DEFAULT_CHUNK_TIME_MS, rowLocks: false, snapshotMaxSeconds: DEFAULT_COPY_SNAPSHOT_MAX_SECONDS, threads: DEFAULT_COPY_THREADS, niceRatio: 0 },
    cutover: { lockTimeoutMs: 3000, retries: 10, snapshotWaitMs: 60_000, dropOldTable: false, revertible: false, revertWindowSeconds: DEFAULT_REVERT_WINDOW_SECONDS },
    checksum: { enabled: true, intervalSeconds: 600 },
    resume: {
      resumable: false,
      resume: false,
      resumeIfSameAlter: false,
      checkpointIntervalSeconds: DEFAULT_CHECKPOINT_INTERVAL_SECONDS,
      checkpointMaxAgeSeconds: DEFAULT_CHECKPOINT_MAX_AGE_SECONDS,
    },
    throttle: { signals: {}, maxLagSeconds: 1.5, maxLoad: new Map() },
  };
}

export function engineSettings(input: EngineSettingsInput = {}): EngineSettings {
  const d = defaultEngineSettings();
  return {
    copy: { ...d.copy, ...input.copy },
    cutover: { ...d.cutover, ...input.cutover },
    checksum: { ...d.checksum, ...input.checksum },
    resume: { ...d.resume, ...input.resume },
    throttle: { ...d.throttle, ...input.throttle },
  };
}

/** What one job needs besides its settings. */
export interface JobTarget {
  connection: ConnectionConfig;
  table: string;
  alter: string;
  log: Logger;
  hooks?: HookRunner;
  observer?: JobObserver;
  /** Undo the table's last revertible ALTER (`alter` is not used). */
  revert?: boolean;
}

/** The job's own options from the settings (AlterJob reads a flat shape; see docs/ARCHITECTURE.md). */
export function alterJobOptions(settings: EngineSettings, target: JobTarget): AlterJobOptions {
  const { copy, cutover, checksum, resume, throttle } = settings;
  return {
    ...target,
    chunkTimeMs: copy.chunkTimeMs,
    chunkSize: copy.chunkSize,
    deferIndexes: copy.deferIndexes,
    copySnapshotMaxSeconds: copy.snapshotMaxSeconds,
    copyRowLocks: copy.rowLocks,
    copyThreads: copy.threads,
    copyNiceRatio: copy.niceRatio,
    cutoverLockTimeoutMs: cutover.lockTimeoutMs,
    cutoverRetries: cutover.retries,
    killBlockersAfterMs: cutover.killBlockersAfterMs,
    cutoverSnapshotWaitMs: cutover.snapshotWaitMs,
    dropOldTable: cutover.dropOldTable,
    revertible: cutover.revertible,
    revertWindowSeconds: cutover.revertWindowSeconds,
    postponeCutoverFlagFile: cutover.postponeFlagFile,
    checksum: checksum.enabled,
    checksumIntervalSeconds: checksum.intervalSeconds,
    resumable: resume.resumable,
    resume: resume.resume,
    resumeIfSameAlter: resume.resumeIfSameAlter,
    checkpointIntervalSeconds: resume.checkpointIntervalSeconds,
    checkpointMaxAgeSeconds: resume.checkpointMaxAgeSeconds,
    throttle: throttle.signals,
    maxLagSeconds: throttle.maxLagSeconds,
    maxLoad: throttle.maxLoad,
    maxSlotLagBytes: throttle.maxSlotLagBytes,
  };
}
