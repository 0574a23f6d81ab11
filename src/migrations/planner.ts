// Classifies every statement of a migration before it runs, and decides how it
// runs:
//
//   instant   catalog/metadata only (MySQL ALGORITHM=INSTANT, PostgreSQL catalog changes)
//   online    reads and writes continue: the online engine (shadow table + change stream),
//             MySQL INPLACE/LOCK=NONE, PostgreSQL CONCURRENTLY, NOT VALID + VALIDATE
//   blocking  writes wait for the whole statement (a rewrite of a small table, or as written)
//   data      a DML statement (row locks); in a backfill phase, run in key-range batches
//
// MySQL: every ALTER first tries ALGORITHM=INSTANT, then INPLACE/LOCK=NONE where it does not
// rebuild a big table, else (above --online-threshold) the engine.
// PostgreSQL: every DDL runs with a short lock_timeout and retries; CREATE/DROP INDEX become
// CONCURRENTLY; FOREIGN KEY / CHECK become NOT VALID + VALIDATE; SET NOT NULL on a big table
// goes through a validated CHECK; UNIQUE/PRIMARY KEY through a concurrent unique index; a
// rewriting ALTER on a big table goes through the engine.
//
// The online threshold default (100,000 rows or 32 MiB) comes from measurements on a 2-core
// machine (bench/migrate-threshold.ts; numbers in docs/migrations.md): a blocking rewrite of the
// workload table ran at roughly 150-500k rows/s, so at 100k rows (~32 MiB) it holds writes for
// about half a second.

import type { DialectName } from '../dialects/dialect.js';
import { UsageError } from '../util/errors.js';
import type { LintFinding } from '../lint/rule.js';
import { classifyMysqlClause, classifyPgClause, MYSQL_RANK, type MysqlAlterClass } from './alter-classes.js';
import type { Phase } from './migration-files.js';
import type { TableStats } from './migration-store.js';
import { parseStatement, readIdentifier, readQualifiedName, splitTopLevel, type ParsedStatement } from './sql-analysis.js';
import type { SqlStatement } from './statement-splitter.js';
import { quoteIdent as pgQuote } from '../dialects/postgres/postgres-quote.js';

export type StatementClass = 'instant' | 'online' | 'blocking' | 'data';

export interface OnlineThreshold {
  rows: number;
  /** null = rows only. */
  bytes: number | null;
}

export const DEFAULT_ONLINE_THRESHOLD: OnlineThreshold = { rows: 100_000, bytes: 32 * 1024 * 1024 };

/** Measured rates (rows/s) on a 2-core machine, for the time estimates only. */
const RATE = { blockingRewrite: 200_000, engine: 70_000, concurrentIndex: 500_000, validate: 1_000_000, dml: 50_000 };

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

function secs(rows: number | null, rate: number): number | null {
  return rows === null ? null : Math.round((rows / rate) * 10) / 10;
}

/** A statement sent through the online engine because its table is above the threshold. */
function viaEngine(p: PlannedStatement, stats: TableStats, rows: number | null, steps: Step[]): PlannedStatement {
  return {
    ...p,
    class: 'online',
    how: `through the online engine (table above --online-threshold: ~${stats.rows} rows, ${stats.bytes} bytes)`,
    lock: 'none on the table while copying; the cut-over blocks writes for at most --cutover-lock-timeout',
    estimatedSeconds: secs(rows, RATE.engine),
    steps,
  };
}

function tableName(stats: TableStats | null, written: string | null): string {
  return stats ? `${stats.schema}.${stats.name}` : (written ?? '?');
}

