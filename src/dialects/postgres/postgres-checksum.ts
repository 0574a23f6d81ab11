// Compares original and shadow before the cut-over on one consistent snapshot.
//
// Connection L locks the original IN SHARE MODE (reads go on, writes wait) while the
// engine drains the stream up to a marker; then connection S starts a REPEATABLE READ
// transaction and takes its snapshot; then L commits, releasing the lock. S's snapshot
// sees the original as of the lock and the shadow with every change before the lock
// applied: the two must be equal. Writes are blocked only for the drain.

import pg from 'pg';
import type { Checksummer, ChecksumView, CopyPlan, KeyRange, Value } from '../dialect.js';
import { dedicatedClient, type PgContext } from './postgres-context.js';
import { classify } from './postgres-errors.js';
import { convert, keyParams, planSql, rowOf, type PlanSql } from './postgres-plan-sql.js';
import { quoteIdent } from './postgres-quote.js';
import { CutoverAttemptError } from '../../util/errors.js';
import { PostgresCopier } from './postgres-copier.js';

function rangeWhere(p: PlanSql, range: KeyRange, params: unknown[], side: 'source' | 'target'): string {
  const k = rowOf(p.key.map((x) => x[side]));
  const conds: string[] = [];
  if (range.after) conds.push(`${k} > ${keyParams(p.key, range.after, params, side === 'target')}`);
  conds.push(`${k} <= ${keyParams(p.key, range.upTo, params, side === 'target')}`);
  return conds.join(' AND ');
}

class PgChecksumView implements ChecksumView {
  constructor(private readonly c: pg.Client, private readonly p: PlanSql) {}

  async compare(range: KeyRange): Promise<{ same: boolean; originalRows: number; shadowRows: number }> {
    const p = this.p;
    // Both sides as the shadow's types: the original's values through the same
    // assignment casts the copy used.
    const oCols = p.columns.map((c) => (c.sourceType === c.targetType ? quoteIdent(c.source) : `CAST(${convert(quoteIdent(c.source), c)} AS ${c.targetType})`));
    const sCols = p.columns.map((c) => quoteIdent(c.target));
    const po: unknown[] = [];
    const ps: unknown[] = [];
    const oSql = `SELECT count(*)::text AS n, coalesce(md5(string_agg(md5(ROW(${oCols.join(', ')})::text), '' ORDER BY ${p.key.map((k) => quoteIdent(k.source)).join(', ')})), '') AS h FROM ${p.original} WHERE ${rangeWhere(p, range, po, 'source')}`;
    const sSql = `SELECT count(*)::text AS n, coalesce(md5(string_agg(md5(ROW(${sCols.join(', ')})::text), '' ORDER BY ${p.key.map((k) => quoteIdent(k.target)).join(', ')})), '') AS h FROM ${p.shadow} WHERE ${rangeWhere(p, range, ps, 'target')}`;
    try {
      const o = await this.c.query<{ n: string; h: string }>(oSql, po);
      const s = await this.c.query<{ n: string; h: string }>(sSql, ps);
      return { same: o.rows[0]!.h === s.rows[0]!.h && o.rows[0]!.n === s.rows[0]!.n, originalRows: Number(o.rows[0]!.n), shadowRows: Number(s.rows[0]!.n) };
    } catch (err) {
      throw classify(err, 'comparing original and shadow');
    }
  }

  async close(): Promise<void> {
    await this.c.query('ROLLBACK').catch(() => undefined);
    await this.c.end().catch(() => undefined);
  }
}

export class PostgresChecksummer implements Checksummer {
  private readonly copier: PostgresCopier;

  constructor(private readonly ctx: PgContext) {
    this.copier = new PostgresCopier(ctx);
  }

  async open(plan: CopyPlan, options: { lockTimeoutMs: number; drainUnderLock: () => Promise<void> }): Promise<ChecksumView> {
    const p = await planSql(this.ctx.pool, plan);
    const lock = await dedicatedClient(this.ctx, 'shadowshift checksum lock');
    const snap = await dedicatedClient(this.ctx, 'shadowshift checksum');
    try {
      await lock.query('BEGIN');
      await lock.query(`SET LOCAL lock_timeout = ${Math.max(1, Math.floor(options.lockTimeoutMs))}`);
      try {
        await lock.query(`LOCK TABLE ${p.original} IN SHARE MODE`);
      } catch (err) {
        const e = classify(err, 'locking the original for the checksum');
        throw new CutoverAttemptError(`could not lock ${plan.original.ref.name} for the checksum in time: ${(e as Error).message}`, { cause: err });
      }
      await options.drainUnderLock();
      await snap.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      await snap.query('SELECT 1'); // the snapshot is taken here, under the lock
      await lock.query('COMMIT');
      return new PgChecksumView(snap, p);
    } catch (err) {
      await snap.end().catch(() => undefined);
      throw err;
    } finally {
      await lock.query('ROLLBACK').catch(() => undefined);
      await lock.end().catch(() => undefined);
    }
  }

  /** Replaces the shadow's rows in `range` with a fresh, share-locked copy of the original's. */
  async recopy(plan: CopyPlan, range: KeyRange): Promise<void> {
    const p = await planSql(this.ctx.pool, plan);
    const params: unknown[] = [];
    const where = rangeWhere(p, range, params, 'target');
    await this.copier.copyChunk(plan, range, undefined, async (client) => {
      await client.query(`DELETE FROM ${p.shadow} WHERE ${where}`, params);
    });
  }
}

export type { Value };
