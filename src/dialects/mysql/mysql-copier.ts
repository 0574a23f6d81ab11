// The chunked copy: `INSERT IGNORE INTO shadow SELECT ...`, one transaction per chunk.
//
// IGNORE keeps a row the change stream already wrote (invariant 2 in docs/ARCHITECTURE.md: the
// stream's image wins). The read must see every transaction whose binlog events the job
// has already applied (invariant 3): otherwise a row that such a transaction deleted, or
// moved to another key, is copied back from its older version and stays. Two ways:
//
// - Consistent read (the default): before the chunk, a marker row is committed to the
//   changelog table, then the chunk reads at READ COMMITTED, which InnoDB does as a
//   non-locking consistent read. The server makes commits visible in binlog order
//   (MariaDB always; MySQL while binlog_order_commits is ON), and the marker's binlog
//   events come after every event applied so far, so once its commit returns each of
//   their transactions is visible to the chunk's read. No application write waits for
//   the copy. ARCHITECTURE, invariant 3, "MySQL, without row locks".
// - Locking read (`--copy-row-locks`, or where commit order is not guaranteed): gh-ost's
//   `LOCK IN SHARE MODE`; a write to a row being copied waits until the chunk commits,
//   so its event comes after the copy and is applied over it.
//
// IGNORE also turns every data error into a warning, which would lose data
// silently: after each chunk the warnings are read (max_error_count raised so
// none are dropped) and anything but a legitimate duplicate rolls the chunk back
// and fails the job with DataLossError (invariant 6). A duplicate on PRIMARY or on
// a unique key the original also enforces is legitimate: the row was written by
// the stream (its image wins) or is transient (its later event fixes it). A
// duplicate on a unique key only the shadow has (or one the ALTER makes compare
// less finely, engine/copy-plan.ts) is real data loss.

import type { PoolConnection, ResultSetHeader, RowDataPacket } from 'mysql2/promise';
import type { BeforeChunkCommit, ChunkResult, CopyPlan, KeyRange, RowCopier, TableInfo, Value } from '../dialect.js';
import { DataLossError, TransientDatabaseError } from '../../util/errors.js';
import { withConnection, type MyContext } from './mysql-context.js';
import { copyExpressions, typedColumns, zoneFor, zoneShift, zoneShiftSql } from './mysql-conversions.js';
import { keyCompare, orderBy } from './mysql-keys.js';
import { quoteIdent, quoteTable } from './mysql-quote.js';
import { changelogName } from './mysql-names.js';
import { DuplicateKeyError, ER_DUP_ENTRY, columnOf, dataLossForDuplicate, dataLossForValue, duplicateOf, isDataError, wrapError } from './mysql-errors.js';
import { collisionsInChunk, weakeningOf, wholeRangeInShadow } from './mysql-duplicates.js';

/** MariaDB and MySQL cap max_error_count at 65535. */
const MAX_ERROR_COUNT = 65535;

export function rangeWhere(columns: string[], range: KeyRange, collate?: ReadonlyArray<string | null>): { sql: string; params: Value[] } {
  const conds: Array<{ sql: string; params: Value[] }> = [];
  if (range.after) conds.push(keyCompare(columns, '>', range.after, undefined, collate));
  if (range.upTo) conds.push(keyCompare(columns, '<=', range.upTo, undefined, collate));
  if (conds.length === 0) return { sql: 'TRUE', params: [] };
  return { sql: conds.map((c) => c.sql).join(' AND '), params: conds.flatMap((c) => c.params) };
}

/**
 * The shadow's rows in `range`. Ranges are cut in the original's key order; a key column
 * the ALTER gave a finer collation (utf8mb4_general_ci → utf8mb4_bin, copy-plan.ts) sorts
 * differently in the shadow ('B' < 'a' under _bin), so there it compares in the original's
 * collation, or the shadow's side of a range would hold other rows than the original's.
 * That comparison cannot use the shadow's index: each range scans the shadow.
 */
