// Compares original and shadow before the cut-over on one consistent snapshot.
//
// Connection L takes LOCK TABLES original READ (reads go on, writes wait) while the
// engine drains the stream up to a marker; then connections S1 and S2 start
// transactions WITH CONSISTENT SNAPSHOT (InnoDB takes the snapshot at once); then L
// unlocks. Their snapshots see the original as of the lock and the shadow with every
// change before the lock applied: the two must be equal. Writes are blocked only for
// the drain.
//
// Rows are compared as an order-independent sum of 64-bit row hashes (the first 64 bits
// of each row's SHA-1, summed exactly as DECIMAL) plus a count. SHA-1 rather than MD5:
// MariaDB 10.11 hashed 1M rows of ~300 bytes in 1.5-1.8 s against 2.1-2.5 s for MD5, and
// the net is no weaker (bench/RESULTS.md, sixth session); original and shadow are
// hashed at the same time on two connections whose snapshots are both taken under the
// lock, so they see the same state. Each value enters the row's hash after its byte
// length (NULL as '-'), which keeps the image unambiguous without HEX (HEX made the hash
// 2.5x slower on 1M rows; columnImage). Text is cast to utf8mb4 so columns of different character
// sets can be concatenated; numbers, dates and binary strings go in as they are.
// A column whose type changed renders differently (DECIMAL scale, DATETIME precision,
// a TIMESTAMP become local DATETIME) while being a faithful copy: the original's side
// hashes its value converted to the shadow's type (mysql-conversions.ts). Columns
// without an exact conversion (FLOAT to DOUBLE, say) are not hashed — the copier's
// warnings checked their values — and the job logs once which ones and why.

import type { Connection, RowDataPacket } from 'mysql2/promise';
import type { Checksummer, ChecksumView, CopyPlan, KeyRange, Value } from '../dialect.js';
import { CutoverAttemptError } from '../../util/errors.js';
import { dedicatedConnection, type MyContext } from './mysql-context.js';
import { copyRange, rangeWhere, shadowRangeWhere } from './mysql-copier.js';
import { quoteIdent, quoteTable } from './mysql-quote.js';
import { ER_DUP_ENTRY, dataLossForValue, isDataError, wrapError } from './mysql-errors.js';
import { isConflictBesideKey, keyGuardedUpdate } from './mysql-applier.js';

/** Keys per statement when a range is recopied key by key (CopyPlan.keepsOtherColumns). */
const RECOPY_KEYS_PER_STATEMENT = 2000;
import { convertedForChecksum, copyExpressions, typedColumns, zoneFor } from './mysql-conversions.js';

const TEXT_TYPES = /^(char|varchar|tinytext|text|mediumtext|longtext|enum|set|json)\b/i;

/**
 * `value` (of a column of `type`) as two CONCAT_WS arguments: its byte length ('-' for
 * NULL), then the value itself, which CONCAT_WS leaves out when NULL. The length says
 * where each value ends, so no separator inside a value can make two rows' images equal.
 * Text goes in as utf8mb4 so any character sets concatenate. (About 10% faster over 1M
 * rows than the earlier COALESCE(CONCAT(LENGTH(v), ':', v), '-') per column.)
 */
function columnImage(value: string, type: string): string {
  const v = TEXT_TYPES.test(type) ? `CAST(${value} AS CHAR CHARACTER SET utf8mb4)` : value;
  return `IFNULL(LENGTH(${v}), '-'), ${v}`;
}

export interface ComparedColumn {
  source: string;
  target: string;
  /** The image hashed on each side; the original's is converted to the shadow's type. */
  original: string;
  shadow: string;
}

export interface SkippedColumn {
  column: string;
  from: string;
  to: string;
  reason: string;
}

/** Which carried columns are hashed, and which are not and why. `zone`: see mysql-conversions.ts. */
export function checksumColumns(plan: CopyPlan, zone: string | null): { compared: ComparedColumn[]; skipped: SkippedColumn[] } {
  const compared: ComparedColumn[] = [];
  const skipped: SkippedColumn[] = [];
  for (const c of typedColumns(plan)) {
    const converted = convertedForChecksum(c, quoteIdent(c.source), zone);
    if ('skip' in converted) {
      skipped.push({ column: c.source, from: c.from.type, to: c.to.type, reason: converted.skip });
      continue;
    }
    compared.push({ source: c.source, target: c.target, original: columnImage(converted.sql, c.to.type), shadow: columnImage(quoteIdent(c.target), c.to.type) });
  }
  return { compared, skipped };
}

/** The columns compared (carried across, with an exact conversion where the type changed). */
export function comparedColumns(plan: CopyPlan, zone: string | null = null): ComparedColumn[] {
  return checksumColumns(plan, zone).compared;
}

