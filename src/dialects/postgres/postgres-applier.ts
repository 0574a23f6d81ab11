// Applies change events to the shadow, one transaction per apply().
//
// Events are coalesced by key (the last image of each key wins), deletes run before
// upserts, and upserts are INSERT ... ON CONFLICT (key) DO UPDATE of the provided
// columns: the stream's image wins over a copied row.
//
// Unchanged TOAST: an UPDATE that left a large value untouched sends that column as
// `undefined`. Such a row is applied as an UPDATE of only the provided columns, never
// an upsert (which would write NULL or the default). If the row is not in the shadow
// yet, the UPDATE touches nothing, and that is safe: the row exists in the original
// (the update committed) and its chunk has not been copied yet, because a row that
// was copied, or inserted after its chunk was copied (its insert event precedes this
// update in the stream and was applied first, or coalesced with it into a full image
// in this batch), is already in the shadow. When the chunk is copied later it reads
// the newest committed version, which contains this update and the untouched value.
// (If the row was deleted meanwhile, its delete event follows and the copy skips it.)

import pg from 'pg';
import type { Applier, ChangeEvent, CopyPlan, Row, Value } from '../dialect.js';
import type { PgContext } from './postgres-context.js';
import { classify, pgCode } from './postgres-errors.js';
import { convert, dataLossFrom, lossyValueError, planSql, toParam, type PlanColumn, type PlanSql } from './postgres-plan-sql.js';
import { quoteIdent } from './postgres-quote.js';
import { ShadowshiftError } from '../../util/errors.js';

type Action =
  | { op: 'delete'; key: Value[] }
  | { op: 'upsert'; key: Value[]; row: Row }
  /** A partial image (unchanged TOAST): update the provided columns only. */
  | { op: 'update'; key: Value[]; row: Row }
  /** A partial image whose key changed: move the shadow row from oldKey, keeping its unchanged columns. */
  | { op: 'move'; key: Value[]; oldKey: Value[]; row: Row };

const MAX_PARAMS = 30000;

function keyOf(p: PlanSql, row: Row): Value[] | null {
  const out: Value[] = [];
  for (const k of p.key) {
    const v = row[k.source];
    if (v === undefined || v === null) return null;
    out.push(v);
  }
  return out;
}

const keyString = (k: Value[]) => JSON.stringify(k.map((v) => toParam(v)));

export class PostgresApplier implements Applier {
  private client: pg.PoolClient | null = null;

  constructor(private readonly ctx: PgContext) {}

  async apply(plan: CopyPlan, events: ChangeEvent[]): Promise<void> {
    if (events.length === 0) return;
    const p = await planSql(this.ctx.pool, plan);
    if (events.some((e) => e.kind === 'truncate')) {
      throw new ShadowshiftError(
        `${plan.original.ref.name} was TRUNCATEd while the job ran; the copy cannot follow a TRUNCATE. The job stops here and the original is untouched: run it again.`,
      );
    }
    try {
      await this.inTransaction((c) => this.applyActions(c, p, plan, coalesce(p, events)));
    } catch (err) {
      // Coalescing reorders changes across keys; with a unique index besides the key
      // that can collide transiently (two rows swapping a value). Replaying the events
      // one by one, in commit order, reproduces states the original really had.
      if (pgCode(err) === '23505' || pgCode(err) === '23P01') {
        try {
          await this.inTransaction(async (c) => {
            for (const e of events) await this.applyActions(c, p, plan, coalesce(p, [e]));
          });
          return;
        } catch (err2) {
          throw classify(dataLossFrom(err2, plan, 'applying changes'), 'applying changes');
        }
      }
      throw classify(dataLossFrom(err, plan, 'applying changes'), 'applying changes');
    }
  }

