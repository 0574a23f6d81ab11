// The seams between the engine and a database. The engine (src/engine) decides
// policy — when to copy, when to apply, when to cut over — and only ever talks
// to a database through these interfaces. Each dialect (src/dialects/mysql,
// src/dialects/postgres) implements them and writes all of the SQL.
//
// Values travel as the database wrote them (string, Buffer, bigint, null):
// never through a JS number or Date, so nothing is rounded or moved in time.

import type { Logger } from '../util/logger.js';
import type { ConnectionConfig } from '../util/connection-url.js';

export type DialectName = 'mysql' | 'postgres';

/** A column value as the database sent it. `undefined` = unchanged (PostgreSQL unchanged TOAST). */
export type Value = string | Buffer | bigint | number | boolean | null | undefined;
export type Row = Record<string, Value>;

export interface TableRef {
  /** Database (MySQL) or schema (PostgreSQL). */
  schema: string;
  name: string;
}

export interface ColumnInfo {
  name: string;
  /** Full type as the server spells it, e.g. `varchar(255)`, `bigint unsigned`, `numeric(12,2)`. */
  type: string;
  nullable: boolean;
  /** Generated (virtual or stored) columns are never copied: the shadow recomputes them. */
  generated: boolean;
}

export interface IndexInfo {
  name: string;
  columns: string[];
  unique: boolean;
  primary: boolean;
}

export interface TableInfo {
  ref: TableRef;
  columns: ColumnInfo[];
  indexes: IndexInfo[];
  estimatedRows: number;
  estimatedBytes: number;
  /** Foreign keys this table declares (child side), by constraint name. */
  foreignKeys: string[];
  /** Foreign keys of other tables that point at this one (parent side), as `table.constraint`. */
  referencedBy: string[];
  triggers: string[];
}

export interface ServerInfo {
  dialect: DialectName;
  /** e.g. `10.11.19-MariaDB`, `8.0.36`, `15.19`. */
  version: string;
  flavor: 'mariadb' | 'mysql' | 'postgres';
}

/** What the ALTER text says about columns, so the engine can map data across. */
export interface AlterAnalysis {
  /** old name -> new name (CHANGE/RENAME COLUMN). */
  renamedColumns: Map<string, string>;
  droppedColumns: Set<string>;
  addedColumns: Set<string>;
  /** The ALTER renames the table itself: refused. */
  renamesTable: boolean;
}

/** Names of every artefact one job may create; derived once from the table and job id. */
export interface ArtefactNames {
  shadow: string;
  /** Where the original ends up after cut-over (kept unless --drop-old-table). */
  backup: string;
  /** Marker/heartbeat table (MySQL) or publication (PostgreSQL) etc. */
  changelog: string;
  /** Replication slot (PostgreSQL), sentry table (MySQL). */
  extra: Record<string, string>;
}

/** An inclusive-exclusive range over the chunk key: (after, upTo]. Tuples for composite keys. */
export interface KeyRange {
  /** Copy rows whose key is strictly greater than this; null = from the start. */
  after: Value[] | null;
  /** Copy rows whose key is less than or equal to this. */
  upTo: Value[];
}

/** A column of the original and the shadow column its data goes to. */
export interface ColumnMap {
  source: string;
  target: string;
}

export interface CopyPlan {
  original: TableInfo;
  shadow: TableInfo;
  /** Key the copy walks and the applier matches rows on; unique and NOT NULL in both tables, in index order. */
  key: ColumnMap[];
  /** Columns whose data is carried across; generated columns and dropped columns excluded. */
  columns: ColumnMap[];
  /**
   * Unique indexes of the shadow that the original does not enforce. A duplicate on
   * one of them is real data loss (never transient), so copier and applier must fail.
   */
  newUniqueIndexes: string[];
}

export interface ChunkResult {
  rowsCopied: number;
}

/** Lets a test hold a chunk's transaction open, to prove invariant 3 deterministically. */
export type BeforeChunkCommit = (range: KeyRange) => Promise<void>;

export interface RowCopier {
  /** Smallest and largest key now in the original, or null when it is empty. */
  keyBounds(plan: CopyPlan): Promise<{ min: Value[]; max: Value[] } | null>;
  /** The key of the `size`-th row after `after` (not beyond `ceiling`), or `ceiling` when fewer rows remain. */
  chunkEnd(plan: CopyPlan, after: Value[] | null, size: number, ceiling: Value[]): Promise<Value[]>;
  /**
   * Copy the rows in `range` into the shadow without overwriting a row the stream
   * already wrote. Must fail (throw DataLossError) rather than drop or alter a
   * row: truncation, NOT NULL over NULL, duplicates on a new unique key.
   */
  copyChunk(plan: CopyPlan, range: KeyRange, beforeCommit?: BeforeChunkCommit): Promise<ChunkResult>;
}

