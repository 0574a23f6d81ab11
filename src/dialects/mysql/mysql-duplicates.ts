// Names the rows behind a duplicate on a new unique key, so the DataLossError says
// which rows to fix and not only the value. Best effort: it runs on the failing
// transaction's connection before the rollback, and a lookup that finds nothing
// (or fails) only leaves the rows out of the message.

import type { PoolConnection, RowDataPacket } from 'mysql2/promise';
import type { CopyPlan, IndexInfo, KeyRange, Value } from '../dialect.js';
import { keyCompare } from './mysql-keys.js';
import { quoteIdent, quoteTable } from './mysql-quote.js';

/** How many colliding rows a message names. */
const ROWS_NAMED = 3;

const lower = (s: string) => s.toLowerCase();

function shadowIndex(plan: CopyPlan, name: string): IndexInfo | undefined {
  return plan.shadow.indexes.find((i) => lower(i.name) === lower(name));
}

function literal(v: Value): string {
  if (v === null || v === undefined) return 'NULL';
  if (Buffer.isBuffer(v)) return `0x${v.toString('hex')}`;
  return typeof v === 'string' ? `'${v}'` : String(v);
}

/** `id=7`, `(a, b)=(1, 'x')`. */
export function describeKey(columns: string[], values: Value[]): string {
  return columns.length === 1 ? `${columns[0]}=${literal(values[0])}` : `(${columns.join(', ')})=(${values.map(literal).join(', ')})`;
}

/** What the ALTER changed about `index`, when the original has it over the same columns. */
export function weakeningOf(plan: CopyPlan, index: string): string | null {
  return plan.weakenedUniqueIndexes?.find((w) => lower(w.name) === lower(index))?.change ?? null;
}

/**
 * A bound value as the shadow column would store it: rounded to its DECIMAL scale or
 * fractional seconds, as the INSERT does. Strings need nothing: compared with a
 * column, a bound string takes the column's collation.
 */
function storedAs(shadow: CopyPlan['shadow'], column: string): string {
  const type = shadow.columns.find((c) => lower(c.name) === lower(column))?.type.toLowerCase() ?? '';
  const decimal = /^(?:decimal|numeric)\((\d+),(\d+)\)/.exec(type);
  if (decimal) return `CAST(? AS DECIMAL(${decimal[1]},${decimal[2]}))`;
  const temporal = /^(datetime|timestamp|time)(?:\((\d)\))?/.exec(type);
  if (temporal) return `CAST(? AS ${temporal[1] === 'time' ? 'TIME' : 'DATETIME'}(${temporal[2] ?? 0}))`;
  return '?';
}

/**
 * Copy keys (shadow columns) of the shadow rows that `index` takes for equal to a
 * row whose index columns have `valueOf(target)`.
 */
async function shadowRowsEqualOn(conn: PoolConnection, plan: CopyPlan, index: IndexInfo, valueOf: (target: string) => Value): Promise<Value[][]> {
  const values = index.columns.map(valueOf);
  if (values.some((v) => v === null || v === undefined)) return [];
  const conditions = index.columns.map((column, i) => {
    const prefix = index.prefixLengths?.[i] ?? null;
    const value = storedAs(plan.shadow, column);
    return prefix === null ? `${quoteIdent(column)} = ${value}` : `LEFT(${quoteIdent(column)}, ${prefix}) = LEFT(${value}, ${prefix})`;
  });
  const [rows] = await conn.query<RowDataPacket[]>({
    sql:
      `SELECT ${plan.key.map((k) => quoteIdent(k.target)).join(', ')} FROM ${quoteTable(plan.shadow.ref.schema, plan.shadow.ref.name)} ` +
      `WHERE ${conditions.join(' AND ')} LIMIT ${ROWS_NAMED}`,
    values,
    rowsAsArray: true,
  });
  return rows as unknown as Value[][];
}

