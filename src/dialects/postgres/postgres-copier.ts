// Chunked copy over the key: INSERT ... SELECT, in one of two modes.
//
// At the copy's snapshot (postgres-copy-snapshot.ts; the default for a new job): each
// chunk reads the original in the snapshot the slot exported, without row locks. The
// chunks together copy the table as it was at the slot's start, and the engine applies
// nothing until they are done, so the stream's changes (every one after that start, in
// commit order) all land on top of the copy. No key is in the shadow before its chunk,
// so a plain INSERT (PostgresCopier.failedAtSnapshot for the one exception).
//
// At current data, under row locks (a resume, or after the snapshot phase ended early),
// with ON CONFLICT (key) DO NOTHING. Why a row deleted or updated while its chunk is
// copied cannot come back or go stale in the shadow (invariant 3):
//
//  1. The replication slot is created before the first chunk is copied, so every
//     change that commits after that point reaches the stream, in commit order.
//  2. The chunk's SELECT runs with FOR SHARE at READ COMMITTED. For each row in the
//     range it waits for any transaction still writing that row, then locks the
//     newest committed version (a row deleted meanwhile is skipped, a row updated
//     meanwhile is re-read in its new version and re-checked against the range).
//     So the chunk inserts into the shadow only the newest committed version of
//     each row, and keeps a share lock on each one until the chunk commits.
//  3. A writer that updates or deletes one of those rows after that must wait for
//     the chunk's COMMIT (the delete/update test in test/postgres/copier.test.ts
//     shows the writer blocked). Its own commit, and so its change event, comes after
//     the chunk's rows are committed in the shadow. The applier applies it then: an
//     update is an upsert (the stream's image wins over the copied one), a delete
//     removes the copied row. Neither can be undone by the copy, which never touches
//     a row twice and never overwrites (ON CONFLICT (key) DO NOTHING).
//  4. Changes that committed before the chunk read a row are already in the version
//     the chunk copied; their events are applied either before the chunk (the copy
//     then skips the key) or after it (the upsert writes the same or a newer image;
//     a delete of a row the chunk could not see is a no-op). Rows inserted after the
//     chunk's snapshot are not copied; their insert events bring them.
//  5. Even if the applier ran concurrently with a chunk (the engine serialises them,
//     but the argument does not depend on it): an upsert on a key the chunk has just
//     inserted waits for the chunk's transaction (unique-index insertion waits on the
//     uncommitted tuple) and then updates it; a delete event for a row the chunk holds
//     cannot exist yet, because the deleting transaction is blocked by the share lock.
//
// ON CONFLICT names the key columns, so a duplicate on any other unique index of the
// shadow (a new UNIQUE over duplicate data) raises instead of dropping the row. The
// key itself compares in the shadow as it does in the original (engine/copy-plan.ts
// never picks one the ALTER weakens), so DO NOTHING never takes two rows for one.

import type pg from 'pg';
import type { BeforeChunkCommit, ChunkResult, CopyPlan, KeyRange, RowCopier, Value } from '../dialect.js';
import type { PgContext } from './postgres-context.js';
import { classify } from './postgres-errors.js';
import { convert, dataLossFrom, keyParams, lossyValueError, planSql, rowOf, type PlanSql } from './postgres-plan-sql.js';
import { quoteIdent, quoteLiteral } from './postgres-quote.js';
import { TransientDatabaseError } from '../../util/errors.js';

function keyList(p: PlanSql, side: 'source' | 'target'): string {
  return rowOf(p.key.map((k) => k[side]));
}

function rangeWhere(p: PlanSql, after: Value[] | null, upTo: Value[] | null, params: unknown[]): string {
  const k = keyList(p, 'source');
  const conds: string[] = [];
  if (after) conds.push(`${k} > ${keyParams(p.key, after, params)}`);
  if (upTo) conds.push(`${k} <= ${keyParams(p.key, upTo, params)}`);
  return conds.length ? conds.join(' AND ') : 'TRUE';
}

const rangeId = (r: KeyRange) => JSON.stringify([r.after, r.upTo]);

