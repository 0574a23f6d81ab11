// Applies change events to the shadow, one transaction per apply().
//
// Events are coalesced by key into groups of final actions (postgres-coalesce.ts says
// how key changes are kept exact), and upserts are INSERT ... ON CONFLICT (key) DO
// UPDATE of the provided columns: the stream's image wins over a copied row.
//
// Unchanged TOAST: an UPDATE that left a large value untouched sends that column as
// `undefined`. Such a row is applied as an UPDATE of only the provided columns, never
// an upsert (which would write NULL or the default). If the row is not in the shadow
// yet, the UPDATE touches nothing. For a row whose key did not change that is safe by
// itself: the row exists in the original (the update committed) and its chunk has not
// been copied yet, because a row that was copied, or inserted after its chunk was
// copied (its insert event precedes this update in the stream and was applied first,
// or coalesced with it into a full image in this batch), is already in the shadow.
// When the chunk is copied later it reads the newest committed version, which contains
// this update and the untouched value. (If the row was deleted meanwhile, its delete
// event follows and the copy skips it.) A moved row may have left its chunk's range
// for one already copied, so every partial image that touched nothing is completed from
// the original at once (completeFromOriginal), after waiting for its transaction.
//
// A key change with a partial image (a move) takes the values it lacks from the shadow
// row under the old key — only if no read of the original into the shadow can have seen
// the move's transaction; otherwise that row may be another one that moved in later, and
// the move's image is completed from the original instead (postgres-original-reads.ts;
// docs/ARCHITECTURE.md, "Partial key changes").

import pg from 'pg';
import type { Applier, ChangeEvent, CopyPlan, Row, RowChange, Value } from '../dialect.js';
import type { PgContext } from './postgres-context.js';
import { classify, pgCode } from './postgres-errors.js';
import { convert, dataLossFrom, lossyValueError, planSql, toParam, type PlanColumn, type PlanSql } from './postgres-plan-sql.js';
import { coalesce, type Action } from './postgres-coalesce.js';
import { quoteIdent } from './postgres-quote.js';
import { BatchXids, completeFromOriginal } from './postgres-original-reads.js';
import { ShadowshiftError, withKeys } from '../../util/errors.js';

const MAX_PARAMS = 30000;

export class PostgresApplier implements Applier {
  private client: pg.PoolClient | null = null;

  constructor(private readonly ctx: PgContext) {}

  async apply(plan: CopyPlan, changes: ChangeEvent[]): Promise<void> {
    // Cascades are a MySQL stream's; PostgreSQL logs every row a cascade changes.
    const events = changes as RowChange[];
    if (events.length === 0) return;
    const p = await planSql(this.ctx.pool, plan);
    if (events.some((e) => e.kind === 'truncate')) {
      throw new ShadowshiftError(
        `${plan.original.ref.name} was TRUNCATEd while the job ran; the copy cannot follow a TRUNCATE. The job stops here and the original is untouched: run it again.`,
      );
    }
    const batch = new BatchXids([...new Set(events.flatMap((e) => (e.kind !== 'truncate' && e.xid !== undefined ? [e.xid] : [])))]);
    try {
      await this.inTransaction(async (c) => {
        for (const group of coalesce(p, events)) await this.applyActions(c, p, plan, group, batch);
      });
    } catch (err) {
      // Coalescing reorders changes across keys; with a unique index besides the key
      // that can collide transiently (two rows swapping a value). Replaying the events
      // one by one, in commit order, reproduces states the original really had.
      if (pgCode(err) === '23505' || pgCode(err) === '23P01') {
        try {
          await this.inTransaction(async (c) => {
            for (const e of events) for (const group of coalesce(p, [e])) await this.applyActions(c, p, plan, group, batch);
          });
          return;
        } catch (err2) {
          throw classify(dataLossFrom(err2, plan, 'applying changes'), 'applying changes');
        }
      }
      const failed = await this.failingRow(p, plan, events, batch, err);
      throw classify(failed ? withKeys(dataLossFrom(err, plan, 'applying changes', failed.text), [failed.key]) : dataLossFrom(err, plan, 'applying changes'), 'applying changes');
    }
  }

