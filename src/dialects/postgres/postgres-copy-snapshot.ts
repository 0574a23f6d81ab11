// The copy's snapshot. The slot is created on a replication connection that exports the
// snapshot matching the slot's start (CREATE_REPLICATION_SLOT ... (SNAPSHOT 'export')),
// as PostgreSQL's own table sync does. A chunk that reads the original in that snapshot
// sees every transaction that committed before the slot's start and none after; the
// stream brings exactly those after. So the copy takes no row locks, and the window
// between a commit's decoding and its visibility (invariant 3) cannot hurt it.
//
// The price, and so the limits the engine puts on it (engine/copy-loop.ts):
//  - the snapshot lives only while its connection stays open and idle, and it holds back
//    vacuum's horizon for the whole server while it does: the phase is bounded in time;
//  - nothing may be applied while a chunk may still read in it (a delete applied first
//    would be undone by the chunk that copies the row later), so the slot keeps WAL for
//    the whole phase (the stream reads it into its bounded queue, which then pauses): it
//    ends when the slot holds more than --max-slot-lag.
// Ended early (or the connection lost), the rest of the copy reads current data under
// row locks while the stream is applied from the slot's start: that mode's argument
// (postgres-copier.ts) needs only that the slot was made before the chunk read.

import pg from 'pg';
import type { PgContext } from './postgres-context.js';
import { noteConnectFailure } from './postgres-context.js';
import { quoteIdent } from './postgres-quote.js';

export class CopySnapshotExporter {
  private constructor(
    private readonly ctx: PgContext,
    private client: pg.Client | null,
    readonly snapshot: string,
  ) {
    ctx.copySnapshot = snapshot;
    const lose = () => {
      if (!this.client) return;
      this.client = null;
      if (ctx.copySnapshot === snapshot) ctx.copySnapshot = null;
      ctx.log.warn('the connection that holds the copy\'s snapshot ended; the rest of the copy reads current data under row locks');
    };
    client!.on('error', lose);
    client!.on('end', lose);
  }

  /** Creates `slot` on a new replication connection that keeps its snapshot; returns the exporter and the slot's start LSN. */
  static async create(ctx: PgContext, slot: string): Promise<{ exporter: CopySnapshotExporter; lsn: string }> {
    const client = new pg.Client({ ...ctx.clientConfig, application_name: `shadowshift ${slot} snapshot`, replication: 'database' } as pg.ClientConfig);
    client.on('error', () => undefined);
    await client.connect().catch((err: unknown) => Promise.reject(noteConnectFailure(ctx, err)));
    try {
      const r = await client.query<{ consistent_point: string; snapshot_name: string }>(`CREATE_REPLICATION_SLOT ${quoteIdent(slot)} LOGICAL pgoutput (SNAPSHOT 'export')`);
      return { exporter: new CopySnapshotExporter(ctx, client, r.rows[0]!.snapshot_name), lsn: r.rows[0]!.consistent_point };
    } catch (err) {
      await client.end().catch(() => undefined);
      throw err;
    }
  }

  /**
   * False once the connection holding the snapshot ended by itself, or a chunk found the
   * snapshot gone (PostgresCopier.beginAtSnapshot): chunks no longer read in it.
   */
  held(): boolean {
    return this.client !== null && this.ctx.copySnapshot === this.snapshot;
  }

  /** Ends the snapshot (closes its connection); chunks read current data from now on. */
  async release(): Promise<void> {
    if (this.ctx.copySnapshot === this.snapshot) this.ctx.copySnapshot = null;
    const c = this.client;
    this.client = null;
    await c?.end().catch(() => undefined);
  }
}
