// The change stream: pgoutput over a logical replication slot, read with
// pg-logical-replication 2.5. See FIELD-NOTES for the library's traps; each is
// handled here or in the files this one uses:
//  - acknowledge.auto false, timeoutSeconds 0: the library never acks on its own;
//    only acknowledge(position), called by the engine after applying, moves the slot.
//  - keepalives are answered here (with the last applied LSN), and a status update
//    is sent every 10 s even while reading is paused by a full queue (../change-queue.ts).
//  - a new LogicalReplicationService for every (re)connection; after a reconnect,
//    transactions already queued are skipped by their commit LSN (postgres-pgoutput.ts,
//    which also keeps values as the server's text).
//
// Slot and publication are created in start() (postgres-slot.ts).

import type pg from 'pg';
import { LogicalReplicationService, PgoutputPlugin, type Pgoutput } from 'pg-logical-replication';
import type { ChangeBatch, ChangeStream, CopyPlan, StreamPosition } from '../dialect.js';
import type { PgContext } from './postgres-context.js';
import { quoteQualified } from './postgres-quote.js';
import { ShadowshiftError, TransientDatabaseError } from '../../util/errors.js';
import { isTransient, pgCode } from './postgres-errors.js';
import { ChangeQueue, DEFAULT_MAX_QUEUED } from '../change-queue.js';
import { formatLsn, parseLsn, patchParser, PgoutputDecoder, type PgItem } from './postgres-pgoutput.js';
import { createSlotAndPublication, dropSlotAndPublication, takeOverKeptSlot } from './postgres-slot.js';
import { CopySnapshotExporter } from './postgres-copy-snapshot.js';

export { formatLsn, parseLsn } from './postgres-pgoutput.js';

export interface PostgresChangeStreamOptions {
  slot: string;
  publication: string;
  markerPrefix: string;
  /** Reading pauses when this many events wait (or maxQueuedBytes of values). */
  maxQueuedEvents?: number;
  maxQueuedBytes?: number;
  /** Reconnect attempts after the replication connection drops, before `failed` rejects. */
  maxReconnects?: number;
  /** A new slot exports its snapshot for the copy (postgres-copy-snapshot.ts); nothing is taken until endCopySnapshot(). */
  exportCopySnapshot?: boolean;
}

export class PostgresChangeStream implements ChangeStream {
  private service: LogicalReplicationService | null = null;
  private readonly queue: ChangeQueue<PgItem>;
  private readonly decoder: PgoutputDecoder;
  /** Position of the last batch taken. */
  private lastTaken: StreamPosition | null = null;
  private acked: bigint = 0n;
  private startLsn: string | null = null;
  private stopping = false;
  private reconnects = 0;
  private statusTimer: NodeJS.Timeout | null = null;
  readonly failed: Promise<never>;
  private lastCommitTimeMs: number | null = null;
  /**
   * Holds the copy's snapshot until endCopySnapshot(). The stream is read meanwhile (the
   * server decodes the copy's WAL alongside it, not after it), into the bounded queue, and
   * nothing is taken.
   */
  private exporter: CopySnapshotExporter | null = null;

  constructor(
    private readonly ctx: PgContext,
    private readonly plan: CopyPlan,
    private readonly opts: PostgresChangeStreamOptions,
  ) {
    const maxEvents = opts.maxQueuedEvents ?? DEFAULT_MAX_QUEUED;
    // Stop reading the socket while the queue is full. Keepalive replies still go out
    // from the status timer, so the server does not time us out.
    const socket = () => (this.service as unknown as { _connection?: { stream?: { pause?(): void; resume?(): void } } } | null)?._connection?.stream;
    this.queue = new ChangeQueue<PgItem>({ maxEvents, maxBytes: opts.maxQueuedBytes ?? 256 * 1024 * 1024 }, () => ({
      pause: () => socket()?.pause?.(),
      resume: () => socket()?.resume?.(),
    }));
    this.failed = this.queue.failed;
    this.decoder = new PgoutputDecoder(this.queue, plan, opts.markerPrefix, maxEvents, (err) => this.fail(err));
    ctx.serverAway?.add(this.onServerAway);
  }

