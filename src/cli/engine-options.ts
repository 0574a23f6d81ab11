// The online engine's flags, declared once for `alter` and `migrate` (and so for
// `demo`, which runs `alter`'s parser), and turned into EngineSettings
// (src/engine/settings.ts) once: a flag means the same, with the same default and
// the same rule, whichever command takes it.

import type { Argv } from 'yargs';
import { parseLoadThresholds } from '../control/throttler.js';
import { UsageError } from '../util/errors.js';
import { DEFAULT_CHUNK_TIME_MS, engineSettings, type EngineSettings } from '../engine/settings.js';

export const THROTTLE_GROUP = 'Throttling:';

/**
 * The one rule set for numeric flags. Each message names the flag, what it must
 * be and what was given, so the fix is plain.
 *   positive:     > 0
 *   zero-or-more: >= 0 (0 turns the thing off or means "at once")
 *   whole:        a whole number >= 1, of `unit`
 */
export function checkNumber(flag: string, value: number | undefined, rule: 'positive' | 'zero-or-more' | 'whole', unit = ''): void {
  if (value === undefined) return;
  const finite = Number.isFinite(value);
  if (rule === 'positive' && !(finite && value > 0)) throw new UsageError(`--${flag} must be a positive number (got ${value})`);
  if (rule === 'zero-or-more' && !(finite && value >= 0)) throw new UsageError(`--${flag} must be 0 or more${unit ? ` ${unit}` : ''} (got ${value})`);
  if (rule === 'whole' && !(Number.isInteger(value) && value >= 1)) throw new UsageError(`--${flag} must be a whole number of ${unit} >= 1 (got ${value})`);
}

export interface EngineWording {
  /** What pauses, e.g. "the copy" or "backfills and engine copies". */
  pauses: string;
  /** What crossing --critical-load does. */
  critical: string;
  /** Help heading for the engine's flags when the command has other work too (`migrate`). */
  group?: string;
}

const ENGINE_FLAGS = [
  'chunk-time', 'chunk-size', 'defer-indexes', 'copy-snapshot-max', 'copy-row-locks', 'copy-threads', 'nice-ratio', 'cutover-lock-timeout', 'cutover-retries', 'cutover-snapshot-wait', 'kill-blockers-after',
  'drop-old-table', 'revertible', 'revert-window', 'checksum', 'checksum-interval', 'checkpoint-interval', 'checkpoint-max-age',
];

