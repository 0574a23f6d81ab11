// The seam between the migration runner (policy: what runs, in which order,
// when to go through the engine) and a database (every statement). Each
// dialect implements it in src/dialects/<dialect>/<dialect>-migration-store.ts.

import type { DialectName } from '../dialects/dialect.js';
import type { ConnectionConfig } from '../util/connection-url.js';
import type { Phase } from './migration-files.js';
import { loadDialect } from '../dialects/registry.js';

/** How far a migration got. `rolled back` makes it pending again. */
export type ReachedPhase = 'expanded' | 'backfilled' | 'contracted' | 'rolled back' | 'baseline';

export interface HistoryRecord {
  version: string;
  name: string;
  checksum: string;
  kind: 'sql' | 'ts' | 'baseline';
  /** Last phase completed; null when the first phase has not completed yet. */
  reached: ReachedPhase | null;
  /** `running` while a runner works on it (or died doing so), `failed` after an error. */
  status: 'running' | 'ok' | 'failed';
  /** The phase being run or that failed; null when idle. */
  currentPhase: Phase | null;
  /** Statements of `currentPhase` completed (a resumed run skips them). */
  statementsDone: number;
  /** SHA-256 of the completed statements' text, so a resume knows they did not change. */
  doneChecksum: string | null;
  /** JSON map phase -> SHA-256 of that phase's text, for each completed phase (a failed migration may be fixed in its later phases only). */
  phaseChecksums: string | null;
  /** Resume point of a batched backfill (JSON), null when none is in progress. */
  backfillCursor: string | null;
  /** user@host of the runner. */
  appliedBy: string;
  host: string;
  startedAt: string | null;
  finishedAt: string | null;
  durationMs: number | null;
  error: string | null;
  failedStatement: string | null;
}

/**
 * A history row as the dialect read it (column names as in the table, values as
 * text) turned into a record; `time` normalises the dialect's timestamp text.
 */
export function historyRecordFromRow(r: Record<string, string | null>, time: (t: string) => string = (t) => t): HistoryRecord {
  return {
    version: String(r.version),
    name: String(r.name),
    checksum: String(r.checksum),
    kind: r.kind as HistoryRecord['kind'],
    reached: (r.reached ?? null) as HistoryRecord['reached'],
    status: r.status as HistoryRecord['status'],
    currentPhase: (r.current_phase ?? null) as HistoryRecord['currentPhase'],
    statementsDone: Number(r.statements_done ?? 0),
    doneChecksum: r.done_checksum ?? null,
    phaseChecksums: r.phase_checksums ?? null,
    backfillCursor: r.backfill_cursor ?? null,
    appliedBy: String(r.applied_by),
    host: String(r.host),
    startedAt: r.started_at ? time(r.started_at) : null,
    finishedAt: r.finished_at ? time(r.finished_at) : null,
    durationMs: r.duration_ms === null || r.duration_ms === undefined ? null : Number(r.duration_ms),
    error: r.error ?? null,
    failedStatement: r.failed_statement ?? null,
  };
}

export interface ColumnDetail {
  name: string;
  /** Full type as the server spells it: `int(11)`, `character varying(20)`. */
  type: string;
  nullable: boolean;
  /** Default expression as the server shows it, or null. */
  defaultExpr: string | null;
}

export interface TableStats {
  schema: string;
  name: string;
  /** Estimate from the server's statistics (information_schema / pg_class). */
  rows: number;
  bytes: number;
  columns: ColumnDetail[];
  primaryKey: string[];
}

export interface DdlOptions {
  /** Lock wait per attempt (PostgreSQL lock_timeout; MySQL lock_wait_timeout, rounded up to seconds). */
  lockTimeoutMs: number;
  /** Attempts after the first on a lock timeout, with exponential backoff. */
  retries: number;
  /** Told about each retry. */
  onRetry?: (attempt: number, error: string) => void;
}

/** How a dialect's session bounds a DDL statement's lock wait (lockRetries). */
export interface LockTimeoutSession {
  setLockTimeout(ms: number): Promise<unknown>;
  resetLockTimeout(): Promise<unknown>;
  isLockTimeout(err: unknown): boolean;
}

/**
 * Runs `run` under the session's lock timeout, again with backoff (and jitter, so two
 * runners do not meet again) while it fails on that timeout, `options.retries` times at most.
 */
