// Classifies every statement of a migration before it runs, and decides how it
// runs:
//
//   instant   catalog/metadata only (MySQL ALGORITHM=INSTANT, PostgreSQL catalog changes)
//   online    reads and writes continue: the online engine (shadow table + change stream),
//             MySQL INPLACE/LOCK=NONE, PostgreSQL CONCURRENTLY, NOT VALID + VALIDATE
//   blocking  writes wait for the whole statement (a rewrite of a small table, or as written)
//   data      a DML statement (row locks); in a backfill phase, run in key-range batches
//
// The online threshold default (100,000 rows or 32 MiB) comes from measurements on a 2-core
// machine (bench/migrate-threshold.ts; numbers in docs/migrations.md): a blocking rewrite of the
// workload table ran at roughly 150-500k rows/s, so at 100k rows (~32 MiB) it holds writes for
// about half a second.
//
// This file is the dialect-neutral half: the phase loop, transactions, DML batching and
// the shapes of a plan. What each kind of statement becomes on a dialect is that dialect's
// planner half (src/dialects/<dialect>/<dialect>-planner.ts), reached through the registry.

import type { DialectName } from '../dialects/dialect.js';
import { loadDialect, syntaxOf } from '../dialects/registry.js';
import { UsageError } from '../util/errors.js';
import type { LintFinding } from '../lint/rule.js';
import type { Phase } from './migration-files.js';
import type { TableStats } from './migration-store.js';
import { parseStatement, readQualifiedName, splitTopLevel, type ParsedStatement } from './sql-analysis.js';
import type { SqlStatement } from './statement-splitter.js';

export type StatementClass = 'instant' | 'online' | 'blocking' | 'data';

export interface OnlineThreshold {
  rows: number;
  /** null = rows only. */
  bytes: number | null;
}

export const DEFAULT_ONLINE_THRESHOLD: OnlineThreshold = { rows: 100_000, bytes: 32 * 1024 * 1024 };

/** Measured rates (rows/s) on a 2-core machine, for the time estimates only. */
export const RATE = { blockingRewrite: 200_000, engine: 70_000, concurrentIndex: 500_000, validate: 1_000_000, dml: 50_000 };

/** `100000`, `250k`, `1m` rows; `64MB`, `2GiB`, `500kb` bytes. */
export function parseOnlineThreshold(text: string): OnlineThreshold {
  const t = text.trim().toLowerCase();
  const m = /^(\d+(?:\.\d+)?)\s*(k|m|g)?(i?b)?$/.exec(t);
  if (!m) throw new UsageError(`--online-threshold "${text}" is not a size; give rows (100000, 250k, 1m) or bytes (64MB, 1GiB)`);
  const n = Number(m[1]);
  const mult = m[2] === 'k' ? 1_000 : m[2] === 'm' ? 1_000_000 : m[2] === 'g' ? 1_000_000_000 : 1;
  if (m[3]) {
    const bin = m[3] === 'ib';
    const bm = m[2] === 'k' ? (bin ? 1024 : 1000) : m[2] === 'm' ? (bin ? 1024 ** 2 : 1000 ** 2) : m[2] === 'g' ? (bin ? 1024 ** 3 : 1000 ** 3) : 1;
    return { rows: Number.POSITIVE_INFINITY, bytes: Math.round(n * bm) };
  }
  return { rows: Math.round(n * mult), bytes: null };
}

export function isBig(stats: TableStats | null, threshold: OnlineThreshold): boolean {
  if (!stats) return false;
  return stats.rows >= threshold.rows || (threshold.bytes !== null && stats.bytes >= threshold.bytes);
}