export function shadowRangeWhere(plan: CopyPlan, range: KeyRange): { sql: string; params: Value[] } {
  const collationOf = (table: TableInfo, name: string) => table.columns.find((c) => c.name.toLowerCase() === name.toLowerCase())?.collation ?? null;
  const collate = plan.key.map((k) => {
    const before = collationOf(plan.original, k.source);
    return before && before !== collationOf(plan.shadow, k.target) ? before : null;
  });
  return rangeWhere(plan.key.map((k) => k.target), range, collate.some((c) => c !== null) ? collate : undefined);
}

export class MysqlCopier implements RowCopier {
  /** Chunks whose copy under row locks met a duplicate once: a second time it is data loss (copyChunk). */
  private readonly duplicateSeen = new Set<string>();
  /** Chunks whose copy without row locks met a duplicate: copied again under them. */
  private readonly lockAfterDuplicate = new Set<string>();
  /** Why chunks must lock rows on this server (null: they need not), asked once. */
  private lockReason: Promise<string | null> | null = null;
  rowLocks = false;

  constructor(private readonly ctx: MyContext) {}

  /**
   * Why a chunk cannot read without row locks here, or null. The consistent read relies on
   * commits becoming visible in binlog order: MariaDB's group commit always does that
   * (commit_ordered); MySQL only with binlog_order_commits ON. A Galera node also commits
   * writesets that other nodes certified, in an order of its own: locks there too.
   */
  private whyRowLocks(): Promise<string | null> {
    this.lockReason ??= (async () => {
      if (this.rowLocks) return 'copy-row-locks is set';
      const [r] = await this.ctx.pool.query<RowDataPacket[]>(
        "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('binlog_order_commits', 'wsrep_on')",
      );
      const value = (name: string) => r.find((x) => String(x.Variable_name) === name)?.Value;
      if (String(value('wsrep_on') ?? 'OFF').toUpperCase() === 'ON') return 'wsrep_on is ON (a Galera node)';
      if (this.ctx.flavor !== 'mariadb' && String(value('binlog_order_commits') ?? 'OFF').toUpperCase() !== 'ON') return 'binlog_order_commits is OFF';
      return null;
    })().then((reason) => {
      this.ctx.log.info(
        reason ? { reason } : {},
        reason
          ? 'copying under row locks (LOCK IN SHARE MODE): a write to a row being copied waits for its chunk'
          : 'copying without row locks: each chunk reads after a marker commit, which the server makes visible after every change already applied',
      );
      return reason;
    });
    this.lockReason.catch(() => (this.lockReason = null));
    return this.lockReason;
  }