class MysqlChecksumView implements ChecksumView {
  constructor(
    private readonly original: Connection,
    private readonly shadow: Connection,
    private readonly plan: CopyPlan,
    private readonly columns: ComparedColumn[],
  ) {}

  private async side(which: 'original' | 'shadow', range: KeyRange): Promise<{ n: number; h: string }> {
    const plan = this.plan;
    const t = which === 'original' ? plan.original.ref : plan.shadow.ref;
    // Count and key range still compare rows when no column has an exact conversion.
    const images = this.columns.length > 0 ? this.columns.map((c) => c[which]) : ["''"];
    const where = which === 'original' ? rangeWhere(plan.key.map((k) => k.source), range) : shadowRangeWhere(plan, range);
    const [r] = await this[which].query<RowDataPacket[]>(
      `SELECT COUNT(*) AS n, CAST(COALESCE(SUM(CAST(CONV(LEFT(SHA1(CONCAT_WS('#', ${images.join(', ')})), 16), 16, 10) AS UNSIGNED)), 0) AS CHAR) AS h
         FROM ${quoteTable(t.schema, t.name)} WHERE ${where.sql}`,
      where.params,
    );
    return { n: Number(r[0]!.n), h: String(r[0]!.h) };
  }

  async compare(range: KeyRange): Promise<{ same: boolean; originalRows: number; shadowRows: number }> {
    try {
      const [o, s] = await Promise.all([this.side('original', range), this.side('shadow', range)]);
      return { same: o.n === s.n && o.h === s.h, originalRows: o.n, shadowRows: s.n };
    } catch (err) {
      throw wrapError(err, 'comparing original and shadow');
    }
  }

  async close(): Promise<void> {
    for (const c of [this.original, this.shadow]) {
      await c.query('ROLLBACK').catch(() => undefined);
      await c.end().catch(() => c.destroy());
    }
  }
}

export class MysqlChecksummer implements Checksummer {
  private readonly toldSkipped = new WeakSet<CopyPlan>();

  constructor(private readonly ctx: MyContext) {}

  async open(plan: CopyPlan, options: { lockTimeoutMs: number; drainUnderLock: () => Promise<void> }): Promise<ChecksumView> {
    const { compared: columns, skipped } = checksumColumns(plan, await zoneFor(this.ctx, plan));
    if (skipped.length > 0 && !this.toldSkipped.has(plan)) {
      this.toldSkipped.add(plan);
      this.ctx.log.info({ columns: skipped }, `checksum: not comparing ${skipped.map((c) => `${c.column} (${c.reason})`).join('; ')}`);
    }
    const lock = await dedicatedConnection(this.ctx);
    const snaps = [await dedicatedConnection(this.ctx), await dedicatedConnection(this.ctx)] as const;
    let locked = false;
    try {
      await lock.query(`SET SESSION lock_wait_timeout = ${Math.max(1, Math.ceil(options.lockTimeoutMs / 1000))}`);
      try {
        await lock.query(`LOCK TABLES ${quoteTable(plan.original.ref.schema, plan.original.ref.name)} READ`);
        locked = true;
      } catch (err) {
        throw new CutoverAttemptError(`could not lock ${plan.original.ref.name} for the checksum in time: ${(err as Error).message}`, { cause: err });
      }
      await options.drainUnderLock();
      // Nothing writes either table while the lock is held and the engine waits here,
      // so both snapshots see the same state.
      for (const snap of snaps) {
        await snap.query('SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ');
        await snap.query('START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY');
      }
      await lock.query('UNLOCK TABLES');
      locked = false;
      return new MysqlChecksumView(snaps[0], snaps[1], plan, columns);
    } catch (err) {
      for (const snap of snaps) await snap.end().catch(() => snap.destroy());
      throw err;
    } finally {
      if (locked) await lock.query('UNLOCK TABLES').catch(() => undefined);
      await lock.end().catch(() => lock.destroy());
    }
  }

  /** Every key in `range`, in either table: the rows a recopy of the range deletes or writes. */
  private async keysIn(plan: CopyPlan, range: KeyRange): Promise<Value[][]> {
    const inOriginal = rangeWhere(plan.key.map((k) => k.source), range);
    const inShadow = shadowRangeWhere(plan, range);
    const [rows] = await this.ctx.pool.query<RowDataPacket[]>({
      sql:
        `SELECT ${plan.key.map((k) => quoteIdent(k.source)).join(', ')} FROM ${quoteTable(plan.original.ref.schema, plan.original.ref.name)} WHERE ${inOriginal.sql} UNION ` +
        `SELECT ${plan.key.map((k) => quoteIdent(k.target)).join(', ')} FROM ${quoteTable(plan.shadow.ref.schema, plan.shadow.ref.name)} WHERE ${inShadow.sql}`,
      values: [...inOriginal.params, ...inShadow.params],
      rowsAsArray: true,
    });
    return rows as unknown as Value[][];
  }

