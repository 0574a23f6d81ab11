// The seams between the engine and a database. The engine (src/engine) decides
// policy — when to copy, when to apply, when to cut over — and only ever talks
// to a database through these interfaces. Each dialect (src/dialects/mysql,
// src/dialects/postgres) implements them and writes all of the SQL.
//
// Values travel as the database wrote them (string, Buffer, bigint, null):
// never through a JS number or Date, so nothing is rounded or moved in time.
//
// Optional members are what one dialect really lacks (the interface says which); what
// every dialect has is required, and a difference of behaviour is a flag
// (matchesByContainedKey, streamHoldsServerLog) rather than a missing member.
//
// This file holds the DialectSession (what one job gets from a database) and re-exports
// the seam's parts, one file a role in seams/: table, copy, stream, cutover, checksum,
// preflight, leftovers, probes, revert. Which dialects exist, and what they provide besides a
// session: registry.ts.

import type { Logger } from '../util/logger.js';
import type { ConnectionConfig } from '../util/connection-url.js';
import type { Checksummer } from './seams/checksum.js';
import type { CopyPlan, RowCopier } from './seams/copy.js';
import type { Cutover, ObservedWait } from './seams/cutover.js';
import type { ArtefactLeft, Leftover } from './seams/leftovers.js';
import type { PreflightCheck } from './seams/preflight.js';
import type { LoadProbes } from './seams/probes.js';
import type { RevertSupport } from './seams/revert.js';
import type { Applier, ChangeStream, CheckpointStore, StreamPosition, StreamPositionProblem } from './seams/stream.js';
import type { AlterAnalysis, ArtefactNames, DialectName, ServerInfo, TableInfo, TableRef } from './seams/table.js';

export * from './seams/table.js';
export * from './seams/copy.js';
export * from './seams/stream.js';
export * from './seams/cutover.js';
export * from './seams/checksum.js';
export * from './seams/preflight.js';
export * from './seams/leftovers.js';
export * from './seams/probes.js';
export * from './seams/revert.js';