export function withEngineOptions<T>(y: Argv<T>, words: EngineWording) {
  const grouped = words.group ? y.group(ENGINE_FLAGS, words.group) : y;
  return grouped
    .option('chunk-time', { type: 'number', default: DEFAULT_CHUNK_TIME_MS, describe: 'target milliseconds per copy chunk (the chunk size adapts); a chunk that locks rows holds them that long' })
    .option('chunk-size', { type: 'number', describe: 'fixed rows per chunk (turns adaptation off)' })
    .option('defer-indexes', {
      type: 'boolean',
      describe:
        "build the new table's secondary indexes after the copy, which is faster (--no-defer-indexes: before it). Default: after, except on MySQL/MariaDB when replicas may read the binlog, which would apply the build as one statement",
    })
    .option('copy-threads', { type: 'number', default: 1, describe: 'chunks copied at once, each on its own connection (more load on the server, a shorter copy)' })
    .option('nice-ratio', { type: 'number', default: 0, describe: 'after each chunk, rest this many times as long as the chunk took (0.5: a 200 ms chunk, then 100 ms of rest), leaving the application more of the server at the cost of a longer copy; `ctl set nice-ratio=N` changes it live' })
    .option('copy-snapshot-max', { type: 'number', default: 600, describe: 'PostgreSQL: seconds the copy may read the table as of the job\'s start, without row locks (this holds back vacuum); then it locks rows as it copies. 0: always lock rows' })
    .option('copy-row-locks', { type: 'boolean', default: false, describe: 'lock the rows each chunk reads, as gh-ost does (MySQL: instead of a consistent read; PostgreSQL: as --copy-snapshot-max 0). Application writes to those rows wait for the chunk' })
    .option('cutover-lock-timeout', { type: 'number', default: 3, describe: 'seconds the cut-over may block writes per attempt' })
    .option('cutover-retries', { type: 'number', default: 10, describe: 'cut-over attempts before giving up' })
    .option('cutover-snapshot-wait', { type: 'number', default: 60, describe: 'PostgreSQL: seconds a cut-over attempt waits for transactions whose snapshot is older than the new table\'s rows (they would read it empty); 0 only warns' })
    .option('kill-blockers-after', { type: 'number', describe: 'seconds; end the sessions that block the cut-over\'s lock after this long, logging each (off by default)' })
    .option('drop-old-table', { type: 'boolean', default: false, describe: 'drop the original after cut-over instead of keeping it as a backup' })
    .option('revertible', { type: 'boolean', default: false, describe: 'keep the way back open: record at the swap what `shadowshift revert` (or `migrate down` of a migration without a down phase) needs to undo the ALTER without losing a write; keeps the old table, and on PostgreSQL a replication slot, for --revert-window' })
    .option('revert-window', { type: 'number', default: 86400, describe: 'seconds after the swap during which the revert is allowed (MySQL/MariaDB: keep the binlog at least this long)' })
    .option('checksum', { type: 'boolean', default: true, describe: 'compare original and shadow chunk by chunk before the cut-over (--no-checksum to skip)' })
    .option('checksum-interval', { type: 'number', default: 600, describe: 'while postponed, checksum again every this many seconds' })
    .option('checkpoint-interval', { type: 'number', default: 5, describe: 'seconds between checkpoints (every job writes them; also at every phase change): a crash re-copies at most this much work' })
    .option('checkpoint-max-age', { type: 'number', default: 604800, describe: 'refuse to resume from a checkpoint older than this many seconds' })
    .group(['throttle-flag-file', 'throttle-query', 'max-load', 'critical-load', 'critical-load-hibernate', 'throttle-replicas', 'max-lag', 'heartbeat-interval', 'max-slot-lag'], THROTTLE_GROUP)
    .option('throttle-flag-file', { type: 'string', describe: `pause ${words.pauses} while this file exists` })
    .option('throttle-query', { type: 'string', describe: `pause ${words.pauses} while this query returns a value > 0` })
    .option('max-load', { type: 'string', describe: `pause ${words.pauses} while a status value reaches a threshold, e.g. Threads_running=25 (PostgreSQL: active_backends=20)` })
    .option('critical-load', { type: 'string', describe: `${words.critical} when a threshold is crossed twice in a row` })
    .option('critical-load-hibernate', { type: 'number', describe: 'instead of stopping on critical load, pause everything for this many seconds' })
    .option('throttle-replicas', { type: 'string', describe: `comma-separated replica URLs whose lag throttles ${words.pauses}` })
    .option('max-lag', { type: 'number', default: 1.5, describe: `pause ${words.pauses} while a replica is more than this many seconds behind` })
    .option('heartbeat-interval', { type: 'number', default: 100, describe: 'milliseconds between heartbeats written for replica lag' })
    .option('max-slot-lag', { type: 'number', describe: 'PostgreSQL: bytes of WAL the job\'s slot may hold back before the copy pauses (default 1 GiB)' });
}

/** Flags for one job an operator starts and watches: `alter` has them, `migrate` resumes and postpones nothing by hand. */
export function withSingleJobOptions<T>(y: Argv<T>) {
  return y
    .option('postpone-cutover-flag-file', { type: 'string', describe: 'while this file exists, wait before cut-over (changes keep being applied)' })
    .option('resumable', { type: 'boolean', default: false, describe: 'on failure or SIGTERM keep the state (shadow, slot, checkpoint) so --resume can continue; every job writes checkpoints, so a crash (SIGKILL) always leaves a resumable state' })
    .option('resume', { type: 'boolean', default: false, describe: 'continue the job recorded in the table\'s checkpoint (same --table and --alter)' });
}

/** The parsed flags withEngineOptions adds, and withSingleJobOptions' when the command has them. */
export interface EngineArgs {
  chunkTime: number;
  chunkSize?: number;
  deferIndexes?: boolean;
  copySnapshotMax: number;
  copyRowLocks: boolean;
  copyThreads: number;
  niceRatio: number;
  cutoverLockTimeout: number;
  cutoverRetries: number;
  cutoverSnapshotWait: number;
  killBlockersAfter?: number;
  dropOldTable: boolean;
  checksum: boolean;
  checksumInterval: number;
  checkpointInterval: number;
  checkpointMaxAge: number;
  throttleFlagFile?: string;
  throttleQuery?: string;
  maxLoad?: string;
  criticalLoad?: string;
  criticalLoadHibernate?: number;
  throttleReplicas?: string;
  maxLag: number;
  heartbeatInterval: number;
  maxSlotLag?: number;
  postponeCutoverFlagFile?: string;
  resumable?: boolean;
  resume?: boolean;
  revertible?: boolean;
  revertWindow?: number;
}