/** For the applier: the changed row `key` (with shadow column values `valueOf`) collides with which rows of the new table. */
export async function collisionsOfChangedRow(
  conn: PoolConnection,
  plan: CopyPlan,
  indexName: string,
  key: Value[],
  valueOf: (target: string) => Value,
): Promise<string | null> {
  const index = shadowIndex(plan, indexName);
  if (!index) return null;
  const keyColumns = plan.key.map((k) => k.source);
  const others = await shadowRowsEqualOn(conn, plan, index, valueOf).catch(() => []);
  const row = `the changed row ${describeKey(keyColumns, key)}`;
  return others.length > 0 ? `${row} collides with ${others.map((o) => `the row ${describeKey(keyColumns, o)}`).join(', ')}` : row;
}

/**
 * Rows of the range (their copy key, then `columns`) that are not in the shadow. The copy
 * key compares the same in both tables, or finer in the shadow (copy-plan guarantees it),
 * so the anti-join by key is exact.
 */
async function missingFromShadow(conn: PoolConnection, plan: CopyPlan, range: KeyRange, columns: string[], limit: number): Promise<Value[][]> {
  const keySources = plan.key.map((k) => k.source);
  const upper = range.upTo ? keyCompare(keySources, '<=', range.upTo, 'o') : null;
  const lowerBound = range.after ? keyCompare(keySources, '>', range.after, 'o') : null;
  const sameKey = plan.key.map((k) => `s.${quoteIdent(k.target)} = o.${quoteIdent(k.source)}`).join(' AND ');
  const [missing] = await conn.query<RowDataPacket[]>({
    sql:
      `SELECT ${[...keySources, ...columns].map((c) => `o.${quoteIdent(c)}`).join(', ')} ` +
      `FROM ${quoteTable(plan.original.ref.schema, plan.original.ref.name)} o ` +
      `WHERE ${[lowerBound?.sql, upper?.sql].filter(Boolean).map((c) => `${c} AND `).join('')}` +
      `NOT EXISTS (SELECT 1 FROM ${quoteTable(plan.shadow.ref.schema, plan.shadow.ref.name)} s WHERE ${sameKey}) LIMIT ${limit}`,
    values: [...(lowerBound?.params ?? []), ...(upper?.params ?? [])],
    rowsAsArray: true,
  });
  return missing as unknown as Value[][];
}

/**
 * For the copier, inside the chunk's transaction: whether every row of the range is in
 * the shadow under its copy key. INSERT IGNORE meets the shadow's PRIMARY KEY before its
 * other unique keys: when the ALTER weakened the primary key and another key is the copy
 * key, a row the stream already wrote is skipped as a duplicate on the new PRIMARY KEY,
 * not on the copy key, and nothing was lost.
 */
export async function wholeRangeInShadow(conn: PoolConnection, plan: CopyPlan, range: KeyRange): Promise<boolean> {
  return (await missingFromShadow(conn, plan, range, [], 1)).length === 0;
}

/**
 * For the copier, inside the chunk's transaction: rows of the range that did not
 * reach the shadow, each with the shadow rows it collides with on `indexName`.
 */
export async function collisionsInChunk(conn: PoolConnection, plan: CopyPlan, range: KeyRange, indexName: string): Promise<string | null> {
  const index = shadowIndex(plan, indexName);
  if (!index) return null;
  const sourceOf = new Map(plan.columns.map((c) => [lower(c.target), c.source]));
  const sources = index.columns.map((c) => sourceOf.get(lower(c)));
  if (sources.some((s) => s === undefined)) return null;
  const keySources = plan.key.map((k) => k.source);
  const missing = await missingFromShadow(conn, plan, range, sources as string[], ROWS_NAMED);
  const found: string[] = [];
  for (const row of missing) {
    const key = row.slice(0, keySources.length);
    const indexValues = row.slice(keySources.length);
    const others = await shadowRowsEqualOn(conn, plan, index, (target) => indexValues[index.columns.findIndex((c) => lower(c) === lower(target))]);
    if (others.length === 0) continue;
    found.push(`the row ${describeKey(keySources, key)} collides with ${others.map((o) => `the row ${describeKey(keySources, o)}`).join(', ')}`);
  }
  return found.length > 0 ? found.join('; ') : null;
}