/** Everything one job needs from a database, opened from a URL. */
export interface DialectSession {
  readonly name: DialectName;
  readonly server: ServerInfo;
  /** The applier can match rows on a key the shadow holds unique only inside a wider unique index (CopyPlan.keyWithin). */
  readonly matchesByContainedKey: boolean;
  /**
   * The change stream keeps the server's log until it is acknowledged (a PostgreSQL
   * replication slot holds WAL on the server's disk): every job bounds it (--max-slot-lag).
   */
  readonly streamHoldsServerLog: boolean;
  /** Column names that differ only in letter case name one column (MySQL), or two (PostgreSQL). */
  readonly columnNamesIgnoreCase: boolean;
  /** Quotes one identifier; the only way identifiers reach SQL. */
  quoteIdentifier(name: string): string;
  /** Resolves a user-given table name against the connection's default database/schema. */
  resolveTable(name: string): TableRef;
  /** The result's `ref` is the table's name as the server stores it, which may differ from `ref` in letter case. */
  inspectTable(ref: TableRef): Promise<TableInfo | null>;
  analyzeAlter(alter: string): AlterAnalysis;
  preflightChecks(): PreflightCheck[];
  /**
   * Resumable jobs get names `cleanup` can tell apart (their slot is kept on purpose).
   * With `alter`, also the job's own names for what the ALTER names where names are per
   * schema (PostgreSQL indexes), which the cut-over renames to the names asked for.
   */
  artefactNames(table: TableRef, jobId: string, options?: { resumable?: boolean; alter?: string }): ArtefactNames;
  /** Compares original and shadow before the cut-over. */
  checksummer: Checksummer;
  /** Where resumable jobs keep their checkpoints. */
  checkpoints: CheckpointStore;
  /**
   * Takes the per-table job lock (MySQL GET_LOCK, PostgreSQL advisory lock) held for
   * the job's life; throws a ShadowshiftError naming the table if another job has it.
   */
  acquireJobLock(table: TableRef): Promise<void>;
  releaseJobLock(table: TableRef): Promise<void>;
  /** Rejects if the job lock is lost for good (its connection dropped and another job took it). */
  jobLockLost(table: TableRef): Promise<never>;
  /**
   * Applies the ALTER to a temporary, session-private copy of the definition
   * (no visible artefact, nothing written to the log) and describes the result.
   * A syntax error throws a ShadowshiftError carrying the server's message.
   */
  previewShadow(original: TableInfo, alter: string): Promise<TableInfo>;
  /**
   * Creates the shadow (and the dialect's changelog artefacts) with the ALTER applied.
   * With `deferIndexes` (only where `finishShadow` exists) the shadow's secondary
   * indexes are left out until finishShadow() builds them after the copy.
   */
  createShadow(original: TableInfo, alter: string, names: ArtefactNames, options?: { deferIndexes?: boolean }): Promise<TableInfo>;
  /**
   * Builds the indexes createShadow({ deferIndexes: true }) left out; a no-op when there
   * are none. When `signal` aborts, the statement running is cancelled and no other starts.
   * Optional: a dialect without it builds the shadow's indexes with the table.
   */
  finishShadow?(shadow: TableRef, options?: { signal?: AbortSignal }): Promise<TableInfo>;
  /**
   * Why building the indexes after the copy would hurt beyond the job (MySQL: the build
   * replicates as one statement and stalls every replica for its length), or null. Without
   * --defer-indexes a concern keeps them built with the table.
   */
  indexDeferralConcern?(): Promise<string | null>;
  /**
   * What the job's own sessions wait for on other sessions right now (a lock, a row
   * lock, CREATE INDEX CONCURRENTLY waiting for old snapshots), or null. Only sessions
   * outside the job count as blockers: the job waiting on itself (the MySQL cut-over's
   * RENAME queued behind its own LOCK TABLES) is no wait to report. `tables` are the
   * job's tables, for a server that does not say which table a session waits for.
   * Polled by the engine only while the job runs an operation that can wait.
   */
  observeWaits(tables: TableRef[]): Promise<ObservedWait | null>;
  /**
   * Drops the shadow (unless `keepShadow`: a revert's target is the user's old table) and
   * the changelog artefacts (the stream's slot and publication unless `keepStream`), never the original: each one on its own,
   * waiting at most `lockTimeoutMs` for its lock, so one that another session holds does
   * not keep the others. Returns what is still there and why ([] when all is gone); it
   * does not throw for a drop that failed.
   */
  dropArtefacts(names: ArtefactNames, opts: { keepBackup: boolean; keepShadow?: boolean; keepStream?: boolean; lockTimeoutMs?: number }): Promise<ArtefactLeft[]>;
  /**
   * With `exportCopySnapshot`, where the dialect can: a new stream exports the snapshot of
   * its start for the copy (ChangeStream.copySnapshotState).
   */
  openChangeStream(plan: CopyPlan, names: ArtefactNames, jobId: string, options?: { exportCopySnapshot?: boolean }): ChangeStream;
  /** Throttle probes for one job. */
  openProbes(names: ArtefactNames): LoadProbes;
  copier: RowCopier;
  applier: Applier;
  cutover: Cutover;
  /** Every artefact of shadowshift in this database, for `cleanup`. */
  listLeftovers(): Promise<Leftover[]>;
  removeLeftover(item: Leftover): Promise<void>;
  /**
   * Before a resume (the job lock held): ends, on the server, the statements a stopped run of
   * the job may still be running on its artefacts (a SIGKILLed client's session runs its last
   * statement to the end, holding its locks: a chunk, an index build, a RENAME, the cut-over's
   * lock request on `table`). Returns the session ids ended.
   */
  endStoppedRun(names: ArtefactNames, table: TableRef): Promise<number[]>;
  /**
   * Before a resume (nothing created or applied yet): why the change stream cannot continue
   * from `position` (a checkpoint's, its artefacts `names`), with what would let a later job
   * resume, or null when it can. Asked here because the stream itself fails only once the job
   * is under way, and in the server's words, which name no way out. MySQL: the binary log is
   * gone; PostgreSQL: the slot or publication is gone, or the server invalidated the slot.
   */
  streamPositionProblem?(position: StreamPosition, names: ArtefactNames): Promise<StreamPositionProblem | null>;
  /** Undoing a finished ALTER (`revert`); absent where it is not built (PostgreSQL, so far). */
  readonly revert?: RevertSupport;
  close(): Promise<void>;
}

export interface DialectFactory {
  open(config: ConnectionConfig, log: Logger): Promise<DialectSession>;
}
