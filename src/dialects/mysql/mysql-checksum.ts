// Compares original and shadow before the cut-over on one consistent snapshot.
//
// Connection L takes LOCK TABLES original READ (reads go on, writes wait) while the
// engine drains the stream up to a marker; then connection S starts a transaction
// WITH CONSISTENT SNAPSHOT (InnoDB takes the snapshot at once); then L unlocks. S's
// snapshot sees the original as of the lock and the shadow with every change before
// the lock applied: the two must be equal. Writes are blocked only for the drain.
//
// Rows are compared as an order-independent hash (two 64-bit halves of per-row MD5s,
// XOR-ed) plus a count. Only columns whose type is the same in both tables are
// hashed: a changed type renders differently (DECIMAL scale, DATETIME precision,
// FLOAT to DOUBLE) while being a faithful copy; those values were checked by the
// copier's warnings instead (mysql-copier.ts).

import type { Connection, RowDataPacket } from 'mysql2/promise';
import type { Checksummer, ChecksumView, CopyPlan, KeyRange } from '../dialect.js';
import { CutoverAttemptError } from '../../util/errors.js';
import { dedicatedConnection, type MyContext } from './mysql-context.js';
import { copyRange, rangeWhere } from './mysql-copier.js';
import { quoteIdent, quoteTable } from './mysql-quote.js';
import { wrapError } from './mysql-errors.js';

const BINARY_TYPES = /^(binary|varbinary|tinyblob|blob|mediumblob|longblob|bit|geometry|point|linestring|polygon|multipoint|multilinestring|multipolygon|geometrycollection)\b/i;

function columnImage(column: string, type: string): string {
  const c = quoteIdent(column);
  const text = BINARY_TYPES.test(type) ? `HEX(${c})` : `HEX(CAST(${c} AS CHAR CHARACTER SET utf8mb4))`;
  return `CONCAT(ISNULL(${c}), COALESCE(${text}, ''))`;
}

/** The columns compared: carried across with the same type on both sides. */
export function comparedColumns(plan: CopyPlan): Array<{ source: string; target: string; type: string }> {
  const typeOf = (cols: CopyPlan['original']['columns'], name: string) => cols.find((c) => c.name === name)?.type ?? '';
  return plan.columns
    .map((m) => ({ ...m, type: typeOf(plan.original.columns, m.source), targetType: typeOf(plan.shadow.columns, m.target) }))
    .filter((m) => m.type.toLowerCase() === m.targetType.toLowerCase())
    .map(({ source, target, type }) => ({ source, target, type }));
}

class MysqlChecksumView implements ChecksumView {
  constructor(private readonly conn: Connection, private readonly plan: CopyPlan) {}

  private async side(which: 'original' | 'shadow', range: KeyRange): Promise<{ n: number; h: string }> {
    const plan = this.plan;
    const t = which === 'original' ? plan.original.ref : plan.shadow.ref;
    const cols = comparedColumns(plan);
    const keyCols = plan.key.map((k) => (which === 'original' ? k.source : k.target));
    const images = [...keyCols.map((k) => columnImage(k, '')), ...cols.map((c) => columnImage(which === 'original' ? c.source : c.target, c.type))];
    const where = rangeWhere(keyCols, range);
    // Each row is hashed once, in the derived table; both halves are read from that one hash.
    const [r] = await this.conn.query<RowDataPacket[]>(
      `SELECT COUNT(*) AS n, CONCAT(BIT_XOR(CAST(CONV(LEFT(x.m, 16), 16, 10) AS UNSIGNED)), '-', BIT_XOR(CAST(CONV(RIGHT(x.m, 16), 16, 10) AS UNSIGNED))) AS h
         FROM (SELECT MD5(CONCAT_WS('#', ${images.join(', ')})) AS m FROM ${quoteTable(t.schema, t.name)} WHERE ${where.sql}) x`,
      where.params,
    );
    return { n: Number(r[0]!.n), h: String(r[0]!.h) };
  }

  async compare(range: KeyRange): Promise<{ same: boolean; originalRows: number; shadowRows: number }> {
    try {
      const o = await this.side('original', range);
      const s = await this.side('shadow', range);
      return { same: o.n === s.n && o.h === s.h, originalRows: o.n, shadowRows: s.n };
    } catch (err) {
      throw wrapError(err, 'comparing original and shadow');
    }
  }

  async close(): Promise<void> {
    await this.conn.query('ROLLBACK').catch(() => undefined);
    await this.conn.end().catch(() => this.conn.destroy());
  }
}

export class MysqlChecksummer implements Checksummer {
  constructor(private readonly ctx: MyContext) {}

  async open(plan: CopyPlan, options: { lockTimeoutMs: number; drainUnderLock: () => Promise<void> }): Promise<ChecksumView> {
    const lock = await dedicatedConnection(this.ctx);
    const snap = await dedicatedConnection(this.ctx);
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
      await snap.query('SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ');
      await snap.query('START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY');
      await lock.query('UNLOCK TABLES');
      locked = false;
      return new MysqlChecksumView(snap, plan);
    } catch (err) {
      await snap.end().catch(() => snap.destroy());
      throw err;
    } finally {
      if (locked) await lock.query('UNLOCK TABLES').catch(() => undefined);
      await lock.end().catch(() => lock.destroy());
    }
  }

  /** Replaces the shadow's rows in `range` with a fresh, share-locked copy of the original's. */
  async recopy(plan: CopyPlan, range: KeyRange): Promise<void> {
    const conn = await this.ctx.pool.getConnection();
    let open = false;
    try {
      await conn.query('SET SESSION max_error_count = 65535');
      await conn.query('BEGIN');
      open = true;
      const where = rangeWhere(plan.key.map((k) => k.target), range);
      await conn.query(`DELETE FROM ${quoteTable(plan.shadow.ref.schema, plan.shadow.ref.name)} WHERE ${where.sql}`, where.params);
      await copyRange(conn, plan, range);
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