export type ChangeEvent =
  | { kind: 'insert'; after: Row }
  | { kind: 'update'; before: Row | null; after: Row }
  | { kind: 'delete'; before: Row }
  | { kind: 'truncate' };

/** A position in the change stream the dialect can resume from (binlog file:pos, LSN). */
export type StreamPosition = string;

export interface ChangeBatch {
  events: ChangeEvent[];
  /** Applying every event up to and including this batch makes `position` safe to resume from. */
  position: StreamPosition;
  /** Marker ids (written by `ChangeStream.writeMarker`) that this batch passed. */
  markers: string[];
}

export interface ChangeStream {
  /**
   * Begins reading at the current end of the log, or at `from` (a position this
   * stream returned earlier, for a resume). Resolves once the start position is
   * fixed on the server, and returns it.
   */
  start(from?: StreamPosition): Promise<StreamPosition>;
  /** Takes up to `maxEvents` events that have arrived, without waiting. */
  take(maxEvents: number): ChangeBatch | null;
  /** Number of decoded events waiting to be taken. */
  backlog(): number;
  /** Resolves when there is something to take, or after `ms`. */
  waitForData(ms: number): Promise<void>;
  /** Tells the server the changes up to `position` are applied (PostgreSQL acks; MySQL no-op). */
  acknowledge(position: StreamPosition): Promise<void>;
  /** Writes a marker into the log, after every change committed before this call. */
  writeMarker(id: string): Promise<void>;
  /** Seconds between a change committing and it being taken here, when known. */
  lagSeconds(): number | null;
  /** Rejects when the stream has failed; the engine races it against its work. */
  readonly failed: Promise<never>;
  /** Stops reading. With keepForResume the server-side state (PostgreSQL slot, publication) stays for `--resume`. */
  stop(options?: { keepForResume?: boolean }): Promise<void>;
}

/** What a resumable job records every few seconds (DESIGN.md invariant 8). */
export interface Checkpoint {
  version: 1;
  jobId: string;
  table: TableRef;
  alter: string;
  names: ArtefactNames;
  /** Every event up to here is applied to the shadow. */
  streamPosition: StreamPosition;
  /** Every chunk up to this key is copied (encoded by engine/checkpoint-codec); null before the first. */
  watermark: string | null;
  /** The largest key when the copy began (encoded); null for an empty table. */
  ceiling: string | null;
  rowsCopied: number;
  /** ISO time the checkpoint was written, by the job's clock. */
  savedAt: string;
}

export interface CheckpointStore {
  save(checkpoint: Checkpoint): Promise<void>;
  load(table: TableRef): Promise<Checkpoint | null>;
  remove(table: TableRef): Promise<void>;
}

export interface Applier {
  /** Applies events to the shadow in one transaction. Events from the stream win over copied rows. */
  apply(plan: CopyPlan, events: ChangeEvent[]): Promise<void>;
}

export interface CutoverOptions {
  lockTimeoutMs: number;
  /**
   * Called once the original is write-locked: it must apply every change
   * committed before the lock (by writing a marker and draining up to it).
   */
  drainUnderLock: () => Promise<void>;
  /**
   * When set, once the lock has been waited for this long, end the sessions that
   * hold it (logging each one) instead of waiting out the lock timeout.
   */
  killBlockersAfterMs?: number;
  log: Logger;
}

export interface Cutover {
  /**
   * Atomically swaps the shadow in under the original's name and the original
   * out under `names.backup`. Throws CutoverAttemptError after restoring the
   * pre-cut-over state when the lock cannot be had in time; the engine retries.
   */
  swap(plan: CopyPlan, names: ArtefactNames, options: CutoverOptions): Promise<void>;
}

/** One consistent snapshot over the original and the shadow. */
export interface ChecksumView {
  /** Compares the rows of `range` in both tables over the copied columns. */
  compare(range: KeyRange): Promise<{ same: boolean; originalRows: number; shadowRows: number }>;
  close(): Promise<void>;
}

export interface Checksummer {
  /**
   * Blocks writes to the original only while `drainUnderLock` brings the shadow
   * up to date (bounded by lockTimeoutMs), then opens one snapshot that sees
   * both tables at that same moment, and releases the lock.
   */
  open(plan: CopyPlan, options: { lockTimeoutMs: number; drainUnderLock: () => Promise<void> }): Promise<ChecksumView>;
  /** Replaces the shadow's rows in `range` with a fresh copy of the original's (same locking as copyChunk). */
  recopy(plan: CopyPlan, range: KeyRange): Promise<void>;
}

