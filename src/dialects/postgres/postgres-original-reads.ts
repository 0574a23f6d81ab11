// Reads of the original into the shadow, and what they may have seen.
//
// Two kinds of statement put the original's CURRENT values into the shadow: the copier's
// chunks (and the checksum's recopies) and the applier's completion of a partial image
// (completeFromOriginal). Both read ahead of the stream: a row they write may already carry
// changes whose events the applier has not applied yet. For full images that is harmless
// (invariant 2). For a key change with a partial image it is not: such a "move" takes
// the values it lacks (unchanged TOAST) from the shadow row under the old key, and a read
// that already saw the move's transaction put there whatever the original held under that
// key later — another row that moved in, or nothing. Carried along, that row's large
// values end up in the moved row: silent corruption (issue 10).
//
// So every such read records its snapshot (ShadowReads), and a move whose transaction is
// visible in the newest one does not trust the shadow row under the old key: the applier
// deletes it and completes the move's image at its new key from the original instead
// (completeFromOriginal). Why that is exact for every interleaving: docs/ARCHITECTURE.md,
// "Partial key changes".

import type pg from 'pg';
import type { Row, Value } from '../dialect.js';
import { convert, toParam, type PlanSql } from './postgres-plan-sql.js';
import { quoteIdent } from './postgres-quote.js';
import { TransientDatabaseError } from '../../util/errors.js';

/** How long a read of the original waits for the batch's transactions to become visible; then the batch is retried. */
const VISIBLE_WITHIN_MS = 30_000;

interface Snapshot {
  xmin: bigint;
  xmax: bigint;
  xip: Set<bigint>;
}

/** pg_snapshot's text form, `xmin:xmax:xip,...` (64-bit ids). */
function parseSnapshot(text: string): Snapshot {
  const [xmin, xmax, xip] = text.split(':');
  return { xmin: BigInt(xmin!), xmax: BigInt(xmax!), xip: new Set((xip ?? '').split(',').filter(Boolean).map((x) => BigInt(x))) };
}

/**
 * The newest snapshot in which this process read the original into the shadow. One is
 * enough: a snapshot taken later sees every transaction an earlier one saw, so "some read
 * that wrote this row may have seen T" implies "the newest read saw T". It is coarse
 * (one read anywhere makes every move of an older transaction distrust its shadow row),
 * but a distrusted move only costs a read of one row; trusting wrongly costs data.
 */
export class ShadowReads {
  private newest: Snapshot | null = null;

  /**
   * Called after the read's statement, in its transaction: at READ COMMITTED that is a new
   * snapshot, which also covers row versions FOR SHARE waited for and then read (at
   * REPEATABLE READ it is the transaction's, and a locking read cannot go past it).
   */
  async recordCurrent(c: pg.PoolClient): Promise<void> {
    const s = parseSnapshot((await c.query<{ s: string }>(`SELECT pg_current_snapshot()::text AS s`)).rows[0]!.s);
    if (!this.newest || s.xmax >= this.newest.xmax) this.newest = s;
  }

  /**
   * Whether a read may have seen transaction `xid` (64-bit). Before the first read of
   * this process, the shadow may hold rows an earlier run wrote (a resumed job), all
   * before now: a snapshot taken now stands for them.
   */
  async maySee(c: pg.PoolClient, xid: bigint): Promise<boolean> {
    if (!this.newest) await this.recordCurrent(c);
    const s = this.newest!;
    // pg_visible_in_snapshot's rule.
    return xid < s.xmin || (xid < s.xmax && !s.xip.has(xid));
  }
}

/** The transactions of one apply() call: their 64-bit ids, and whether they are known to be visible. */
export class BatchXids {
  private fullIds: Map<number, bigint> | null = null;
  private visible = false;

  constructor(readonly xids: number[]) {}

  /** The stream gives 32-bit ids. Ours (assigned now if this transaction has none yet) is newer than all of them, which committed before this batch was taken, and so gives their epoch. */
  async full(c: pg.PoolClient): Promise<Map<number, bigint>> {
    if (!this.fullIds) {
      const own = BigInt((await c.query<{ x: string }>(`SELECT pg_current_xact_id()::text AS x`)).rows[0]!.x);
      this.fullIds = new Map(
        this.xids.map((x) => {
          const f = (own & ~0xffffffffn) | BigInt(x);
          return [x, f > own ? f - 0x100000000n : f];
        }),
      );
    }
    return this.fullIds;
  }