export async function lockRetries<T>(session: LockTimeoutSession, options: DdlOptions, run: () => Promise<T>): Promise<T> {
  await session.setLockTimeout(options.lockTimeoutMs);
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        return await run();
      } catch (err) {
        if (!session.isLockTimeout(err) || attempt >= options.retries) throw err;
        options.onRetry?.(attempt + 1, (err as Error).message);
        await new Promise((r) => setTimeout(r, Math.min(200 * 2 ** attempt, 5000) + Math.random() * 100));
      }
    }
  } finally {
    await session.resetLockTimeout().catch(() => undefined);
  }
}

/** Result of an attempt with an explicit MySQL algorithm. */
export type AlgorithmAttempt = { ok: true } | { ok: false; unsupported: true; message: string };

export interface SyncTriggerSpec {
  table: string;
  /** Base name for trigger (and PostgreSQL function) names. */
  name: string;
  oldColumn: string;
  newColumn: string;
  /** SQL expression turning the old column's value (written `{{value}}`) into the new one; null = plain assignment. */
  toNew: string | null;
  /** The reverse, for writes of the new application version. */
  toOld: string | null;
}

export interface MigrationStore {
  readonly dialect: DialectName;
  /** Database (MySQL) or schema (PostgreSQL) the history table lives in. */
  readonly schema: string;
  readonly historyTable: string;
  /** user@host as the runner identifies itself in the history table. */
  readonly appliedBy: string;
  quoteIdent(name: string): string;
  /** The i-th (1-based) bind placeholder. */
  placeholder(i: number): string;
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  exec(sql: string, params?: unknown[]): Promise<{ rowCount: number }>;

  /** Takes the runner lock, waiting up to waitMs; false when another runner kept it. */
  acquireLock(waitMs: number): Promise<boolean>;
  releaseLock(): Promise<void>;

  ensureHistoryTable(): Promise<void>;
  /** Every history row; [] when the table does not exist yet. */
  readHistory(): Promise<HistoryRecord[]>;
  saveHistory(record: HistoryRecord): Promise<void>;

  /** Size and shape of a table in this schema (name may be `schema.table`), or null when it does not exist. */
  tableStats(table: string): Promise<TableStats | null>;
  /** Runs one DDL statement under a short lock timeout, retrying with backoff when the lock is not granted. */
  runDdl(sql: string, options: DdlOptions): Promise<void>;
  /** MySQL: runs an ALTER with `ALGORITHM=...` appended; says when the server refuses that algorithm. Optional: only MySQL has ALGORITHM=. */
  tryAlgorithm?(alterSql: string, algorithm: 'INSTANT' | 'INPLACE', options: DdlOptions): Promise<AlgorithmAttempt>;
  /** PostgreSQL: drops an INVALID index a failed CREATE INDEX CONCURRENTLY left behind; true if one was dropped. Optional: only PostgreSQL leaves such indexes. */
  dropInvalidIndex?(name: string): Promise<boolean>;

  /**
   * Runs statements so that clients see all of them or none: under LOCK TABLES ... WRITE
   * (MySQL), or as one implicit transaction (PostgreSQL). `table` may be `schema.table`.
   */
  runAtomically(table: string, statements: string[], options: DdlOptions): Promise<void>;

  /** Statements creating triggers that keep two columns in sync both ways. */
  syncTriggers(spec: SyncTriggerSpec): { create: string[]; drop: string[] };

  close(): Promise<void>;
}

export type OpenMigrationStore = (config: ConnectionConfig) => Promise<MigrationStore>;

/** Opens the store for the URL's dialect; each dialect is loaded only when used. */
export async function openMigrationStore(config: ConnectionConfig): Promise<MigrationStore> {
  return (await loadDialect(config.dialect)).openMigrationStore(config);
}

export function emptyRecord(version: string, name: string, checksum: string, kind: HistoryRecord['kind'], appliedBy: string, host: string): HistoryRecord {
  return {
    version,
    name,
    checksum,
    kind,
    reached: null,
    status: 'running',
    currentPhase: null,
    statementsDone: 0,
    doneChecksum: null,
    phaseChecksums: null,
    backfillCursor: null,
    appliedBy,
    host,
    startedAt: null,
    finishedAt: null,
    durationMs: null,
    error: null,
    failedStatement: null,
  };
}