/** Plans one phase's statements in order. */
export async function planPhase(statements: SqlStatement[], phase: Phase, ctx: PlanContext, lint: LintFinding[] = []): Promise<PlannedStatement[]> {
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
    const planned = inTransaction
      ? planInTransaction(base, parsed, stats)
      : ctx.dialect === 'mysql'
        ? planMysql(base, parsed, stats, ctx, phase)
        : planPostgres(base, parsed, stats, ctx, phase);
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

function planDml(base: PlannedStatement, parsed: ParsedStatement, stats: TableStats | null, dialect: DialectName, phase: Phase): PlannedStatement {
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
    if (/\bfrom\b/i.test(splitTopLevel(head.slice(head.search(/\bset\b/i)), ',').join(',')) && dialect === 'postgres') return { reason: 'UPDATE ... FROM joins another table' };
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

function planMysql(base: PlannedStatement, parsed: ParsedStatement, stats: TableStats | null, ctx: PlanContext, phase: Phase): PlannedStatement {
  const big = isBig(stats, ctx.threshold);
  const rows = stats?.rows ?? (parsed.table ? 0 : null);
  const table = tableName(stats, parsed.table);
  switch (parsed.kind) {
    case 'dml':
      return planDml(base, parsed, stats, 'mysql', phase);
    case 'set':
    case 'other':
      return { ...base, class: parsed.kind === 'set' ? 'instant' : 'blocking', how: 'as written', lock: parsed.kind === 'set' ? 'none' : 'unknown: not a statement the planner knows', steps: [{ kind: 'exec', sql: base.sql }] };
    case 'create-table':
    case 'drop-table':
    case 'rename-table':
      return { ...base, class: 'instant', how: 'metadata only, under a short lock_wait_timeout with retries', lock: 'metadata lock, brief', steps: [{ kind: 'ddl', sql: base.sql }] };
    case 'drop-index':
      return { ...base, class: 'instant', how: 'metadata only', lock: 'metadata lock, brief', steps: [{ kind: 'mysql-alter', sql: base.sql, algorithms: [], otherwise: 'plain', table, alter: '' }] };
    case 'create-index': {
      if (/\b(algorithm|lock)\s*=/i.test(parsed.text)) return { ...base, class: 'online', how: 'as written (ALGORITHM/LOCK given)', lock: 'as the ALGORITHM/LOCK given', estimatedRows: rows, steps: [{ kind: 'ddl', sql: base.sql }] };
      return {
        ...base,
        class: 'online',
        how: 'ALGORITHM=INPLACE, LOCK=NONE (index built while reads and writes continue)',
        lock: 'metadata lock at start and end only',
        estimatedRows: rows,
        estimatedSeconds: secs(rows, RATE.concurrentIndex),
        steps: [{ kind: 'mysql-alter', sql: base.sql, algorithms: ['INPLACE'], otherwise: 'plain', table, alter: '' }],
      };
    }
    case 'alter-table': {
      if (parsed.clauses.some((c) => /^(algorithm|lock)\s*=?/i.test(c))) {
        return { ...base, class: /lock\s*=?\s*none/i.test(parsed.text) ? 'online' : 'blocking', how: 'as written (ALGORITHM/LOCK given)', lock: 'as the ALGORITHM/LOCK given', estimatedRows: rows, steps: [{ kind: 'ddl', sql: base.sql }] };
      }
      const classes = parsed.clauses.map((c) => classifyMysqlClause(c, stats?.columns));
      let worst: MysqlAlterClass = 'instant';
      for (const k of classes) if (MYSQL_RANK[k.cls] > MYSQL_RANK[worst]) worst = k.cls;
      const why = classes.filter((k) => k.cls === worst).map((k) => k.why);
      const p: PlannedStatement = { ...base, estimatedRows: rows, notes: [...why] };
      if (worst === 'instant') {
        return {
          ...p,
          class: 'instant',
          how: `ALGORITHM=INSTANT${big ? ' (if refused: the online engine)' : ' (if refused: INPLACE, LOCK=NONE, then as written)'}`,
          lock: 'metadata lock, brief',
          estimatedSeconds: 0,
          steps: [{ kind: 'mysql-alter', sql: base.sql, algorithms: big ? ['INSTANT'] : ['INSTANT', 'INPLACE'], otherwise: big ? 'engine' : 'plain', table, alter: parsed.alterBody }],
        };
      }
      if (worst === 'inplace') {
        return {
          ...p,
          class: 'online',
          how: `ALGORITHM=INPLACE, LOCK=NONE (no rebuild; reads and writes continue)${big ? '; if refused: the online engine' : ''}`,
          lock: 'metadata lock at start and end only',
          estimatedSeconds: secs(rows, RATE.concurrentIndex),
          steps: [{ kind: 'mysql-alter', sql: base.sql, algorithms: ['INSTANT', 'INPLACE'], otherwise: big ? 'engine' : 'plain', table, alter: parsed.alterBody }],
        };
      }
      if (big) {
        return viaEngine(p, stats!, rows, [{ kind: 'mysql-alter', sql: base.sql, algorithms: ['INSTANT'], otherwise: 'engine', table, alter: parsed.alterBody }]);
      }
      if (worst === 'rebuild') {
        return {
          ...p,
          class: 'online',
          how: 'ALGORITHM=INPLACE, LOCK=NONE (small table rebuilt in place; if refused: as written)',
          lock: 'metadata lock at start and end; writes continue',
          estimatedSeconds: secs(rows, RATE.blockingRewrite),
          steps: [{ kind: 'mysql-alter', sql: base.sql, algorithms: ['INSTANT', 'INPLACE'], otherwise: 'plain', table, alter: parsed.alterBody }],
        };
      }
      return {
        ...p,
        class: 'blocking',
        how: 'as written (ALGORITHM=COPY): the table is below --online-threshold',
        lock: `writes blocked for the whole copy (~${secs(rows, RATE.blockingRewrite) ?? '?'} s)`,
        estimatedSeconds: secs(rows, RATE.blockingRewrite),
        steps: [{ kind: 'mysql-alter', sql: base.sql, algorithms: ['INSTANT', 'INPLACE'], otherwise: 'plain', table, alter: parsed.alterBody }],
      };
    }
    default:
      return { ...base, class: 'blocking', steps: [{ kind: 'exec', sql: base.sql }] };
  }
}

/** CREATE [UNIQUE] INDEX name ... -> with CONCURRENTLY; and the index name when given. */
export function concurrentIndexSql(sql: string): { sql: string; index: string | null } {
  const m = /^(\s*create\s+(?:unique\s+)?index\s+)(concurrently\s+)?(if\s+not\s+exists\s+)?/i.exec(sql);
  if (!m) return { sql, index: null };
  const rest = sql.slice(m[0].length);
  const name = /^\s*on\b/i.test(rest) ? null : (readQualifiedName(rest, 'postgres')?.name.split('.').pop() ?? null);
  return { sql: `${m[1]}CONCURRENTLY ${m[3] ?? ''}${rest}`, index: name };
}

function constraintNameOf(clause: string): string | null {
  const m = /^add\s+constraint\s+/i.exec(clause);
  return m ? (readIdentifier(clause.slice(m[0].length), 'postgres')?.name ?? null) : null;
}

function planPostgres(base: PlannedStatement, parsed: ParsedStatement, stats: TableStats | null, ctx: PlanContext, phase: Phase): PlannedStatement {
  const big = isBig(stats, ctx.threshold);
  const rows = stats?.rows ?? (parsed.table ? 0 : null);
  const table = tableName(stats, parsed.table);
  const q = pgQuote;
  const qt = stats ? `${q(stats.schema)}.${q(stats.name)}` : parsed.table ?? '';
  const brief = 'ACCESS EXCLUSIVE, brief (lock_timeout, retried with backoff)';
  switch (parsed.kind) {
    case 'dml':
      return planDml(base, parsed, stats, 'postgres', phase);
    case 'set':
      return { ...base, class: 'instant', how: 'as written', lock: 'none', steps: [{ kind: 'exec', sql: base.sql }] };
    case 'other':
      return { ...base, class: 'instant', how: 'as written, under a short lock_timeout with retries', lock: 'unknown: not a statement the planner knows', steps: [{ kind: 'ddl', sql: base.sql }] };
    case 'create-table':
      return { ...base, class: 'instant', how: 'catalog only', lock: 'none on existing tables (a REFERENCES locks the parent briefly)', steps: [{ kind: 'ddl', sql: base.sql }] };
    case 'drop-table':
    case 'rename-table':
      return { ...base, class: 'instant', how: 'catalog only, under lock_timeout with retries', lock: brief, steps: [{ kind: 'ddl', sql: base.sql }] };
    case 'create-index': {
      if (/\bconcurrently\b/i.test(parsed.text)) {
        const c = concurrentIndexSql(base.sql.replace(/\bconcurrently\s+/i, ''));
        return { ...base, class: 'online', how: 'CREATE INDEX CONCURRENTLY (as written)', lock: 'SHARE UPDATE EXCLUSIVE: reads and writes continue', estimatedRows: rows, estimatedSeconds: secs(rows, RATE.concurrentIndex), steps: [{ kind: 'concurrent-index', sql: base.sql, index: c.index }] };
      }
      const c = concurrentIndexSql(base.sql);
      return {
        ...base,
        class: 'online',
        how: 'rewritten to CREATE INDEX CONCURRENTLY (outside a transaction)',
        lock: 'SHARE UPDATE EXCLUSIVE: reads and writes continue',
        estimatedRows: rows,
        estimatedSeconds: secs(rows, RATE.concurrentIndex),
        steps: [{ kind: 'concurrent-index', sql: c.sql, index: c.index }],
        notes: c.index ? [] : ['the index has no name: if the build fails, find and drop the INVALID index yourself'],
      };
    }
    case 'drop-index': {
      if (/\bconcurrently\b/i.test(parsed.text) || /\bcascade\b/i.test(parsed.text) || /,/.test(parsed.text)) {
        return { ...base, class: /\bconcurrently\b/i.test(parsed.text) ? 'online' : 'instant', how: 'as written', lock: brief, steps: [{ kind: 'ddl', sql: base.sql }] };
      }
      return { ...base, class: 'online', how: 'rewritten to DROP INDEX CONCURRENTLY', lock: 'SHARE UPDATE EXCLUSIVE: reads and writes continue', steps: [{ kind: 'exec', sql: base.sql.replace(/^(\s*drop\s+index\s+)/i, '$1CONCURRENTLY ') }] };
    }
    case 'alter-table': {
      const classes = parsed.clauses.map((c) => ({ clause: c, k: classifyPgClause(c, stats?.columns) }));
      const p: PlannedStatement = { ...base, estimatedRows: rows, notes: classes.filter((c) => c.k.cls !== 'instant').map((c) => c.k.why) };
      if (classes.every((c) => c.k.cls === 'instant')) {
        return { ...p, class: 'instant', how: 'catalog only, under lock_timeout with retries', lock: brief, estimatedSeconds: 0, steps: [{ kind: 'ddl', sql: base.sql }] };
      }
      if (classes.every((c) => c.k.cls === 'instant' || c.k.cls === 'rewrite' || c.k.cls === 'blocking')) {
        if (big && classes.every((c) => c.k.cls !== 'blocking')) {
          return viaEngine(p, stats!, rows, [{ kind: 'engine', table, alter: parsed.alterBody }]);
        }
        return {
          ...p,
          class: 'blocking',
          how: big ? 'as written (a clause the engine cannot take)' : 'as written, under lock_timeout with retries (table below --online-threshold)',
          lock: `ACCESS EXCLUSIVE for the whole rewrite (~${secs(rows, RATE.blockingRewrite) ?? '?'} s)`,
          estimatedSeconds: secs(rows, RATE.blockingRewrite),
          steps: [{ kind: 'ddl', sql: base.sql }],
        };
      }
      if (classes.length > 1) {
        // Split: each clause becomes its own statement, planned on its own.
        const steps: Step[] = [];
        const hows: string[] = [];
        let cls: StatementClass = 'instant';
        for (const c of classes) {
          const sub = planPostgres({ ...base, sql: `ALTER TABLE ${qt} ${c.clause}` }, parseStatement(`ALTER TABLE ${qt} ${c.clause}`, 'postgres'), stats, ctx, phase);
          steps.push(...sub.steps);
          hows.push(sub.how);
          if (sub.class === 'blocking' || (sub.class === 'online' && cls === 'instant')) cls = sub.class;
        }
        return { ...p, class: cls, how: `split into one statement per clause: ${hows.join('; ')}`, lock: 'per clause (see how)', steps };
      }
      const { clause, k } = classes[0]!;
      if (k.cls === 'validate') {
        return { ...p, class: 'online', how: 'VALIDATE CONSTRAINT', lock: 'SHARE UPDATE EXCLUSIVE: reads and writes continue', estimatedSeconds: secs(rows, RATE.validate), steps: [{ kind: 'ddl', sql: base.sql }] };
      }
      if (k.cls === 'add-constraint') {
        let name = constraintNameOf(clause);
        let body = clause;
        if (!name) {
          const isFk = /foreign\s+key/i.test(clause);
          const cols = /\(([^)]*)\)/.exec(clause)?.[1]?.split(',').map((s) => s.trim().replace(/"/g, '')) ?? [];
          name = `${stats?.name ?? parsed.table ?? 't'}_${isFk ? cols.join('_') + '_fkey' : 'check'}`.slice(0, 63);
          body = clause.replace(/^add\s+/i, `ADD CONSTRAINT ${q(name)} `);
        }
        return {
          ...p,
          class: 'online',
          how: 'ADD ... NOT VALID (brief lock), then VALIDATE CONSTRAINT (reads and writes continue)',
          lock: 'brief ACCESS EXCLUSIVE / SHARE ROW EXCLUSIVE to add; SHARE UPDATE EXCLUSIVE while validating',
          estimatedSeconds: secs(rows, RATE.validate),
          steps: [
            { kind: 'ddl', sql: `ALTER TABLE ${qt} ${body} NOT VALID` },
            { kind: 'ddl', sql: `ALTER TABLE ${qt} VALIDATE CONSTRAINT ${q(name)}` },
          ],
        };
      }
      if (k.cls === 'set-not-null') {
        if (!big) {
          return { ...p, class: 'blocking', how: 'as written (table below --online-threshold: the scan is short)', lock: `ACCESS EXCLUSIVE while scanning (~${secs(rows, RATE.validate) ?? '?'} s)`, estimatedSeconds: secs(rows, RATE.validate), steps: [{ kind: 'ddl', sql: base.sql }] };
        }
        const col = /^alter\s+(?:column\s+)?/i.exec(clause)!;
        const colName = readIdentifier(clause.slice(col[0].length), 'postgres')!.name;
        const check = `${(stats?.name ?? 't').slice(0, 30)}_${colName.slice(0, 20)}_not_null_ss`;
        return {
          ...p,
          class: 'online',
          how: 'through a CHECK (col IS NOT NULL) NOT VALID, VALIDATE, then SET NOT NULL (uses the valid CHECK, no scan) and DROP the CHECK',
          lock: 'brief ACCESS EXCLUSIVE steps; SHARE UPDATE EXCLUSIVE while validating',
          estimatedSeconds: secs(rows, RATE.validate),
          steps: [
            { kind: 'ddl', sql: `ALTER TABLE ${qt} ADD CONSTRAINT ${q(check)} CHECK (${q(colName)} IS NOT NULL) NOT VALID` },
            { kind: 'ddl', sql: `ALTER TABLE ${qt} VALIDATE CONSTRAINT ${q(check)}` },
            { kind: 'ddl', sql: base.sql },
            { kind: 'ddl', sql: `ALTER TABLE ${qt} DROP CONSTRAINT ${q(check)}` },
          ],
        };
      }
      if (k.cls === 'add-unique') {
        const m = /^add\s+(?:constraint\s+(\S+)\s+)?(unique|primary\s+key)\s*\(([^)]*)\)\s*$/i.exec(clause);
        if (!m) {
          return { ...p, class: 'blocking', how: 'as written (the unique clause has a form the planner does not rewrite)', lock: `ACCESS EXCLUSIVE while the index builds (~${secs(rows, RATE.concurrentIndex) ?? '?'} s)`, steps: [{ kind: 'ddl', sql: base.sql }] };
        }
        const cname = m[1] ? readIdentifier(m[1], 'postgres')!.name : `${stats?.name ?? 't'}_${m[3]!.split(',').map((s) => s.trim().replace(/"/g, '')).join('_')}_key`.slice(0, 63);
        const kind = /primary/i.test(m[2]!) ? 'PRIMARY KEY' : 'UNIQUE';
        return {
          ...p,
          class: 'online',
          how: `CREATE UNIQUE INDEX CONCURRENTLY, then ADD CONSTRAINT ... ${kind} USING INDEX`,
          lock: 'SHARE UPDATE EXCLUSIVE while building; ACCESS EXCLUSIVE, brief, to attach',
          estimatedSeconds: secs(rows, RATE.concurrentIndex),
          steps: [
            { kind: 'concurrent-index', sql: `CREATE UNIQUE INDEX CONCURRENTLY ${q(cname)} ON ${qt} (${m[3]})`, index: cname },
            { kind: 'ddl', sql: `ALTER TABLE ${qt} ADD CONSTRAINT ${q(cname)} ${kind} USING INDEX ${q(cname)}` },
          ],
        };
      }
      return { ...p, class: 'blocking', how: 'as written', lock: 'ACCESS EXCLUSIVE', steps: [{ kind: 'ddl', sql: base.sql }] };
    }
    default:
      return { ...base, class: 'blocking', steps: [{ kind: 'exec', sql: base.sql }] };
  }
}

export { splitTopLevelKeyword };