  /**
   * The ceiling is read with a locking read, not a consistent one. A transaction whose
   * binlog events precede the stream's start position but whose InnoDB commit is not
   * visible yet (two-phase commit: semi-sync AFTER_SYNC waiting for a replica's ACK, or
   * the window inside group commit) is not streamed; if it inserted a new largest key, a
   * plain MAX would miss it and no chunk would ever copy the row. Such a transaction
   * still holds the row locks of its writes, so a locking read that walks down from the
   * top of the key waits for it and then sees its row. Anything the walk does not meet
   * was inserted after it began, so it commits (and is binlogged) after the stream's
   * start and arrives through the stream. READ COMMITTED keeps the walk from taking the
   * gap lock above the largest key, which would hold up the application's appends for as
   * long as the read waits; it waits only for a writer of the top row, once. It does not
   * rely on ordered commits, so it holds under --copy-row-locks too. See ARCHITECTURE,
   * "The copy's ceiling".
   */
  async keyBounds(plan: CopyPlan): Promise<{ min: Value[]; max: Value[] } | null> {
    const cols = plan.key.map((k) => k.source);
    const table = quoteTable(plan.original.ref.schema, plan.original.ref.name);
    const select = cols.map(quoteIdent).join(', ');
    try {
      const max = await withConnection(this.ctx, async (conn) => {
        await conn.query('SET TRANSACTION ISOLATION LEVEL READ COMMITTED');
        await conn.query('START TRANSACTION');
        try {
          const [r] = await conn.query<RowDataPacket[]>({ sql: `SELECT ${select} FROM ${table} ORDER BY ${orderBy(cols, true)} LIMIT 1 LOCK IN SHARE MODE`, rowsAsArray: true });
          await conn.query('COMMIT');
          return r;
        } catch (err) {
          await conn.query('ROLLBACK').catch(() => conn.destroy());
          throw err;
        }
      });
      if (max.length === 0) return null;
      const [min] = await this.ctx.pool.query<RowDataPacket[]>({ sql: `SELECT ${select} FROM ${table} ORDER BY ${orderBy(cols)} LIMIT 1`, rowsAsArray: true });
      return { min: (min[0] ?? max[0]) as unknown as Value[], max: max[0] as unknown as Value[] };
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
    const at = JSON.stringify([range.after, range.upTo]);
    let open = false;
    let lockRows = true;
    // A connection whose one-shot READ COMMITTED never reached its BEGIN must not go back to the pool.
    let isolationPending = false;
    try {
      const zone = await zoneFor(this.ctx, plan);
      // A chunk that met a duplicate is copied again under row locks: deciding whether a
      // duplicate is real reads the original again (checkWarnings), and without locks that
      // read could see rows moved into the range after the copy's own read.
      lockRows = (await this.whyRowLocks()) !== null || this.lockAfterDuplicate.has(at);
      await conn.query(`SET SESSION max_error_count = ${MAX_ERROR_COUNT}`);
      if (!lockRows) {
        // Committed (autocommit) after every change applied so far: see the file's top.
        await conn.query(`INSERT INTO ${quoteTable(plan.original.ref.schema, changelogName(plan.original.ref.name))} (kind, value) VALUES ('chunk', ?)`, [
          JSON.stringify(range.upTo).slice(0, 255),
        ]);
        await conn.query('COMMIT'); // a no-op under autocommit; the marker's commit where the server's default has it off
        isolationPending = true;
        await conn.query('SET TRANSACTION ISOLATION LEVEL READ COMMITTED');
      }
      await conn.query('BEGIN');
      isolationPending = false;
      open = true;
      const rows = await copyRange(conn, plan, range, zone, lockRows);
      if (beforeCommit) await beforeCommit(range);
      await conn.query('COMMIT');
      open = false;
      return { rowsCopied: rows };
    } catch (err) {
      if (open) await conn.query('ROLLBACK').catch(() => conn.destroy());
      // The shadow row a chunk row collides with may be one the stream is about to move or
      // delete: a change committed before the chunk read its row (a key moved from a copied
      // range) whose event is not applied yet. The first time, the chunk is copied again
      // after the stream is applied (withRetries' beforeRetry); a duplicate that is still
      // there then is real (seen: a CI run failed a job with no duplicate in the original).
      // Without row locks the duplicate only sends the chunk to a copy under them, which
      // then has the one retry a locked copy always had.
      if (err instanceof DuplicateKeyError && !lockRows) {
        this.lockAfterDuplicate.add(at);
        throw new TransientDatabaseError(`${err.message} (copying the chunk again under row locks once the changes already logged are applied)`, { cause: err });
      }
      if (err instanceof DuplicateKeyError && !this.duplicateSeen.has(at)) {
        this.duplicateSeen.add(at);
        throw new TransientDatabaseError(`${err.message} (copying the chunk again once the changes already logged are applied, in case one of them removes the other row)`, { cause: err });
      }
      throw wrapError(err, `copying rows of ${plan.original.ref.name}`);
    } finally {
      if (isolationPending) conn.destroy();
      else conn.release();
    }
  }
}

/**
 * Runs the INSERT IGNORE ... SELECT for `range` inside the caller's transaction and checks
 * its warnings. Without `lockRows` the caller's transaction must be READ COMMITTED (at
 * REPEATABLE READ InnoDB share-locks an INSERT ... SELECT's source rows anyway). `zone`: the server's time zone, for TIMESTAMP/DATETIME changes (mysql-conversions.ts).
 */
export async function copyRange(conn: PoolConnection, plan: CopyPlan, range: KeyRange, zone: string | null, lockRows: boolean): Promise<number> {
  const { original, shadow } = plan;
  const keyCols = plan.key.map((k) => k.source);
  const where = rangeWhere(keyCols, range);
  const sql =
    `INSERT IGNORE INTO ${quoteTable(shadow.ref.schema, shadow.ref.name)} (${plan.columns.map((c) => quoteIdent(c.target)).join(', ')}) ` +
    `SELECT ${copyExpressions(plan, zone).join(', ')} FROM ${quoteTable(original.ref.schema, original.ref.name)} ` +
    `WHERE ${where.sql}${lockRows ? ' LOCK IN SHARE MODE' : ''}`;
  let result: ResultSetHeader;
  try {
    [result] = await conn.query<ResultSetHeader>(sql, where.params);
  } catch (err) {
    if (isDataError(err)) throw dataLossForValue(original.ref.name, (err as Error).message, 'copying');
    throw err;
  }
  if (result.warningStatus > 0) await checkWarnings(conn, plan, range, zone);
  return result.affectedRows;
}

async function checkWarnings(conn: PoolConnection, plan: CopyPlan, range: KeyRange, zone: string | null): Promise<void> {
  const [warnings] = await conn.query<RowDataPacket[]>('SHOW WARNINGS');
  const name = plan.original.ref.name;
  const newUnique = new Set(plan.newUniqueIndexes.map((n) => n.toLowerCase()));
  const where = `copying the chunk of ${name} after ${JSON.stringify(range.after)} up to ${range.upTo ? JSON.stringify(range.upTo) : 'the end'}`;
  let wholeRange: boolean | null = null;
  for (const w of warnings) {
    const code = Number(w.Code);
    const message = String(w.Message);
    if (w.Level === 'Note') continue;
    if (code === ER_DUP_ENTRY) {
      const dup = duplicateOf(message);
      if (dup && !newUnique.has(dup.key.toLowerCase())) continue; // PRIMARY / a key the original enforces: the stream's row wins
      wholeRange ??= await wholeRangeInShadow(conn, plan, range);
      if (wholeRange) continue; // the stream's row again, met first on a weakened PRIMARY KEY
      if (!dup) throw dataLossForDuplicate(name, '(unknown key)', '?', where);
      const rows = await collisionsInChunk(conn, plan, range, dup.key).catch(() => null);
      throw dataLossForDuplicate(name, dup.key, dup.value, where, { rows, change: weakeningOf(plan, dup.key) });
    }
    throw dataLossForValue(name, `${w.Level} ${code}: ${message}${await unconvertible(conn, plan, range, zone, columnOf(message))}`, where);
  }
  if (warnings.length === 0) {
    // warningStatus said there were warnings but none could be read: refuse rather than guess.
    throw new DataLossError(`${where}: the server reported warnings that could not be read; refusing to continue. Check max_error_count.`);
  }
}

/**
 * Under IGNORE a value the time zone conversion refused is only "Data truncated": name
 * the first such value of the range, and why, so the user can find and fix it.
 */
async function unconvertible(conn: PoolConnection, plan: CopyPlan, range: KeyRange, zone: string | null, column: string | null): Promise<string> {
  const c = typedColumns(plan).find((x) => x.target === column);
  const shift = c && zoneShift(c.from.type, c.to.type);
  if (!c || !shift || !zone) return '';
  const keyCols = plan.key.map((k) => k.source);
  const where = rangeWhere(keyCols, range);
  const col = quoteIdent(c.source);
  const [r] = await conn.query<RowDataPacket[]>({
    sql: `SELECT ${keyCols.map(quoteIdent).join(', ')}, ${col} FROM ${quoteTable(plan.original.ref.schema, plan.original.ref.name)}
           WHERE ${where.sql} AND ${zoneShiftSql(shift, zone, col, col)} LIKE 'not convertible%' ORDER BY ${orderBy(keyCols)} LIMIT 1`,
    values: where.params,
    rowsAsArray: true,
  });
  const row = r[0] as unknown as Value[] | undefined;
  const example = row ? `; e.g. key (${row.slice(0, -1).map(String).join(', ')}) holds '${String(row[row.length - 1])}'` : '';
  return (
    `. ${c.source} is converted from ${c.from.type} to ${c.to.type} in the server's time zone ${zone}: values outside TIMESTAMP's range in that zone, ` +
    `local times a DST change skips and invalid dates cannot be converted, and a native ALTER in strict mode refuses them too${example}`
  );
}
