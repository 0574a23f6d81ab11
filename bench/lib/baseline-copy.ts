// The raw baseline every online copier is measured against: a plain chunked
// INSERT ... SELECT of the table into a copy, in PK ranges of N rows (default
// 10k), one autocommit statement per chunk, no change capture.
//
// MySQL: INSERT IGNORE ... SELECT ... LOCK IN SHARE MODE (gh-ost's copy; the
// shared locks are what a correct online copier must pay). PostgreSQL:
// INSERT ... SELECT ... ON CONFLICT DO NOTHING (no row locks by default).

import { performance } from 'node:perf_hooks';
import { primaryKeyColumns, quoteIdent, tableColumns, withDb, isIntegerType, type Db } from '../../test/support/db.js';

export interface BaselineCopyOptions {
  /** Rows per chunk (default 10,000). */
  chunkRows?: number;
  /** Create the copy table like the source first (default true; it must not exist). */
  create?: boolean;
  /** ALTER TABLE clauses applied to the empty copy before copying, e.g. the change under test. */
  alter?: string;
  /** Lock the rows read (MySQL LOCK IN SHARE MODE / PG FOR SHARE). Default: true on MySQL, false on PG. */
  lockRows?: boolean;
  /** Called after every chunk. */
  onChunk?: (copied: number, chunk: number) => void;
}

export interface BaselineCopyResult {
  rows: number;
  chunks: number;
  ms: number;
  rowsPerSec: number;
}

export async function baselineCopy(target: string | Db, source: string, dest: string, options: BaselineCopyOptions = {}): Promise<BaselineCopyResult> {
  const chunkRows = options.chunkRows ?? 10_000;
  return withDb(target, async (db) => {
    const d = db.dialect;
    const src = quoteIdent(d, source);
    const dst = quoteIdent(d, dest);
    if (options.create ?? true) {
      await db.exec(d === 'mysql' ? `CREATE TABLE ${dst} LIKE ${src}` : `CREATE TABLE ${dst} (LIKE ${src} INCLUDING ALL)`);
    }
    if (options.alter) await db.exec(`ALTER TABLE ${dst} ${options.alter}`);
    const key = await primaryKeyColumns(db, source);
    const srcCols = await tableColumns(db, source);
    const dstNames = new Set((await tableColumns(db, dest)).map((c) => c.name));
    const keyType = srcCols.find((c) => c.name === key[0])?.dataType ?? '';
    if (key.length !== 1 || !isIntegerType(keyType)) throw new Error(`baselineCopy needs a single integer primary key; ${source} has (${key.join(', ')})`);
    const k = quoteIdent(d, key[0]!);
    const cols = srcCols.filter((c) => dstNames.has(c.name)).map((c) => quoteIdent(d, c.name)).join(', ');
    const lock = options.lockRows ?? d === 'mysql';
    const lockClause = lock ? (d === 'mysql' ? ' LOCK IN SHARE MODE' : ' FOR SHARE') : '';
    // At REPEATABLE READ InnoDB reads an INSERT ... SELECT's source with share locks even
    // without LOCK IN SHARE MODE; at READ COMMITTED it is a consistent read, lock-free.
    if (!lock && d === 'mysql') await db.exec('SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED');
    const int = (v: unknown) => {
      const s = String(v);
      if (!/^-?\d+$/.test(s)) throw new Error(`unexpected key value ${s}`);
      return s;
    };

    const t0 = performance.now();
    let rows = 0;
    let chunks = 0;
    let last: string | null = null;
    for (;;) {
      const after: string = last === null ? '' : `${k} > ${last}`;
      const [bound]: Array<{ b: unknown }> = await db.query<{ b: unknown }>(
        `SELECT ${k} AS b FROM ${src} ${after ? 'WHERE ' + after : ''} ORDER BY ${k} LIMIT 1 OFFSET ${chunkRows - 1}`,
      );
      const upper: string | null = bound ? int(bound.b) : null;
      const conds = [after, upper === null ? '' : `${k} <= ${upper}`].filter(Boolean);
      const where = conds.length ? 'WHERE ' + conds.join(' AND ') : '';
      const sql =
        d === 'mysql'
          ? `INSERT IGNORE INTO ${dst} (${cols}) SELECT ${cols} FROM ${src} FORCE INDEX (PRIMARY) ${where} ORDER BY ${k}${lockClause}`
          : `INSERT INTO ${dst} (${cols}) SELECT ${cols} FROM ${src} ${where} ORDER BY ${k}${lockClause} ON CONFLICT DO NOTHING`;
      rows += (await db.exec(sql)).affectedRows;
      chunks++;
      options.onChunk?.(rows, chunks);
      if (upper === null) break;
      last = upper;
    }
    const ms = performance.now() - t0;
    return { rows, chunks, ms, rowsPerSec: rows / (ms / 1000) };
  });
}