  /**
   * Without `from`: creates the publication and the slot (fixing the start position
   * before the first row is copied). With `from` (a resume): the slot and publication
   * kept by an earlier run must exist; reading continues after `from` (the server
   * starts at the later of `from` and the slot's confirmed position).
   */
  async start(from?: StreamPosition): Promise<StreamPosition> {
    const { pool } = this.ctx;
    const table = quoteQualified(this.plan.original.ref.schema, this.plan.original.ref.name);
    if (from) {
      await takeOverKeptSlot(pool, this.opts.slot, this.opts.publication);
      this.startLsn = formatLsn(parseLsn(from));
    } else if (this.opts.exportCopySnapshot) {
      this.startLsn = await createSlotAndPublication(pool, table, this.opts.slot, this.opts.publication, async (slot) => {
        const made = await CopySnapshotExporter.create(this.ctx, slot);
        this.exporter = made.exporter;
        return made.lsn;
      });
    } else {
      this.startLsn = await createSlotAndPublication(pool, table, this.opts.slot, this.opts.publication);
    }
    this.acked = parseLsn(this.startLsn);
    this.decoder.lastQueued = this.acked;
    try {
      await this.connect();
    } catch (err) {
      await this.stop({ keepForResume: Boolean(from) }).catch(() => undefined);
      throw new ShadowshiftError(`cannot start reading the replication slot ${this.opts.slot}: ${(err as Error).message}`, { cause: err });
    }
    // Status updates well inside wal_sender_timeout, also while reading is paused.
    const t = await pool.query<{ ms: string }>(`SELECT setting AS ms FROM pg_settings WHERE name = 'wal_sender_timeout'`).catch(() => null);
    const timeoutMs = Number(t?.rows[0]?.ms ?? 60_000);
    const every = timeoutMs > 0 ? Math.max(200, Math.min(10_000, Math.floor(timeoutMs / 3))) : 10_000;
    this.statusTimer = setInterval(() => this.sendStatus(), every);
    this.statusTimer.unref();
    return formatLsn(parseLsn(this.startLsn));
  }

  copySnapshotState(): 'held' | 'lost' | null {
    if (!this.exporter) return null;
    return this.exporter.held() ? 'held' : 'lost';
  }

  /** Releases the copy's snapshot; take() hands out what was queued meanwhile from then on. */
  async endCopySnapshot(): Promise<void> {
    const exporter = this.exporter;
    if (!exporter) return;
    this.exporter = null;
    await exporter.release();
  }

  private connect(): Promise<void> {
    const service = new LogicalReplicationService(
      { ...this.ctx.clientConfig, application_name: `shadowshift ${this.opts.slot}` },
      { acknowledge: { auto: false, timeoutSeconds: 0 }, flowControl: { enabled: false } },
    );
    guardService(service, (err) => this.ctx.log.debug({ err: err.message }, 'replication connection error (already handled)'));
    const plugin = new PgoutputPlugin({ protoVersion: 1, publicationNames: [this.opts.publication], messages: true });
    patchParser(plugin);
    this.service = service;
    // Anything already received but not committed is discarded; a transaction already
    // queued (commit LSN <= lastQueued) is skipped when the server sends it again.
    this.decoder.reconnected();
    this.queue.sourceReplaced();
    return new Promise<void>((resolve, reject) => {
      let started = false;
      service.on('start', () => {
        started = true;
        this.reconnects = 0;
        resolve();
      });
      service.on('data', (_lsn: string, msg: Pgoutput.Message) => {
        if (service !== this.service) return;
        try {
          this.decoder.onMessage(msg);
        } catch (err) {
          this.fail(err as Error);
        }
      });
      service.on('heartbeat', (_lsn: string, _ts: number, shouldRespond: boolean) => {
        if (service !== this.service) return;
        if (shouldRespond) this.sendStatus();
      });
      const onDrop = (err: unknown) => {
        if (service !== this.service || this.stopping) return;
        if (!started) {
          reject(err);
          return;
        }
        void this.reconnect(err as Error);
      };
      service.on('error', onDrop);
      service
        .subscribe(plugin, this.opts.slot, formatLsn(this.acked))
        .then(() => {
          if (!this.stopping && service === this.service) onDrop(new Error('the replication connection ended'));
        })
        .catch(onDrop);
    });
  }