function orderBy(p: PlanSql, desc = false): string {
  return p.key.map((k) => quoteIdent(k.source) + (desc ? ' DESC' : '')).join(', ');
}

export class PostgresCopier implements RowCopier {
  /**
   * A chunk at the copy's snapshot inserts without ON CONFLICT: the shadow holds none of
   * its keys (the ranges are disjoint, and nothing is applied before the phase ends), and
   * the speculative insertion ON CONFLICT needs for every row took the copy's INSERT from
   * 2.0 to 4.0 s per 1M rows here, with a second WAL record per row for the walsender to
   * decode. The exception: a chunk at the snapshot that failed may have committed unseen
   * (the connection lost during COMMIT). Its rows are invisible to the snapshot, where
   * even ON CONFLICT fails on them (a serialization failure), so its retry at the
   * snapshot first deletes the rows that chunk's transaction wrote (by xmin: its range
   * in the shadow's key order could take in other chunks' rows where a collation
   * changes), committed on its own. These are the failed ranges and their transactions.
   */
  private readonly failedAtSnapshot = new Map<string, string>();

  constructor(private readonly ctx: PgContext) {}

  async keyBounds(plan: CopyPlan): Promise<{ min: Value[]; max: Value[] } | null> {
    const p = await planSql(this.ctx.pool, plan);
    const cols = p.key.map((k) => quoteIdent(k.source)).join(', ');
    try {
      const min = await this.ctx.pool.query({ text: `SELECT ${cols} FROM ${p.original} ORDER BY ${orderBy(p)} LIMIT 1`, rowMode: 'array' });
      if (min.rows.length === 0) return null;
      const max = await this.ctx.pool.query({ text: `SELECT ${cols} FROM ${p.original} ORDER BY ${orderBy(p, true)} LIMIT 1`, rowMode: 'array' });
      return { min: min.rows[0] as Value[], max: (max.rows[0] ?? min.rows[0]) as Value[] };
    } catch (err) {
      throw classify(err, 'reading the key range');
    }
  }

  async chunkEnd(plan: CopyPlan, after: Value[] | null, size: number, ceiling: Value[]): Promise<Value[]> {
    const p = await planSql(this.ctx.pool, plan);
    const params: unknown[] = [];
    const where = rangeWhere(p, after, ceiling, params);
    const cols = p.key.map((k) => quoteIdent(k.source)).join(', ');
    try {
      const r = await this.ctx.pool.query({
        text: `SELECT ${cols} FROM ${p.original} WHERE ${where} ORDER BY ${orderBy(p)} OFFSET ${Math.max(0, Math.floor(size) - 1)} LIMIT 1`,
        values: params,
        rowMode: 'array',
      });
      return r.rows.length ? (r.rows[0] as Value[]) : ceiling;
    } catch (err) {
      throw classify(err, 'finding the end of a chunk');
    }
  }