  /**
   * Which event's row a value error (a type the value does not fit, NULL into NOT NULL)
   * came from: the events again one at a time, in a transaction rolled back at the first
   * failure. Undefined for other errors, or when none fails again.
   */
  private async failingRow(p: PlanSql, plan: CopyPlan, events: RowChange[], batch: BatchXids, err: unknown): Promise<{ text: string; key: Value[] } | undefined> {
    if (!/^(22|23502)/.test(pgCode(err) ?? '')) return undefined;
    let failed: RowChange | undefined;
    await this.inTransaction(async (c) => {
      for (const e of events) {
        try {
          for (const group of coalesce(p, [e])) await this.applyActions(c, p, plan, group, batch);
        } catch (again) {
          failed = e;
          throw again;
        }
      }
    }).catch(() => undefined);
    const row = failed && failed.kind !== 'truncate' ? (failed.kind === 'delete' ? failed.before : failed.after) : undefined;
    if (!row) return undefined;
    return { text: plan.key.map((k) => `${k.source}=${String(row[k.source])}`).join(', '), key: plan.key.map((k) => row[k.source] ?? null) };
  }

  private async inTransaction(fn: (c: pg.PoolClient) => Promise<void>): Promise<void> {
    const c = this.client ?? (this.client = await this.ctx.pool.connect());
    try {
      // Every statement takes a new snapshot: completeFromOriginal depends on it, whatever
      // default_transaction_isolation the role has.
      await c.query('BEGIN ISOLATION LEVEL READ COMMITTED');
      await fn(c);
      await c.query('COMMIT');
    } catch (err) {
      await c.query('ROLLBACK').catch(() => undefined);
      this.client = null;
      c.release(true);
      throw err;
    }
  }

  async close(): Promise<void> {
    this.client?.release();
    this.client = null;
  }

  private async applyActions(c: pg.PoolClient, p: PlanSql, plan: CopyPlan, actions: Action[], batch: BatchXids): Promise<void> {
    const upserts = actions.filter((a): a is Extract<Action, { op: 'upsert' }> => a.op === 'upsert');
    // The shadow's other columns keep their values (a revert): a fresh row must not take a stale row's.
    const fresh = plan.keepsOtherColumns ? upserts.filter((u) => u.fresh) : [];
    const deletes = [...actions.filter((a) => a.op === 'delete'), ...fresh];
    const moved = fresh.filter((u) => u.fresh === 'moved');
    if (moved.length > 0) {
      this.ctx.log.warn({ table: plan.original.ref.name, rows: moved.length }, 'rows whose key changed since the swap are written whole: their columns the live table lacks take their defaults');
    }
    const updates = actions.filter((a): a is Extract<Action, { op: 'update' | 'move' }> => a.op === 'update' || a.op === 'move');
    await this.checkLossy(c, p, plan, [...upserts, ...updates]);
    // Deletes by key.
    const perDelete = p.key.length;
    for (let i = 0; i < deletes.length; i += Math.floor(MAX_PARAMS / perDelete)) {
      const slice = deletes.slice(i, i + Math.floor(MAX_PARAMS / perDelete));
      const params: unknown[] = [];
      const tuples = slice.map((d) => '(' + p.key.map((k, j) => { params.push(toParam(d.key[j])); return convert(`$${params.length}::${k.sourceType}`, k); }).join(', ') + ')');
      const keyCols = '(' + p.key.map((k) => quoteIdent(k.target)).join(', ') + ')';
      await c.query(`DELETE FROM ${p.shadow} WHERE ${keyCols} IN (VALUES ${tuples.join(', ')})`, params);
    }
    // Partial images (unchanged TOAST). Within a group nothing else writes a key a move
    // reads from (postgres-coalesce.ts), so the order of these steps is free.
    for (const u of updates) await this.applyPartial(c, p, u, batch);
    // Full images: upsert.
    if (upserts.length) {
      const cols = p.columns;
      const per = Math.max(1, Math.floor(MAX_PARAMS / cols.length));
      const conflict = p.key.map((k) => quoteIdent(k.target)).join(', ');
      const keyTargets = new Set(p.key.map((k) => k.target));
      const sets = cols.filter((c2) => !keyTargets.has(c2.target) && !c2.identityAlways).map((c2) => `${quoteIdent(c2.target)} = EXCLUDED.${quoteIdent(c2.target)}`);
      const onConflict = sets.length ? `DO UPDATE SET ${sets.join(', ')}` : 'DO NOTHING';
      for (let i = 0; i < upserts.length; i += per) {
        const slice = upserts.slice(i, i + per);
        const params: unknown[] = [];
        const rows = slice.map((u) => '(' + cols.map((col) => { params.push(toParam(u.row[col.source])); return convert(`$${params.length}::${col.sourceType}`, col); }).join(', ') + ')');
        await c.query(
          `INSERT INTO ${p.shadow} (${cols.map((x) => quoteIdent(x.target)).join(', ')})${p.overriding ? ' OVERRIDING SYSTEM VALUE' : ''} VALUES ${rows.join(', ')} ON CONFLICT (${conflict}) ${onConflict}`,
          params,
        );
      }
    }
  }

