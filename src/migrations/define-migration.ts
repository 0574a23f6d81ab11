// TS migrations: `export default defineMigration({ expand, backfill, contract, down, operations })`.
// Each phase is an async function of a small typed database handle that works on
// both dialects. Built-in operations (renameColumn, changeColumnType) contribute
// to every phase. The runner loads the file with tsx and calls the phases.

import type { DialectName } from '../dialects/dialect.js';
import type { Logger } from '../util/logger.js';
import { UsageError } from '../util/errors.js';
import type { SyncTriggerSpec, TableStats } from './migration-store.js';

export interface BackfillSpec {
  table: string;
  /** SET clause without SET, e.g. `total_cents = total * 100` (identifiers quoted by you: use db.quote). */
  set: string;
  /** Optional condition, e.g. `total_cents IS NULL`. */
  where?: string;
  /** Rows per batch (default: the runner's --backfill-batch). */
  batchSize?: number;
  /** Name for the resume point; defaults to table + set. */
  id?: string;
  /** Internal: the expand/contract triggers ignore writes of this backfill. */
  silenceSyncTriggers?: boolean;
}

export interface MigrationDb {
  readonly dialect: DialectName;
  readonly log: Logger;
  /** Rows of a query. Placeholders: `?` on MySQL, `$1` on PostgreSQL (see param()). Values bound, never interpolated. */
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  /** A statement; its affected row count. Runs as written. */
  exec(sql: string, params?: unknown[]): Promise<{ rowCount: number }>;
  /** The i-th (1-based) bind placeholder of this dialect. */
  param(i: number): string;
  /** Quotes one identifier for this dialect. */
  quote(identifier: string): string;
  /**
   * Runs DDL the way SQL migrations run it: planned (instant / online / blocking),
   * under a short lock timeout with retries, and through the online engine when
   * the table is above --online-threshold and the change would rewrite it.
   */
  ddl(sql: string): Promise<void>;
  /** An UPDATE in key-range batches, throttled and resumable. */
  backfill(spec: BackfillSpec): Promise<{ rowsAffected: number; batches: number }>;
  /** Columns, primary key and size of a table, or null when it does not exist. */
  table(name: string): Promise<TableStats | null>;
  /** Runs fn with the table write-locked (MySQL LOCK TABLES) or in one transaction (PostgreSQL), so its statements are atomic to clients. */
  atomically(table: string, statements: string[]): Promise<void>;
  /** The dialect's statements for triggers that keep two columns in sync both ways. */
  syncTriggers(spec: SyncTriggerSpec): { create: string[]; drop: string[] };
}

export type PhaseFunction = (db: MigrationDb) => Promise<void> | void;

/** A built-in expand/contract operation: each phase is idempotent, so a failed phase can be rerun. */
export interface Operation {
  readonly description: string;
  expand(db: MigrationDb): Promise<void>;
  backfill(db: MigrationDb): Promise<void>;
  contract(db: MigrationDb): Promise<void>;
  down(db: MigrationDb): Promise<void>;
}

export interface MigrationDefinition {
  operations?: Operation[];
  expand?: PhaseFunction;
  backfill?: PhaseFunction;
  contract?: PhaseFunction;
  down?: PhaseFunction;
}

const KEYS = new Set(['operations', 'expand', 'backfill', 'contract', 'down']);

export function defineMigration(def: MigrationDefinition): MigrationDefinition {
  validateDefinition(def, 'defineMigration()');
  return def;
}

export function validateDefinition(def: unknown, where: string): asserts def is MigrationDefinition {
  if (!def || typeof def !== 'object') {
    throw new UsageError(`${where}: the default export must be defineMigration({ expand, backfill, contract, down, operations })`);
  }
  for (const [k, v] of Object.entries(def)) {
    if (!KEYS.has(k)) throw new UsageError(`${where}: unknown key "${k}"; allowed: ${[...KEYS].join(', ')}`);
    if (k === 'operations') {
      if (!Array.isArray(v) || v.some((o) => !o || typeof (o as Operation).expand !== 'function')) {
        throw new UsageError(`${where}: operations must be a list of built-in operations, e.g. [renameColumn({ table, from, to })]`);
      }
    } else if (v !== undefined && typeof v !== 'function') {
      throw new UsageError(`${where}: ${k} must be a function (db) => Promise<void>`);
    }
  }
}

/** The phases a definition has (operations bring all four). */
export function definedPhases(def: MigrationDefinition): Set<'expand' | 'backfill' | 'contract' | 'down'> {
  const out = new Set<'expand' | 'backfill' | 'contract' | 'down'>();
  const ops = def.operations?.length ?? 0;
  for (const p of ['expand', 'backfill', 'contract', 'down'] as const) if (def[p] || ops > 0) out.add(p);
  return out;
}

/** Runs one phase of a definition: operations first (in reverse for down), then the function. */
export async function runDefinitionPhase(def: MigrationDefinition, phase: 'expand' | 'backfill' | 'contract' | 'down', db: MigrationDb): Promise<void> {
  const ops = def.operations ?? [];
  if (phase === 'down') {
    await def.down?.(db);
    for (const op of [...ops].reverse()) await op.down(db);
    return;
  }
  for (const op of ops) await op[phase](db);
  await def[phase]?.(db);
}

export { renameColumn } from './operations/rename-column.js';
export { changeColumnType } from './operations/change-column-type.js';