function thresholds(spec: string | undefined, flag: string): Map<string, number> {
  try {
    return parseLoadThresholds(spec, flag);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

const ms = (seconds: number) => Math.round(seconds * 1000);

/** Checks the engine's flags (exit 2 naming the flag) and builds the settings every engine job of the run gets. */
export function engineSettingsFromArgs(args: EngineArgs): EngineSettings {
  checkNumber('chunk-time', args.chunkTime, 'positive');
  checkNumber('chunk-size', args.chunkSize, 'positive');
  checkNumber('chunk-size', args.chunkSize, 'whole', 'rows');
  checkNumber('copy-snapshot-max', args.copySnapshotMax, 'zero-or-more', 'seconds');
  checkNumber('copy-threads', args.copyThreads, 'whole', 'connections');
  checkNumber('nice-ratio', args.niceRatio, 'zero-or-more');
  checkNumber('cutover-lock-timeout', args.cutoverLockTimeout, 'positive');
  checkNumber('cutover-retries', args.cutoverRetries, 'positive');
  checkNumber('kill-blockers-after', args.killBlockersAfter, 'positive');
  checkNumber('cutover-snapshot-wait', args.cutoverSnapshotWait, 'zero-or-more', 'seconds');
  // The wait is counted across attempts (engine/blocker-killer.ts): only a threshold past
  // every attempt's lock wait together can never be reached.
  const longestWait = args.cutoverLockTimeout * args.cutoverRetries;
  if (args.killBlockersAfter !== undefined && args.killBlockersAfter >= longestWait) {
    throw new UsageError(
      `--kill-blockers-after (${args.killBlockersAfter}s) must be shorter than the cut-over's whole wait for its lock, ` +
        `--cutover-lock-timeout × --cutover-retries (${args.cutoverLockTimeout}s × ${args.cutoverRetries} = ${longestWait}s), or it never fires`,
    );
  }
  checkNumber('checkpoint-interval', args.checkpointInterval, 'positive');
  checkNumber('checksum-interval', args.checksumInterval, 'positive');
  checkNumber('checkpoint-max-age', args.checkpointMaxAge, 'positive');
  checkNumber('max-slot-lag', args.maxSlotLag, 'positive');
  checkNumber('max-lag', args.maxLag, 'positive');
  checkNumber('heartbeat-interval', args.heartbeatInterval, 'positive');
  checkNumber('critical-load-hibernate', args.criticalLoadHibernate, 'positive');
  checkNumber('revert-window', args.revertWindow, 'positive', 'seconds');
  if (args.revertible && args.dropOldTable) {
    throw new UsageError('--revertible keeps the old table for the way back, and --drop-old-table would drop it: use one or the other');
  }
  return engineSettings({
    copy: { chunkTimeMs: args.chunkTime, chunkSize: args.chunkSize, deferIndexes: args.deferIndexes, snapshotMaxSeconds: args.copySnapshotMax, rowLocks: args.copyRowLocks, threads: args.copyThreads, niceRatio: args.niceRatio },
    cutover: {
      lockTimeoutMs: ms(args.cutoverLockTimeout),
      retries: args.cutoverRetries,
      killBlockersAfterMs: args.killBlockersAfter === undefined ? undefined : ms(args.killBlockersAfter),
      snapshotWaitMs: ms(args.cutoverSnapshotWait),
      dropOldTable: args.dropOldTable,
      revertible: args.revertible ?? false,
      ...(args.revertWindow === undefined ? {} : { revertWindowSeconds: args.revertWindow }),
      postponeFlagFile: args.postponeCutoverFlagFile,
    },
    checksum: { enabled: args.checksum, intervalSeconds: args.checksumInterval },
    resume: {
      resumable: args.resumable ?? false,
      resume: args.resume ?? false,
      checkpointIntervalSeconds: args.checkpointInterval,
      checkpointMaxAgeSeconds: args.checkpointMaxAge,
    },
    throttle: {
      signals: {
        flagFile: args.throttleFlagFile,
        query: args.throttleQuery,
        criticalLoad: thresholds(args.criticalLoad, '--critical-load'),
        criticalHibernateSeconds: args.criticalLoadHibernate,
        replicaUrls: args.throttleReplicas ? args.throttleReplicas.split(',').map((u) => u.trim()).filter(Boolean) : [],
        heartbeatIntervalMs: args.heartbeatInterval,
      },
      maxLagSeconds: args.maxLag,
      maxLoad: thresholds(args.maxLoad, '--max-load'),
      maxSlotLagBytes: args.maxSlotLag,
    },
  });
}