export type CheckPhase = 'connect' | 'table' | 'alter';

export interface PreflightContext {
  table: TableRef;
  /** null in the `connect` phase, and when the table does not exist. */
  info: TableInfo | null;
  alter: AlterAnalysis | null;
  /** The ALTER applied to a temporary copy of the definition (`alter` phase only). */
  plan: CopyPlan | null;
}

export interface CheckResult {
  ok: boolean;
  /** On failure: the cause and the fix, in one or two sentences. */
  message: string;
}

/** One small check; dialects register a list of them (Spirit's check registry). */
export interface PreflightCheck {
  name: string;
  phase: CheckPhase;
  run(ctx: PreflightContext): Promise<CheckResult>;
}

export interface Leftover {
  kind: 'shadow' | 'backup' | 'changelog' | 'sentry' | 'slot' | 'publication';
  name: string;
  /** True when a running job still holds it (it must not be removed). */
  inUse: boolean;
  /** Kept on purpose by a resumable job (`--resume` continues it); removing it throws that job's state away. */
  resumable?: boolean;
}

/** Read-only signals the throttler polls (issue: operator controls). */
export interface LoadProbes {
  /** Numeric server status values by name (MySQL SHOW GLOBAL STATUS; PostgreSQL: active_backends, ...). */
  readStatus(names: string[]): Promise<Record<string, number>>;
  /** Runs the operator's --throttle-query; the first column of the first row as a number (0 when no row). */
  throttleQueryValue(sql: string): Promise<number>;
  /** Writes the heartbeat on the primary (the job's changelog). */
  writeHeartbeat(): Promise<void>;
  /** Seconds the replica at `url` is behind, from the newest heartbeat it has (and, on PostgreSQL, replay lag). */
  replicaLagSeconds(url: string): Promise<number>;
  /** Bytes of log the job's stream holds back on the server (PostgreSQL slot), or null where it does not apply. */
  streamRetainedBytes(): Promise<number | null>;
  close(): Promise<void>;
}

/** Everything one job needs from a database, opened from a URL. */
export interface DialectSession {
  readonly name: DialectName;
  readonly server: ServerInfo;
  /** Quotes one identifier; the only way identifiers reach SQL. */
  quoteIdentifier(name: string): string;
  /** Resolves a user-given table name against the connection's default database/schema. */
  resolveTable(name: string): TableRef;
  inspectTable(ref: TableRef): Promise<TableInfo | null>;
  analyzeAlter(alter: string): AlterAnalysis;
  preflightChecks(): PreflightCheck[];
  /** Resumable jobs get names `cleanup` can tell apart (their slot is kept on purpose). */
  artefactNames(table: TableRef, jobId: string, options?: { resumable?: boolean }): ArtefactNames;
  /** Compares original and shadow before the cut-over; optional until a dialect implements it. */
  checksummer?: Checksummer;
  /** Where resumable jobs keep their checkpoints; optional until a dialect implements it. */
  checkpoints?: CheckpointStore;
  /**
   * Takes the per-table job lock (MySQL GET_LOCK, PostgreSQL advisory lock) held for
   * the job's life; throws a ShadowshiftError naming the table if another job has it.
   */
  acquireJobLock(table: TableRef): Promise<void>;
  releaseJobLock(table: TableRef): Promise<void>;
  /** Rejects if the job lock is lost for good (its connection dropped and another job took it). */
  jobLockLost?(table: TableRef): Promise<never>;
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
  /** Builds the indexes createShadow({ deferIndexes: true }) left out; a no-op when there are none. */
  finishShadow?(shadow: TableRef): Promise<TableInfo>;
  /** Drops the shadow and changelog artefacts; never touches the original. */
  dropArtefacts(names: ArtefactNames, opts: { keepBackup: boolean }): Promise<void>;
  openChangeStream(plan: CopyPlan, names: ArtefactNames, jobId: string): ChangeStream;
  /** Throttle probes for one job; optional until a dialect implements them. */
  openProbes?(names: ArtefactNames): LoadProbes;
  copier: RowCopier;
  applier: Applier;
  cutover: Cutover;
  /** Every artefact of shadowshift in this database, for `cleanup`. */
  listLeftovers(): Promise<Leftover[]>;
  removeLeftover(item: Leftover): Promise<void>;
  close(): Promise<void>;
}

export interface DialectFactory {
  open(config: ConnectionConfig, log: Logger): Promise<DialectSession>;
}