  private async applyPartial(c: pg.PoolClient, p: PlanSql, u: Extract<Action, { op: 'update' | 'move' }>, batch: BatchXids): Promise<void> {
    const keyTargets = new Set(p.key.map((k) => k.target));
    const params: unknown[] = [];
    const keyWhere = (key: Value[]) => p.key.map((k, j) => { params.push(toParam(key[j])); return `${quoteIdent(k.target)} = ${convert(`$${params.length}::${k.sourceType}`, k)}`; }).join(' AND ');
    const sets = p.columns
      .filter((col) => u.row[col.source] !== undefined && (u.op === 'move' || !keyTargets.has(col.target)) && !col.identityAlways)
      .map((col) => { params.push(toParam(u.row[col.source])); return `${quoteIdent(col.target)} = ${convert(`$${params.length}::${col.sourceType}`, col)}`; });
    let touched = 0;
    if (u.op === 'move') {
      // A row already at the new key is stale (the key was free in the original when the update ran).
      await this.deleteAt(c, p, u.key);
      if (await this.sourceMayBeNewer(c, u, batch)) {
        // A read of the original may have refilled the old key after the row left it,
        // with a row that moved in later: its values are not this row's. The old key was
        // vacated by this change, so its shadow row goes either way; the moved row's image
        // is completed at its new key below (touched stays 0).
        await this.deleteAt(c, p, u.from);
        this.ctx.log.debug({ from: u.from.map(toParam), to: u.key.map(toParam) }, 'key change with unchanged TOAST values: the old key may hold a newer row; completing the image from the original');
      } else {
        const r = await c.query(`UPDATE ${p.shadow} SET ${sets.join(', ')} WHERE ${keyWhere(u.from)}`, params);
        touched = r.rowCount ?? 0;
      }
    } else if (sets.length) {
      const r = await c.query(`UPDATE ${p.shadow} SET ${sets.join(', ')} WHERE ${keyWhere(u.key)}`, params);
      touched = r.rowCount ?? 0;
    } else {
      return;
    }
    if (touched === 0) {
      // Not in the shadow: normally its chunk is still to be copied (see the comment at
      // the top). For a moved key that chunk may be done already, so complete the image
      // from the original's row now; later events apply on top of it.
      await completeFromOriginal(c, p, u.key, u.row, batch, this.ctx.reads);
    }
  }

  private async deleteAt(c: pg.PoolClient, p: PlanSql, key: Value[]): Promise<void> {
    const params: unknown[] = [];
    await c.query(`DELETE FROM ${p.shadow} WHERE ${p.key.map((k, j) => { params.push(toParam(key[j])); return `${quoteIdent(k.target)} = ${convert(`$${params.length}::${k.sourceType}`, k)}`; }).join(' AND ')}`, params);
  }

  /**
   * Whether a read of the original into the shadow (a chunk, a recopy, completeFromOriginal)
   * may have seen the transaction in which the moved row left its old key. If none can
   * have, the shadow row there is this row as the change found it (docs/ARCHITECTURE.md,
   * "Partial key changes"). Without a transaction id, nothing is proven.
   */
  private async sourceMayBeNewer(c: pg.PoolClient, u: Extract<Action, { op: 'move' }>, batch: BatchXids): Promise<boolean> {
    if (u.xid === undefined) return true;
    const xid = (await batch.full(c)).get(u.xid);
    return xid === undefined || (await this.ctx.reads.maySee(c, xid));
  }

  /** The same silent-rounding guard as the copier, on the values this batch writes. */
  private async checkLossy(c: pg.PoolClient, p: PlanSql, plan: CopyPlan, rows: Array<{ key: Value[]; row: Row }>): Promise<void> {
    const lossy = p.columns.filter((x) => x.lossyCheck);
    for (const col of lossy) {
      const valued = rows.filter((r) => r.row[col.source] !== undefined && r.row[col.source] !== null);
      if (!valued.length) continue;
      const r = await c.query(
        `SELECT v::text AS v, i FROM unnest($1::text[]) WITH ORDINALITY AS t(s, i), LATERAL (SELECT s::${col.sourceType} AS v) x
          WHERE CAST(CAST(${convert('v', col)} AS ${col.targetType}) AS ${col.sourceType}) IS DISTINCT FROM v ORDER BY i LIMIT 1`,
        [valued.map((x) => toParam(x.row[col.source]!))],
      );
      if (r.rows.length) {
        const key = valued[Number(r.rows[0].i) - 1]!.key;
        throw withKeys(lossyValueError(col, r.rows[0].v, plan.key.map((k, i) => `${k.source}=${String(key[i])}`).join(', '), plan.original.ref.name), [key]);
      }
    }
  }
}

// Used by the column list type.
export type { PlanColumn };