export type Step =
  /** One DDL under a short lock timeout, retried with backoff. */
  | { kind: 'ddl'; sql: string }
  /** As written: no lock-timeout policy (DML, SET, statements inside the file's own transaction). */
  | { kind: 'exec'; sql: string }
  /** MySQL: try each algorithm in order; if the server refuses all, `otherwise`. */
  | { kind: 'mysql-alter'; sql: string; algorithms: Array<'INSTANT' | 'INPLACE'>; otherwise: 'engine' | 'plain'; table: string; alter: string }
  /** Through the online engine (AlterJob). */
  | { kind: 'engine'; table: string; alter: string }
  /** PostgreSQL CREATE INDEX CONCURRENTLY: an INVALID index left by a failure is dropped. */
  | { kind: 'concurrent-index'; sql: string; index: string | null }
  /** A single-table UPDATE/DELETE in key-range batches. */
  | { kind: 'batched'; table: string; key: string[]; head: string; where: string | null; sql: string };

export interface PlannedStatement {
  phase: Phase;
  /** 0-based position in its phase. */
  index: number;
  line: number;
  sql: string;
  class: StatementClass;
  /** How it runs, in words. */
  how: string;
  /** The lock it takes and for how long. */
  lock: string;
  table: string | null;
  estimatedRows: number | null;
  estimatedSeconds: number | null;
  steps: Step[];
  lint: LintFinding[];
  notes: string[];
}

export interface PlanContext {
  dialect: DialectName;
  stats(table: string): Promise<TableStats | null>;
  threshold: OnlineThreshold;
}

/** A dialect's half of the planner: how one statement (outside the file's own transaction) runs there. */
export interface PlannerHalf {
  plan(base: PlannedStatement, parsed: ParsedStatement, stats: TableStats | null, ctx: PlanContext, phase: Phase): PlannedStatement;
}

export function secs(rows: number | null, rate: number): number | null {
  return rows === null ? null : Math.round((rows / rate) * 10) / 10;
}

/** A statement sent through the online engine because its table is above the threshold. */
export function viaEngine(p: PlannedStatement, stats: TableStats, rows: number | null, steps: Step[]): PlannedStatement {
  return {
    ...p,
    class: 'online',
    how: `through the online engine (table above --online-threshold: ~${stats.rows} rows, ${stats.bytes} bytes)`,
    lock: 'none on the table while copying; the cut-over blocks writes for at most --cutover-lock-timeout',
    estimatedSeconds: secs(rows, RATE.engine),
    steps,
  };
}

export function tableName(stats: TableStats | null, written: string | null): string {
  return stats ? `${stats.schema}.${stats.name}` : (written ?? '?');
}

/** Plans one phase's statements in order. */
export async function planPhase(statements: SqlStatement[], phase: Phase, ctx: PlanContext, lint: LintFinding[] = []): Promise<PlannedStatement[]> {
  const { planner } = await loadDialect(ctx.dialect);
  const out: PlannedStatement[] = [];
  const createdHere = new Set<string>();
  let inTransaction = false;
  for (let index = 0; index < statements.length; index++) {
    const st = statements[index]!;
    const parsed = parseStatement(st.text, ctx.dialect);
    const base: PlannedStatement = {
      phase,
      index,
      line: st.line,
      sql: st.text,
      class: 'instant',
      how: 'as written',
      lock: '',
      table: parsed.table,
      estimatedRows: null,
      estimatedSeconds: null,
      steps: [],
      lint: lint.filter((f) => f.line === st.line),
      notes: [],
    };
    if (parsed.kind === 'transaction') {
      inTransaction = /^(begin|start)/i.test(parsed.text);
      out.push({ ...base, class: 'instant', how: 'transaction control, as written', lock: 'none', steps: [{ kind: 'exec', sql: st.text }] });
      continue;
    }
    const fresh = parsed.table ? createdHere.has(parsed.table.toLowerCase()) : false;
    const stats = parsed.table && !fresh ? await ctx.stats(parsed.table) : null;
    if (parsed.kind === 'create-table' && parsed.table) createdHere.add(parsed.table.toLowerCase());
    const planned = inTransaction ? planInTransaction(base, parsed, stats) : planner.plan(base, parsed, stats, ctx, phase);
    if (parsed.table && !stats && !fresh && parsed.kind !== 'create-table' && parsed.kind !== 'drop-table') {
      planned.notes.push(`table ${parsed.table} does not exist now; planned as empty`);
    }
    out.push(planned);
  }
  return out;
}