  /**
   * Polls until every transaction of the batch is visible to a new snapshot: no SQL
   * function waits for a transaction id (XactLockTableWait is internal, and reachable only
   * through a row version the transaction replaced). Usually the first check passes.
   */
  async untilVisible(c: pg.PoolClient): Promise<void> {
    if (this.visible || this.xids.length === 0) return;
    const full = [...(await this.full(c)).values()].map(String);
    const deadline = Date.now() + VISIBLE_WITHIN_MS;
    for (let pause = 1; ; pause = Math.min(50, pause * 2)) {
      const r = await c.query<{ x: string }>(`SELECT x::text AS x FROM unnest($1::xid8[]) AS x WHERE NOT pg_visible_in_snapshot(x, pg_current_snapshot()) LIMIT 1`, [full]);
      if (r.rows.length === 0) break;
      if (Date.now() > deadline) {
        throw new TransientDatabaseError(
          `transaction ${r.rows[0]!.x} has committed (the stream delivered it) but other sessions still do not see it after ${VISIBLE_WITHIN_MS / 1000} s; is a synchronous standby not confirming? The change is applied once it is visible.`,
        );
      }
      await new Promise((res) => setTimeout(res, pause));
    }
    this.visible = true;
  }
}

/**
 * Writes at `key` the change's own image `row`, completed with the values it lacks from
 * the original's row now at `key` (nothing when the original has no row there, or when
 * the shadow already has one). Those values (unchanged TOAST) exist nowhere else: the
 * stream sends them as "unchanged" and, with REPLICA IDENTITY DEFAULT, no old row.
 *
 * Only the missing columns are read: the row now at `key` may be newer than the change,
 * or (when the changed row left `key` since) another row. The change's own values keep
 * the shadow as consistent with the stream as a full image would; a value read ahead
 * could collide, in a unique index the shadow already has, with a row whose own change is
 * still to be applied. Why a newer or other row's values are harmless here:
 * docs/ARCHITECTURE.md, "Partial key changes".
 *
 * The read must see the change it completes, and a plain read may not: the stream
 * delivers a transaction once its commit record is flushed, and the committing backend
 * becomes visible to other snapshots (leaves the proc array) only after that, after
 * waiting for synchronous standbys if there are any. Read in between, an update gives the
 * old version (which the copy then skips as present) and a key change gives nothing at
 * the new key (and the copy of the old key's range no longer finds the row): the change
 * is lost. So first wait until every transaction of the batch is visible to a new
 * snapshot; the read, a later statement at READ COMMITTED, then sees them. It may see
 * later changes too; their events follow and are applied over it — and a move of one of
 * those later transactions must not trust the row written here, hence the snapshot
 * recorded afterwards.
 *
 * A locking read (FOR SHARE, as the copier uses) waits for a transaction only through the
 * row version it replaced; at the new key of a key change there is none, the new version
 * is simply invisible. PostgreSQL's own logical replication never reads the publisher
 * while applying: its table copy runs in the slot's exported snapshot, built from the
 * decoded commit records rather than the proc array, so copy and stream meet exactly, and
 * an update keeps unchanged TOAST values from the subscriber's own row. Our copy runs in
 * chunks while the stream is applied, hence this read and its wait.
 */
export async function completeFromOriginal(c: pg.PoolClient, p: PlanSql, key: Value[], row: Row, batch: BatchXids, reads: ShadowReads): Promise<void> {
  await batch.untilVisible(c);
  const params: unknown[] = [];
  const values = p.columns.map((x) => {
    const v = row[x.source];
    if (v === undefined) return convert(quoteIdent(x.source), x);
    params.push(toParam(v));
    return convert(`$${params.length}::${x.sourceType}`, x);
  });
  const where = p.key.map((k, j) => { params.push(toParam(key[j])); return `${quoteIdent(k.source)} = $${params.length}::${k.sourceType}`; }).join(' AND ');
  await c.query(`SET LOCAL lock_timeout = '5s'`);
  await c.query(
    `INSERT INTO ${p.shadow} (${p.columns.map((x) => quoteIdent(x.target)).join(', ')})${p.overriding ? ' OVERRIDING SYSTEM VALUE' : ''} ` +
      `SELECT ${values.join(', ')} FROM ${p.original} WHERE ${where} ` +
      `ON CONFLICT (${p.key.map((k) => quoteIdent(k.target)).join(', ')}) DO NOTHING`,
    params,
  );
  await reads.recordCurrent(c);
}