  /** `beforeInsert` runs first in the chunk's transaction (the checksum's recopy deletes the range there). */
  async copyChunk(
    plan: CopyPlan,
    range: KeyRange,
    beforeCommit?: BeforeChunkCommit,
    beforeInsert?: (client: pg.PoolClient) => Promise<void>,
  ): Promise<ChunkResult> {
    const p = await planSql(this.ctx.pool, plan);
    const params: unknown[] = [];
    const where = rangeWhere(p, range.after, range.upTo, params);
    const targets = p.columns.map((c) => quoteIdent(c.target)).join(', ');
    const sources = p.columns.map((c) => convert(quoteIdent(c.source), c)).join(', ');
    const snapshot = this.ctx.copySnapshot ?? null;
    const sql =
      `INSERT INTO ${p.shadow} (${targets})${p.overriding ? ' OVERRIDING SYSTEM VALUE' : ''} ` +
      `SELECT ${sources} FROM ${p.original} WHERE ${where} ORDER BY ${orderBy(p)}` +
      (snapshot ? '' : ` FOR SHARE ON CONFLICT (${p.key.map((k) => quoteIdent(k.target)).join(', ')}) DO NOTHING`);
    const failedXid = snapshot ? this.failedAtSnapshot.get(rangeId(range)) : undefined;
    if (failedXid !== undefined) {
      await this.ctx.pool.query(`DELETE FROM ${p.shadow} WHERE xmin = $1::xid`, [failedXid]).catch((err: unknown) => Promise.reject(classify(err, 'clearing a failed chunk')));
      this.failedAtSnapshot.delete(rangeId(range));
    }
    let xid: string | undefined;
    const client = await this.ctx.pool.connect();
    let ok = false;
    try {
      if (snapshot) await this.beginAtSnapshot(client, snapshot);
      else await client.query('BEGIN');
      // Under row locks the chunk share-locks its rows as it reads them. If it has to wait
      // for an application transaction holding one, it gives up quickly
      // (TransientDatabaseError, the engine retries) rather than keep the rows it already
      // locked from other writers, and before the deadlock detector (deadlock_timeout, 1 s
      // by default) could pick an application transaction as the victim. At the snapshot
      // only a queued ACCESS EXCLUSIVE can make it wait, and the same applies.
      await client.query(`SET LOCAL lock_timeout = '500ms'`);
      if (beforeInsert) await beforeInsert(client);
      const r = await client.query(sql, params);
      // The transaction's id as the rows' xmin holds it (32 bits), for the retry's cleanup.
      if (snapshot) xid = (await client.query<{ x: string }>(`SELECT (pg_current_xact_id()::text::bigint % 4294967296)::text AS x`)).rows[0]!.x;
      await this.checkLossy(client, p, plan, where, params);
      // Rows copied here may be newer than events still to be applied; a key change with
      // unchanged TOAST values among those must not take them from this chunk's rows
      // (postgres-original-reads.ts). Taken after the INSERT: at READ COMMITTED that
      // snapshot also covers the versions FOR SHARE waited for and then read.
      await this.ctx.reads.recordCurrent(client);
      if (beforeCommit) await beforeCommit(range);
      await client.query('COMMIT');
      ok = true;
      return { rowsCopied: r.rowCount ?? 0 };
    } catch (err) {
      if (xid !== undefined) this.failedAtSnapshot.set(rangeId(range), xid);
      await client.query('ROLLBACK').catch(() => undefined);
      throw classify(dataLossFrom(err, plan, 'copying rows'), 'copying rows');
    } finally {
      client.release(ok ? undefined : true);
    }
  }

  /** A chunk's transaction reading in the copy's snapshot; a snapshot gone (its connection ended) is a retry in the other mode. */
  private async beginAtSnapshot(client: pg.PoolClient, snapshot: string): Promise<void> {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
    try {
      await client.query(`SET TRANSACTION SNAPSHOT ${quoteLiteral(snapshot)}`);
    } catch (err) {
      if ((err as { code?: string }).code !== '22023') throw err;
      if (this.ctx.copySnapshot === snapshot) this.ctx.copySnapshot = null;
      throw new TransientDatabaseError(`the copy's snapshot ${snapshot} is gone (${(err as Error).message}); copying on under row locks`, { cause: err });
    }
  }

  /**
   * A type change that PostgreSQL's assignment cast rounds (numeric scale, timestamp
   * precision, numeric to integer) would change data silently. The chunk's rows are
   * share-locked, or read in the copy's snapshot, so this second read sees exactly the
   * versions that were copied.
   */
  async checkLossy(client: pg.PoolClient, p: PlanSql, plan: CopyPlan, where: string, params: unknown[]): Promise<void> {
    for (const c of p.columns.filter((x) => x.lossyCheck)) {
      const col = quoteIdent(c.source);
      const keyText = p.key.map((k) => `${quoteIdent(k.source)}::text`).join(` || ',' || `);
      const r = await client.query({
        text: `SELECT ${col}::text AS v, ${keyText} AS k FROM ${p.original} WHERE ${where} AND CAST(CAST(${convert(col, c)} AS ${c.targetType}) AS ${c.sourceType}) IS DISTINCT FROM ${col} LIMIT 1`,
        values: params,
      });
      if (r.rows.length) throw lossyValueError(c, r.rows[0].v, r.rows[0].k, plan.original.ref.name);
    }
  }
}