function planInTransaction(base: PlannedStatement, parsed: ParsedStatement, stats: TableStats | null): PlannedStatement {
  return {
    ...base,
    class: parsed.kind === 'dml' ? 'data' : 'blocking',
    how: "inside the file's own transaction: run as written (no CONCURRENTLY, no engine, no lock-timeout retries)",
    lock: 'held until the transaction commits',
    estimatedRows: stats?.rows ?? null,
    steps: [{ kind: 'exec', sql: base.sql }],
  };
}

export function planDml(base: PlannedStatement, parsed: ParsedStatement, stats: TableStats | null, dialect: DialectName, phase: Phase): PlannedStatement {
  const rows = stats?.rows ?? null;
  const p: PlannedStatement = { ...base, class: 'data', lock: 'row locks on the rows it writes', estimatedRows: rows, estimatedSeconds: secs(rows, RATE.dml), steps: [{ kind: 'exec', sql: base.sql }] };
  if (phase !== 'backfill') return p;
  const batched = batchable(parsed, stats, dialect);
  if ('reason' in batched) {
    p.how = `one statement (not batched: ${batched.reason})`;
    p.lock = 'row locks on every row it writes, until it commits';
    return p;
  }
  p.how = `in key-range batches over (${batched.key.join(', ')}), throttled, resumable`;
  p.lock = 'row locks of one batch at a time';
  p.steps = [{ kind: 'batched', table: tableName(stats, parsed.table), key: batched.key, head: batched.head, where: batched.where, sql: base.sql }];
  return p;
}

/** A single-table UPDATE/DELETE can be cut into key ranges: `head WHERE (where) AND <range>`. */
function batchable(parsed: ParsedStatement, stats: TableStats | null, dialect: DialectName): { key: string[]; head: string; where: string | null } | { reason: string } {
  if (parsed.verb !== 'update' && parsed.verb !== 'delete') return { reason: `${parsed.verb.toUpperCase() || 'this statement'} is not a single-table UPDATE/DELETE` };
  if (!stats) return { reason: `table ${parsed.table ?? '?'} not found` };
  if (stats.primaryKey.length === 0) return { reason: `${stats.name} has no primary key to walk` };
  const text = parsed.text;
  if (/\b(limit|order\s+by|returning|join)\b/i.test(text)) return { reason: 'it has LIMIT, ORDER BY, RETURNING or a JOIN' };
  // Top-level WHERE (outside parentheses and quotes).
  const parts = splitTopLevelKeyword(text, 'where');
  const head = parts[0]!;
  if (parsed.verb === 'update') {
    const afterTable = readQualifiedName(head.replace(/^update\s+(?:low_priority\s+|ignore\s+|only\s+)*/i, ''), dialect);
    if (!afterTable || !/^\s*(as\s+\S+\s+|\S+\s+)?set\b/i.test(afterTable.rest) || /^\s*,/.test(afterTable.rest)) return { reason: 'it updates more than one table' };
    if (/\bfrom\b/i.test(splitTopLevel(head.slice(head.search(/\bset\b/i)), ',').join(',')) && syntaxOf(dialect).updateFromJoins) return { reason: 'UPDATE ... FROM joins another table' };
  }
  if (parts.length > 2) return { reason: 'more than one WHERE at the top level' };
  return { key: stats.primaryKey, head, where: parts[1] ?? null };
}

function splitTopLevelKeyword(text: string, keyword: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let quote: string | null = null;
  let start = 0;
  const re = new RegExp(`^${keyword}\\b`, 'i');
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quote) {
      if (c === quote) quote = null;
      continue;
    }
    if (c === "'" || c === '"' || c === '`') quote = c;
    else if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (depth === 0 && /\s/.test(c) && re.test(text.slice(i + 1))) {
      out.push(text.slice(start, i).trim());
      i += keyword.length;
      start = i + 1;
    }
  }
  out.push(text.slice(start).trim());
  return out;
}

export { splitTopLevelKeyword };
