// The chunked copy: gh-ost's `INSERT IGNORE INTO shadow SELECT ... LOCK IN SHARE MODE`.
//
// IGNORE keeps a row the change stream already wrote (DESIGN invariant 2: the
// stream's image wins). The shared locks make a write to a row being copied wait
// until the chunk commits, so its binlog event comes after the copy and is
// applied over it (invariant 3).
//
// IGNORE also turns every data error into a warning, which would lose data
// silently: after each chunk the warnings are read (max_error_count raised so
// none are dropped) and anything but a legitimate duplicate rolls the chunk back
// and fails the job with DataLossError (invariant 6). A duplicate on PRIMARY or on
// a unique key the original also enforces is legitimate: the row was written by
// the stream (its image wins) or is transient (its later event fixes it). A
// duplicate on a unique key only the shadow has is real data loss.

import type { PoolConnection, ResultSetHeader, RowDataPacket } from 'mysql2/promise';
import type { BeforeChunkCommit, ChunkResult, CopyPlan, KeyRange, RowCopier, Value } from '../dialect.js';
import { DataLossError } from '../../util/errors.js';
import type { MyContext } from './mysql-context.js';
import { keyCompare, orderBy } from './mysql-keys.js';
import { quoteIdent, quoteTable } from './mysql-quote.js';
import { ER_DUP_ENTRY, dataLossForDuplicate, dataLossForValue, duplicateOf, isDataError, wrapError } from './mysql-errors.js';

/** MariaDB and MySQL cap max_error_count at 65535. */
const MAX_ERROR_COUNT = 65535;

export function rangeWhere(columns: string[], range: KeyRange): { sql: string; params: Value[] } {
  const upper = keyCompare(columns, '<=', range.upTo);
  if (!range.after) return upper;
  const lower = keyCompare(columns, '>', range.after);
  return { sql: `${lower.sql} AND ${upper.sql}`, params: [...lower.params, ...upper.params] };
}

export class MysqlCopier implements RowCopier {
  constructor(private readonly ctx: MyContext) {}

  async keyBounds(plan: CopyPlan): Promise<{ min: Value[]; max: Value[] } | null> {
    const cols = plan.key.map((k) => k.source);
    const table = quoteTable(plan.original.ref.schema, plan.original.ref.name);
    const select = cols.map(quoteIdent).join(', ');
    try {
      const [min] = await this.ctx.pool.query<RowDataPacket[]>({ sql: `SELECT ${select} FROM ${table} ORDER BY ${orderBy(cols)} LIMIT 1`, rowsAsArray: true });
      if (min.length === 0) return null;
      const [max] = await this.ctx.pool.query<RowDataPacket[]>({ sql: `SELECT ${select} FROM ${table} ORDER BY ${orderBy(cols, true)} LIMIT 1`, rowsAsArray: true });
      return { min: min[0] as unknown as Value[], max: (max[0] ?? min[0]) as unknown as Value[] };
    } catch (err) {
      throw wrapError(err, 'reading the key range');
    }
  }

  async chunkEnd(plan: CopyPlan, after: Value[] | null, size: number, ceiling: Value[]): Promise<Value[]> {
    const cols = plan.key.map((k) => k.source);
    const table = quoteTable(plan.original.ref.schema, plan.original.ref.name);
    const where = rangeWhere(cols, { after, upTo: ceiling });
    const n = Math.max(1, Math.floor(size));
    try {
      const [r] = await this.ctx.pool.query<RowDataPacket[]>({
        sql: `SELECT ${cols.map(quoteIdent).join(', ')} FROM ${table} WHERE ${where.sql} ORDER BY ${orderBy(cols)} LIMIT 1 OFFSET ${n - 1}`,
        rowsAsArray: true,
        values: where.params,
      });
      return r.length > 0 ? (r[0] as unknown as Value[]) : ceiling;
    } catch (err) {
      throw wrapError(err, 'finding the end of the next chunk');
    }
  }

  async copyChunk(plan: CopyPlan, range: KeyRange, beforeCommit?: BeforeChunkCommit): Promise<ChunkResult> {
    const conn = await this.ctx.pool.getConnection();
    let open = false;
    try {
      await conn.query(`SET SESSION max_error_count = ${MAX_ERROR_COUNT}`);
      await conn.query('BEGIN');
      open = true;
      const rows = await copyRange(conn, plan, range);
      if (beforeCommit) await beforeCommit(range);
      await conn.query('COMMIT');
      open = false;
      return { rowsCopied: rows };
    } catch (err) {
      if (open) await conn.query('ROLLBACK').catch(() => conn.destroy());
      throw wrapError(err, `copying rows of ${plan.original.ref.name}`);
    } finally {
      conn.release();
    }
  }
}

/** Runs the INSERT IGNORE ... SELECT for `range` inside the caller's transaction and checks its warnings. */
export async function copyRange(conn: PoolConnection, plan: CopyPlan, range: KeyRange): Promise<number> {
  const { original, shadow } = plan;
  const keyCols = plan.key.map((k) => k.source);
  const where = rangeWhere(keyCols, range);
  const sql =
    `INSERT IGNORE INTO ${quoteTable(shadow.ref.schema, shadow.ref.name)} (${plan.columns.map((c) => quoteIdent(c.target)).join(', ')}) ` +
    `SELECT ${plan.columns.map((c) => quoteIdent(c.source)).join(', ')} FROM ${quoteTable(original.ref.schema, original.ref.name)} ` +
    `WHERE ${where.sql} LOCK IN SHARE MODE`;
  let result: ResultSetHeader;
  try {
    [result] = await conn.query<ResultSetHeader>(sql, where.params);
  } catch (err) {
    if (isDataError(err)) throw dataLossForValue(original.ref.name, (err as Error).message, 'copying');
    throw err;
  }
  if (result.warningStatus > 0) await checkWarnings(conn, plan, range);
  return result.affectedRows;
}

async function checkWarnings(conn: PoolConnection, plan: CopyPlan, range: KeyRange): Promise<void> {
  const [warnings] = await conn.query<RowDataPacket[]>('SHOW WARNINGS');
  const name = plan.original.ref.name;
  const newUnique = new Set(plan.newUniqueIndexes.map((n) => n.toLowerCase()));
  const where = `copying the chunk of ${name} after ${JSON.stringify(range.after)} up to ${JSON.stringify(range.upTo)}`;
  for (const w of warnings) {
    const code = Number(w.Code);
    const message = String(w.Message);
    if (w.Level === 'Note') continue;
    if (code === ER_DUP_ENTRY) {
      const dup = duplicateOf(message);
      if (dup && !newUnique.has(dup.key.toLowerCase())) continue; // PRIMARY / a key the original enforces: the stream's row wins
      throw dataLossForDuplicate(name, dup?.key ?? '(unknown key)', dup?.value ?? '?', where);
    }
    throw dataLossForValue(name, `${w.Level} ${code}: ${message}`, where);
  }
  if (warnings.length === 0) {
    // warningStatus said there were warnings but none could be read: refuse rather than guess.
    throw new DataLossError(`${where}: the server reported warnings that could not be read; refusing to continue. Check max_error_count.`);
  }
}