  private async reconnect(cause: Error): Promise<void> {
    const old = this.service;
    this.service = null;
    await old?.destroy().catch(() => undefined);
    if (this.stopping) return;
    const max = this.opts.maxReconnects ?? 5;
    while (!this.stopping) {
      this.reconnects++;
      if (this.reconnects > max) {
        this.fail(new TransientDatabaseError(`the replication connection for slot ${this.opts.slot} dropped and ${max} reconnects failed: ${cause.message}`, { cause }));
        return;
      }
      this.ctx.log.warn({ slot: this.opts.slot, attempt: this.reconnects, err: cause.message }, 'replication connection dropped; reconnecting');
      await new Promise((r) => setTimeout(r, Math.min(5000, 200 * 2 ** this.reconnects)));
      if (this.stopping) return;
      try {
        await this.connect();
        return;
      } catch (err) {
        cause = err as Error;
        const s = this.service as LogicalReplicationService | null;
        this.service = null;
        await s?.destroy().catch(() => undefined);
        // 55006: the old walsender still holds the slot; wait and retry.
        // A server still away (ECONNREFUSED, 57P03 shutting down) is not final: keep reconnecting.
        if (pgCode(err) && pgCode(err) !== '55006' && !isTransient(err)) {
          this.fail(new ShadowshiftError(`cannot resume reading slot ${this.opts.slot}: ${cause.message}`, { cause }));
          return;
        }
      }
    }
  }

  private fail(err: Error): void {
    if (this.stopping) return;
    this.ctx.log.error({ err: err.message }, 'change stream failed');
    this.queue.fail(err);
  }


  take(maxEvents: number): ChangeBatch | null {
    // While chunks may read at the copy's snapshot nothing may be applied (ChangeStream.copySnapshotState).
    if (this.exporter || this.queue.waiting.length === 0) return null;
    const markers: string[] = [];
    const events = this.queue.take(maxEvents, (item) => {
      if (item.t === 'marker') markers.push(item.id);
      else if (item.t === 'commit') {
        this.lastTaken = item.position;
        this.lastCommitTimeMs = item.commitTimeMs;
      }
      return true;
    });
    this.lastTaken ??= formatLsn(this.acked);
    return { events, position: this.lastTaken, markers };
  }

  backlog(): number {
    return this.queue.backlog();
  }

  waitForData(ms: number): Promise<void> {
    return this.queue.waitForData(ms);
  }

  async acknowledge(position: StreamPosition): Promise<void> {
    const lsn = parseLsn(position);
    if (lsn > this.acked) this.acked = lsn;
    this.sendStatus();
  }

  /** Standby status: everything up to `acked` is applied (flushed). */
  private sendStatus(): void {
    const s = this.service;
    if (!s || this.stopping) return;
    // When nothing is in flight (no open transaction, nothing queued or taken
    // unapplied), the slot may advance to what the server has already sent us.
    const lastTaken = this.lastTaken ? parseLsn(this.lastTaken) : this.acked;
    let lsn = this.acked;
    const serverLsn = (s as unknown as { _lastLsn: string | null })._lastLsn;
    if (!this.decoder.inTx && this.queue.waiting.length === 0 && lastTaken <= this.acked && serverLsn) {
      const sent = parseLsn(serverLsn);
      // The walsender sends a transaction when it decodes its commit, so every
      // transaction of our table committed before `sent` has reached us.
      if (sent > lsn) lsn = this.acked = sent;
    }
    // The library reports `lsn + 1` as written/flushed/applied (it takes the LSN of the
    // last byte received). Our positions are already end positions (a commit's end LSN,
    // the walsender's sent pointer): reporting one byte more makes the slot's
    // confirmed_flush_lsn overshoot, and a reconnect (which starts at the later of the
    // requested position and confirmed_flush_lsn) then skips a transaction whose commit
    // record begins exactly at that end. Seen as a lost update in the connection-drops
    // test. So report exactly `lsn`.
    if (lsn === 0n) return;
    void s.acknowledge(formatLsn(lsn - 1n)).catch(() => undefined);
  }