  private async inTransaction(fn: (c: pg.PoolClient) => Promise<void>): Promise<void> {
    const c = this.client ?? (this.client = await this.ctx.pool.connect());
    try {
      await c.query('BEGIN');
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

  private async applyActions(c: pg.PoolClient, p: PlanSql, plan: CopyPlan, actions: Action[]): Promise<void> {
    const deletes = actions.filter((a) => a.op === 'delete');
    const upserts = actions.filter((a): a is Extract<Action, { op: 'upsert' }> => a.op === 'upsert');
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
    // Partial images (unchanged TOAST), before the upserts so that a key freed by a
    // move can be taken by a new row in the same batch.
    for (const u of updates) await this.applyPartial(c, p, u);
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

  private async applyPartial(c: pg.PoolClient, p: PlanSql, u: Extract<Action, { op: 'update' | 'move' }>): Promise<void> {
    const keyTargets = new Set(p.key.map((k) => k.target));
    const params: unknown[] = [];
    const keyWhere = (key: Value[]) => p.key.map((k, j) => { params.push(toParam(key[j])); return `${quoteIdent(k.target)} = ${convert(`$${params.length}::${k.sourceType}`, k)}`; }).join(' AND ');
    const sets = p.columns
      .filter((col) => u.row[col.source] !== undefined && (u.op === 'move' || !keyTargets.has(col.target)) && !col.identityAlways)
      .map((col) => { params.push(toParam(u.row[col.source])); return `${quoteIdent(col.target)} = ${convert(`$${params.length}::${col.sourceType}`, col)}`; });
    let touched = 0;
    if (u.op === 'move') {
      // A row already at the new key is stale (the key was free in the original when the update ran).
      const delParams: unknown[] = [];
      await c.query(`DELETE FROM ${p.shadow} WHERE ${p.key.map((k, j) => { delParams.push(toParam(u.key[j])); return `${quoteIdent(k.target)} = ${convert(`$${delParams.length}::${k.sourceType}`, k)}`; }).join(' AND ')}`, delParams);
      const r = await c.query(`UPDATE ${p.shadow} SET ${sets.join(', ')} WHERE ${keyWhere(u.oldKey)}`, params);
      touched = r.rowCount ?? 0;
    } else if (sets.length) {
      const r = await c.query(`UPDATE ${p.shadow} SET ${sets.join(', ')} WHERE ${keyWhere(u.key)}`, params);
      touched = r.rowCount ?? 0;
    } else {
      return;
    }
    if (touched === 0) {
      // Not in the shadow: normally its chunk is still to be copied (see the comment at
      // the top). For a moved key that chunk may be done already, so read the row's
      // current version from the original now; later events apply on top of it.
      await this.fetchFromOriginal(c, p, u.key);
    }
  }

  private async fetchFromOriginal(c: pg.PoolClient, p: PlanSql, key: Value[]): Promise<void> {
    const params: unknown[] = [];
    const where = p.key.map((k, j) => { params.push(toParam(key[j])); return `${quoteIdent(k.source)} = $${params.length}::${k.sourceType}`; }).join(' AND ');
    await c.query(`SET LOCAL lock_timeout = '5s'`);
    await c.query(
      `INSERT INTO ${p.shadow} (${p.columns.map((x) => quoteIdent(x.target)).join(', ')})${p.overriding ? ' OVERRIDING SYSTEM VALUE' : ''} ` +
        `SELECT ${p.columns.map((x) => convert(quoteIdent(x.source), x)).join(', ')} FROM ${p.original} WHERE ${where} ` +
        `ON CONFLICT (${p.key.map((k) => quoteIdent(k.target)).join(', ')}) DO NOTHING`,
      params,
    );
  }

  /** The same silent-rounding guard as the copier, on the values this batch writes. */
  private async checkLossy(c: pg.PoolClient, p: PlanSql, plan: CopyPlan, rows: Array<{ key: Value[]; row: Row }>): Promise<void> {
    const lossy = p.columns.filter((x) => x.lossyCheck);
    for (const col of lossy) {
      const vals = rows.map((r) => r.row[col.source]).filter((v) => v !== undefined && v !== null).map(toParam);
      if (!vals.length) continue;
      const r = await c.query(
        `SELECT v::text AS v FROM unnest($1::text[]) AS t(s), LATERAL (SELECT s::${col.sourceType} AS v) x WHERE CAST(CAST(${convert('v', col)} AS ${col.targetType}) AS ${col.sourceType}) IS DISTINCT FROM v LIMIT 1`,
        [vals],
      );
      if (r.rows.length) throw lossyValueError(col, r.rows[0].v, '(from the change stream)', plan.original.ref.name);
    }
  }
}

function missingKey(p: PlanSql): ShadowshiftError {
  return new ShadowshiftError(
    `a change event carries no value for the key column(s) ${p.key.map((k) => k.source).join(', ')} of the old row: the table's replica identity does not cover the copy key. Set REPLICA IDENTITY DEFAULT (primary key) or FULL and run the job again.`,
  );
}

/** The last image of each key, in first-seen order. */
export function coalesce(p: PlanSql, events: ChangeEvent[]): Action[] {
  const state = new Map<string, Action>();
  const set = (a: Action) => {
    const ks = keyString(a.key);
    state.delete(ks); // keep the order of the latest change
    state.set(ks, a);
  };
  const isPartial = (row: Row) => p.columns.some((col) => row[col.source] === undefined);
  for (const e of events) {
    if (e.kind === 'truncate') continue;
    if (e.kind === 'delete') {
      const key = keyOf(p, e.before);
      if (!key) throw missingKey(p);
      set({ op: 'delete', key });
      continue;
    }
    const key = keyOf(p, e.after);
    if (!key) throw new ShadowshiftError(`a change event has no value for a key column (${p.key.map((k) => k.source).join(', ')})`);
    let row = e.after;
    let oldKey: Value[] | undefined;
    if (e.kind === 'update' && e.before) {
      const old = keyOf(p, e.before);
      if (!old) throw missingKey(p);
      if (keyString(old) !== keyString(key)) {
        const prevOld = state.get(keyString(old));
        if (prevOld && prevOld.op !== 'delete' && isPartial(row)) {
          // The old key's image from earlier in this batch fills in the unchanged columns.
          const merged: Row = { ...prevOld.row };
          for (const [k, v] of Object.entries(row)) if (v !== undefined) merged[k] = v;
          row = merged;
        }
        if (isPartial(row)) oldKey = prevOld && prevOld.op === 'move' ? prevOld.oldKey : old;
        set({ op: 'delete', key: old });
        if (oldKey) state.delete(keyString(old));
      }
    }
    if (!isPartial(row)) {
      set({ op: 'upsert', key, row });
      continue;
    }
    const prev = state.get(keyString(key));
    if (!oldKey && prev && prev.op !== 'delete') {
      const merged: Row = { ...prev.row };
      for (const [k, v] of Object.entries(row)) if (v !== undefined) merged[k] = v;
      if (prev.op === 'move') set({ op: 'move', key, oldKey: prev.oldKey, row: merged });
      else set({ op: isPartial(merged) ? 'update' : 'upsert', key, row: merged });
    } else if (oldKey) {
      set({ op: 'move', key, oldKey, row });
    } else {
      set({ op: 'update', key, row });
    }
  }
  return [...state.values()];
}

// Used by the column list type.
export type { PlanColumn };