  async recopyKeys(plan: CopyPlan, keys: Value[][]): Promise<void> {
    if (keys.length === 0) return;
    const inList = (cols: string[]) => {
      const lhs = cols.length === 1 ? quoteIdent(cols[0]!) : `(${cols.map(quoteIdent).join(', ')})`;
      const tuple = cols.length === 1 ? '?' : `(${cols.map(() => '?').join(', ')})`;
      return `${lhs} IN (${keys.map(() => tuple).join(', ')})`;
    };
    const params = keys.flat();
    const named = keys.map((k) => plan.key.map((c, i) => `${c.source}=${String(k[i])}`).join(', ')).join('; ');
    const conn = await this.ctx.pool.getConnection();
    let open = false;
    const shadow = quoteTable(plan.shadow.ref.schema, plan.shadow.ref.name);
    const original = quoteTable(plan.original.ref.schema, plan.original.ref.name);
    // Strict mode, and no IGNORE: a value the shadow cannot hold is an error here, never a warning.
    const copy = async (inPlace: boolean) =>
      conn.query(
        `INSERT INTO ${shadow} (${plan.columns.map((c) => quoteIdent(c.target)).join(', ')}) ` +
          `SELECT ${copyExpressions(plan, await zoneFor(this.ctx, plan)).join(', ')} FROM ${original} ` +
          `WHERE ${inList(plan.key.map((k) => k.source))} LOCK IN SHARE MODE${inPlace ? ` ${keyGuardedUpdate(plan)}` : ''}`,
        params,
      );
    try {
      await conn.query('BEGIN');
      open = true;
      let whole = !plan.keepsOtherColumns;
      if (!whole) {
        // The shadow's other columns keep their values: delete only the rows gone from the live table.
        const on = plan.key.map((k) => `o.${quoteIdent(k.source)} = s.${quoteIdent(k.target)}`).join(' AND ');
        const lhs = plan.key.length === 1 ? `s.${quoteIdent(plan.key[0]!.target)}` : `(${plan.key.map((k) => `s.${quoteIdent(k.target)}`).join(', ')})`;
        const tuple = plan.key.length === 1 ? '?' : `(${plan.key.map(() => '?').join(', ')})`;
        await conn.query(
          `DELETE s FROM ${shadow} AS s LEFT JOIN ${original} AS o ON ${on} WHERE ${lhs} IN (${keys.map(() => tuple).join(', ')}) AND o.${quoteIdent(plan.key[0]!.source)} IS NULL`,
          params,
        );
        try {
          await copy(true);
        } catch (err) {
          if (!isConflictBesideKey(err, plan)) throw err;
          this.ctx.log.warn({ table: plan.original.ref.name, keys: named }, 'a row taken back conflicted on a unique key with another, stale row and was written whole: its columns the live table lacks took their defaults');
          whole = true;
        }
      }
      if (whole) {
        await conn.query(`DELETE FROM ${shadow} WHERE ${inList(plan.key.map((k) => k.target))}`, params);
        await copy(false);
      }
      await conn.query('COMMIT');
      open = false;
    } catch (err) {
      if (open) await conn.query('ROLLBACK').catch(() => conn.destroy());
      if (isDataError(err) || (err as { errno?: number }).errno === ER_DUP_ENTRY) throw dataLossForValue(plan.original.ref.name, (err as Error).message, 'taking rows back from the live table', named);
      throw wrapError(err, `copying rows of ${plan.original.ref.name} again`);
    } finally {
      conn.release();
    }
  }

  /** Replaces the shadow's rows in `range` with a fresh, share-locked copy of the original's. */
  async recopy(plan: CopyPlan, range: KeyRange): Promise<void> {
    if (plan.keepsOtherColumns) {
      // In parts: a range of the checksum may hold more keys than a statement takes parameters.
      const keys = await this.keysIn(plan, range);
      for (let i = 0; i < keys.length; i += RECOPY_KEYS_PER_STATEMENT) await this.recopyKeys(plan, keys.slice(i, i + RECOPY_KEYS_PER_STATEMENT));
      return;
    }
    const conn = await this.ctx.pool.getConnection();
    let open = false;
    try {
      await conn.query('SET SESSION max_error_count = 65535');
      await conn.query('BEGIN');
      open = true;
      const where = shadowRangeWhere(plan, range);
      await conn.query(`DELETE FROM ${quoteTable(plan.shadow.ref.schema, plan.shadow.ref.name)} WHERE ${where.sql}`, where.params);
      await copyRange(conn, plan, range, await zoneFor(this.ctx, plan), true);
      await conn.query('COMMIT');
      open = false;
    } catch (err) {
      if (open) await conn.query('ROLLBACK').catch(() => conn.destroy());
      throw wrapError(err, `recopying rows of ${plan.original.ref.name}`);
    } finally {
      conn.release();
    }
  }
}