  async writeMarker(id: string): Promise<void> {
    // The marker's commit is flushed at once (synchronous_commit = local for this one
    // transaction): a logical walsender decodes only flushed WAL, and with
    // synchronous_commit = off the WAL writer flushes only every wal_writer_delay, so the
    // marker (waited for under the cut-over's and the checksum's lock) arrived 200-400 ms
    // late. `local`: flushed here, no wait for synchronous standbys.
    await this.ctx.pool.query(`SELECT set_config('synchronous_commit', 'local', true), pg_logical_emit_message(true, $1, $2)`, [this.opts.markerPrefix, id]);
  }

  lagSeconds(): number | null {
    const first = this.queue.waiting.find((i): i is Extract<PgItem, { t: 'commit' }> => i.t === 'commit');
    if (first) return Math.max(0, (Date.now() - first.commitTimeMs) / 1000);
    if (this.lastCommitTimeMs === null) return null;
    return 0;
  }

  /**
   * The server refused a new connection of the job (it is shutting down, or down): close the
   * replication connection, which would hold a fast shutdown until the job gives up (its
   * walsender waits for the job to confirm what it sent), and reconnect at the confirmed
   * position like after a drop.
   */
  private readonly onServerAway = (err: Error): void => {
    if (!this.service || this.stopping) return;
    this.ctx.log.warn({ slot: this.opts.slot, err: err.message }, 'the server refuses new connections: closing the replication connection until it is back');
    void this.reconnect(err);
  };

  /** Stops reading; drops the slot and publication unless they are kept for a resume. */
  async stop(options?: { keepForResume?: boolean }): Promise<void> {
    this.stopping = true;
    this.ctx.serverAway?.delete(this.onServerAway);
    if (this.statusTimer) clearInterval(this.statusTimer);
    this.statusTimer = null;
    const s = this.service;
    this.service = null;
    await s?.destroy().catch(() => undefined);
    const exporter = this.exporter;
    this.exporter = null;
    await exporter?.release();
    this.queue.wake();
    if (!options?.keepForResume) await this.dropArtefacts();
  }

  private async dropArtefacts(): Promise<void> {
    await dropSlotAndPublication(this.ctx.pool, this.opts.slot, this.opts.publication);
  }
}

type ServiceInternals = {
  _client: pg.Client | null;
  _connection: (NodeJS.EventEmitter & { stream?: NodeJS.EventEmitter }) | null;
  client(): Promise<[pg.Client, NodeJS.EventEmitter]>;
  stop(): Promise<unknown>;
};

/**
 * The library's pg.Client and its Connection get no 'error' listener of ours, and
 * stop() removes every listener from both: a replication connection ended by the
 * server (pg_terminate_backend) could then emit an unhandled 'error' — also on a
 * service object already replaced after a reconnect. Every client and connection the
 * service creates keeps a listener for its whole life, and the service itself always
 * has one (an EventEmitter2 'error' without listener throws).
 */
export function guardService(service: LogicalReplicationService, onError: (err: Error) => void): void {
  const internals = service as unknown as ServiceInternals;
  const guard = (err: Error) => onError(err);
  const protect = (client: pg.Client | null, connection: ServiceInternals['_connection']) => {
    if (client && !client.listeners('error').includes(guard)) client.on('error', guard);
    if (connection && !connection.listeners('error').includes(guard)) connection.on('error', guard);
  };
  const client = internals.client.bind(service);
  internals.client = async () => {
    const result = await client();
    protect(result[0], result[1] as ServiceInternals['_connection']);
    return result;
  };
  const stop = internals.stop.bind(service);
  internals.stop = async () => {
    const c = internals._client;
    const conn = internals._connection;
    protect(c, conn);
    try {
      return await stop();
    } finally {
      // stop() removed every listener: put ours back on the objects it let go.
      protect(c, conn);
    }
  };
  service.on('error', guard);
  const removeAll = service.removeAllListeners.bind(service);
  service.removeAllListeners = ((event?: string | string[]) => {
    removeAll(event as string);
    service.on('error', guard);
    return service;
  }) as typeof service.removeAllListeners;
}

