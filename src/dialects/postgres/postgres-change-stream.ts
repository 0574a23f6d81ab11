// The change stream: pgoutput over a logical replication slot, read with
// pg-logical-replication 2.5. See FIELD-NOTES for the library's traps; each is
// handled here:
//  - acknowledge.auto false, timeoutSeconds 0: the library never acks on its own;
//    only acknowledge(position), called by the engine after applying, moves the slot.
//  - keepalives are answered here (with the last applied LSN), and a status update
//    is sent every 10 s even while reading is paused by a full queue.
//  - a new LogicalReplicationService for every (re)connection; after a reconnect,
//    transactions already queued are skipped by their commit LSN.
//  - LSNs are compared as BigInt.
//  - values stay text: the parser's per-type conversion (dates, JSON.parse, …) and its
//    BOM-stripping text decoder are replaced by a pass-through of the raw text.
//  - unchanged TOAST columns stay `undefined`.
//
// Slot and publication are created in start(), publication first (pgoutput reads it
// through the historic catalog snapshot, so it must exist before the slot's start).

import pg from 'pg';
import { LogicalReplicationService, PgoutputPlugin, type Pgoutput } from 'pg-logical-replication';
import type { ChangeBatch, ChangeEvent, ChangeStream, CopyPlan, Row, StreamPosition } from '../dialect.js';
import type { PgContext } from './postgres-context.js';
import { quoteIdent, quoteQualified } from './postgres-quote.js';
import { ShadowshiftError, TransientDatabaseError } from '../../util/errors.js';
import { pgCode } from './postgres-errors.js';

export function parseLsn(lsn: string): bigint {
  const m = /^([0-9A-Fa-f]+)\/([0-9A-Fa-f]+)$/.exec(lsn.trim());
  if (!m) throw new Error(`not an LSN: ${lsn}`);
  return (BigInt('0x' + m[1]) << 32n) | BigInt('0x' + m[2]);
}

export function formatLsn(v: bigint): string {
  return `${(v >> 32n).toString(16).toUpperCase()}/${(v & 0xffffffffn).toString(16).toUpperCase()}`;
}

const exactDecoder = new TextDecoder('utf-8', { ignoreBOM: true });

/** Replaces the parser's tuple reader: raw text, no type parsers, BOM kept, unchanged TOAST = undefined. */
function patchParser(plugin: PgoutputPlugin): void {
  const parser = (plugin as unknown as { parser: Record<string, unknown> }).parser;
  parser.readTuple = function readTuple(
    reader: { readInt16(): number; readUint8(): number; readInt32(): number; read(n: number): Uint8Array },
    relation: { columns: Array<{ name: string }> },
    unchangedToastFallback?: Record<string, unknown> | null,
  ) {
    const n = reader.readInt16();
    const tuple: Record<string, unknown> = Object.create(null);
    for (let i = 0; i < n; i++) {
      const name = relation.columns[i]!.name;
      const kind = reader.readUint8();
      if (kind === 0x74 /* t */ || kind === 0x62 /* b */) {
        const size = reader.readInt32();
        const buf = reader.read(size);
        tuple[name] = kind === 0x74 ? exactDecoder.decode(buf) : Buffer.from(buf);
      } else if (kind === 0x6e /* n */) {
        tuple[name] = null;
      } else if (kind === 0x75 /* u */) {
        tuple[name] = unchangedToastFallback?.[name];
      } else {
        throw new Error(`unknown pgoutput attribute kind ${String.fromCharCode(kind)}`);
      }
    }
    return tuple;
  };
}

type Item =
  | { t: 'event'; e: ChangeEvent; bytes: number }
  | { t: 'marker'; id: string }
  | { t: 'commit'; position: StreamPosition; commitTimeMs: number };

export interface PostgresChangeStreamOptions {
  slot: string;
  publication: string;
  markerPrefix: string;
  /** Reading pauses when this many events wait (or maxQueuedBytes of values). */
  maxQueuedEvents?: number;
  maxQueuedBytes?: number;
  /** Reconnect attempts after the replication connection drops, before `failed` rejects. */
  maxReconnects?: number;
}

export class PostgresChangeStream implements ChangeStream {
  private service: LogicalReplicationService | null = null;
  private readonly items: Item[] = [];
  private pending: Item[] = [];
  private queuedEvents = 0;
  private queuedBytes = 0;
  private inTx = false;
  private skipTx = false;
  /** Commit LSN (end) of the last transaction queued; a reconnect skips up to it. */
  private lastQueued = 0n;
  /** Position of the last batch taken. */
  private lastTaken: StreamPosition | null = null;
  private acked: bigint = 0n;
  private startLsn: string | null = null;
  private stopping = false;
  private paused = false;
  private reconnects = 0;
  private statusTimer: NodeJS.Timeout | null = null;
  private waiters: Array<() => void> = [];
  private rejectFailed!: (err: Error) => void;
  readonly failed: Promise<never>;
  private lastCommitTimeMs: number | null = null;
  private readonly maxEvents: number;
  private readonly maxBytes: number;

  constructor(
    private readonly ctx: PgContext,
    private readonly plan: CopyPlan,
    private readonly opts: PostgresChangeStreamOptions,
  ) {
    this.failed = new Promise<never>((_, reject) => {
      this.rejectFailed = reject;
    });
    this.failed.catch(() => undefined);
    this.maxEvents = opts.maxQueuedEvents ?? 50_000;
    this.maxBytes = opts.maxQueuedBytes ?? 256 * 1024 * 1024;
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
      const r = await pool.query<{ slot: string | null; pub: string | null }>(
        `SELECT (SELECT slot_name FROM pg_replication_slots WHERE slot_name = $1) AS slot, (SELECT pubname FROM pg_publication WHERE pubname = $2) AS pub`,
        [this.opts.slot, this.opts.publication],
      );
      if (!r.rows[0]?.slot || !r.rows[0]?.pub) {
        throw new ShadowshiftError(
          `cannot resume: the replication slot ${this.opts.slot} or publication ${this.opts.publication} kept by the earlier run is gone, so changes since then are lost to the job. Run \`shadowshift cleanup\` and start the job again without --resume.`,
        );
      }
      await releaseSlotOfDeadRun(pool, this.opts.slot);
      this.startLsn = formatLsn(parseLsn(from));
    } else {
      // Publishing a table without a replica identity makes the application's UPDATE and
      // DELETE on it fail: never do that, whatever the preflight said.
      const ri = await pool.query<{ ok: string }>(
        `SELECT (c.relreplident = 'f' OR (c.relreplident = 'd' AND EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary))
                 OR (c.relreplident = 'i' AND EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisreplident)))::text AS ok
           FROM pg_class c WHERE c.oid = $1::regclass`,
        [table],
      );
      if (ri.rows[0]?.ok !== 'true') {
        throw new ShadowshiftError(`${table} has no replica identity (no primary key); publishing it would make the application's UPDATE and DELETE fail. Add a primary key first.`);
      }
      try {
        await pool.query(`CREATE PUBLICATION ${quoteIdent(this.opts.publication)} FOR TABLE ${table}`);
        const r = await pool.query<{ lsn: string }>(
          `SELECT lsn::text AS lsn FROM pg_create_logical_replication_slot($1, 'pgoutput')`,
          [this.opts.slot],
        );
        this.startLsn = r.rows[0]!.lsn;
      } catch (err) {
        await this.dropArtefacts().catch(() => undefined);
        throw new ShadowshiftError(`cannot create the replication slot and publication for ${table}: ${(err as Error).message}`, { cause: err });
      }
    }
    this.acked = parseLsn(this.startLsn);
    this.lastQueued = this.acked;
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
    this.pending = [];
    this.inTx = false;
    this.paused = false;
    return new Promise<void>((resolve, reject) => {
      let started = false;
      service.on('start', () => {
        started = true;
        this.reconnects = 0;
        resolve();
      });
      service.on('data', (lsn: string, msg: Pgoutput.Message) => {
        if (service !== this.service) return;
        try {
          this.onMessage(lsn, msg);
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
        if (pgCode(err) && pgCode(err) !== '55006' && pgCode(err)?.startsWith('08') === false) {
          this.fail(new ShadowshiftError(`cannot resume reading slot ${this.opts.slot}: ${cause.message}`, { cause }));
          return;
        }
      }
    }
  }

  private fail(err: Error): void {
    if (this.stopping) return;
    this.ctx.log.error({ err: err.message }, 'change stream failed');
    this.rejectFailed(err);
    this.wake();
  }

  private onMessage(_lsn: string, msg: Pgoutput.Message): void {
    switch (msg.tag) {
      case 'begin': {
        this.inTx = true;
        this.pending = [];
        // Already queued before a reconnect: skip it.
        this.skipTx = msg.commitLsn !== null && parseLsn(msg.commitLsn) < this.lastQueued;
        return;
      }
      case 'commit': {
        this.inTx = false;
        const end = parseLsn(msg.commitEndLsn ?? msg.commitLsn ?? '0/0');
        if (!this.skipTx) {
          const commitTimeMs = Number((msg.commitTime as bigint) / 1000n);
          this.pushAll(this.pending);
          this.push({ t: 'commit', position: formatLsn(end), commitTimeMs });
          this.lastQueued = end;
        }
        this.pending = [];
        this.skipTx = false;
        this.wake();
        return;
      }
      case 'insert':
        this.add({ kind: 'insert', after: this.row(msg.new) });
        return;
      case 'update': {
        const before = msg.key ?? msg.old;
        this.add({ kind: 'update', before: before ? this.row(before) : null, after: this.row(msg.new) });
        return;
      }
      case 'delete': {
        const before = msg.key ?? msg.old;
        if (before) this.add({ kind: 'delete', before: this.row(before) });
        return;
      }
      case 'truncate':
        this.add({ kind: 'truncate' });
        return;
      case 'message': {
        if (msg.prefix !== this.opts.markerPrefix) return;
        const id = exactDecoder.decode(msg.content);
        if (!this.inTx) {
          this.push({ t: 'marker', id });
          this.wake();
        } else if (!this.skipTx) this.pending.push({ t: 'marker', id });
        return;
      }
      case 'relation': {
        // Someone altered the original while the job runs: the copy plan no longer fits.
        const expected = this.plan.original.columns.filter((c) => !c.generated).map((c) => c.name);
        const got = msg.columns.map((c) => c.name);
        if (msg.schema === this.plan.original.ref.schema && msg.name === this.plan.original.ref.name && got.join('\u0000') !== expected.join('\u0000')) {
          this.fail(
            new ShadowshiftError(
              `the columns of ${msg.name} changed while the job ran (now: ${got.join(', ')}; at the start: ${expected.join(', ')}). ` +
                `Someone else altered the table; the job stops and the original is as that ALTER left it. Run the job again.`,
            ),
          );
        }
        return;
      }
      default:
        return; // type, origin
    }
  }

  private row(tuple: Record<string, unknown>): Row {
    const row: Row = {};
    for (const [k, v] of Object.entries(tuple)) row[k] = v as Row[string];
    return row;
  }

  private add(e: ChangeEvent): void {
    if (this.skipTx) return;
    let bytes = 64;
    if (e.kind !== 'truncate') {
      for (const r of [e.kind === 'delete' ? e.before : e.after, e.kind === 'update' ? e.before : null]) {
        if (r) for (const v of Object.values(r)) if (typeof v === 'string') bytes += v.length;
      }
    }
    this.pending.push({ t: 'event', e, bytes });
    // A very large transaction: make its events takeable before its commit arrives
    // (the position only moves at the commit, and re-applying is idempotent).
    if (this.pending.length >= this.maxEvents / 2) {
      this.pushAll(this.pending);
      this.pending = [];
      this.wake();
    }
  }

  private push(item: Item): void {
    this.items.push(item);
    if (item.t === 'event') {
      this.queuedEvents++;
      this.queuedBytes += item.bytes;
    }
    this.updatePause();
  }

  private pushAll(items: Item[]): void {
    for (const i of items) this.push(i);
  }

  private updatePause(): void {
    // Bound the queue: stop reading the socket while it is full. Keepalive replies
    // still go out from the status timer, so the server does not time us out.
    const full = this.queuedEvents >= this.maxEvents || this.queuedBytes >= this.maxBytes;
    const stream = (this.service as unknown as { _connection?: { stream?: { pause?(): void; resume?(): void } } } | null)?._connection?.stream;
    if (full && !this.paused) {
      stream?.pause?.();
      this.paused = true;
    } else if (!full && this.paused) {
      stream?.resume?.();
      this.paused = false;
    }
  }

  take(maxEvents: number): ChangeBatch | null {
    if (this.items.length === 0) return null;
    const events: ChangeEvent[] = [];
    const markers: string[] = [];
    let position = this.lastTaken ?? formatLsn(this.acked);
    let commitTime: number | null = null;
    let n = 0;
    while (n < this.items.length) {
      const item = this.items[n]!;
      if (item.t === 'event') {
        if (events.length >= Math.max(1, maxEvents)) break;
        events.push(item.e);
        this.queuedEvents--;
        this.queuedBytes -= item.bytes;
      } else if (item.t === 'marker') {
        markers.push(item.id);
      } else {
        position = item.position;
        commitTime = item.commitTimeMs;
      }
      n++;
    }
    this.items.splice(0, n);
    this.lastTaken = position;
    if (commitTime !== null) this.lastCommitTimeMs = commitTime;
    this.updatePause();
    return { events, position, markers };
  }

  backlog(): number {
    return this.queuedEvents;
  }

  waitForData(ms: number): Promise<void> {
    if (this.items.length > 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.waiters.push(done);
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
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
    if (!this.inTx && this.items.length === 0 && lastTaken <= this.acked && serverLsn) {
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
    const first = this.items.find((i): i is Extract<Item, { t: 'commit' }> => i.t === 'commit');
    if (first) return Math.max(0, (Date.now() - first.commitTimeMs) / 1000);
    if (this.lastCommitTimeMs === null) return null;
    return 0;
  }

  /** Stops reading; drops the slot and publication unless they are kept for a resume. */
  async stop(options?: { keepForResume?: boolean }): Promise<void> {
    this.stopping = true;
    if (this.statusTimer) clearInterval(this.statusTimer);
    this.statusTimer = null;
    const s = this.service;
    this.service = null;
    await s?.destroy().catch(() => undefined);
    this.wake();
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

/**
 * A run killed a moment ago can leave its walsender holding the slot until the server
 * notices the client is gone; reading the slot then fails (55006). The resuming job
 * holds the table's job lock, so no live job reads this slot: wait briefly, then end
 * that walsender.
 */
async function releaseSlotOfDeadRun(pool: pg.Pool, slot: string): Promise<void> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const r = await pool.query<{ active_pid: string | null }>(`SELECT active_pid::text FROM pg_replication_slots WHERE slot_name = $1`, [slot]);
    const pid = r.rows[0]?.active_pid;
    if (!pid) return;
    if (attempt >= 10) await pool.query(`SELECT pg_terminate_backend($1::int)`, [pid]).catch(() => undefined);
    await new Promise((res) => setTimeout(res, 100));
  }
  throw new ShadowshiftError(`cannot resume: replication slot ${slot} is still in use by another session; stop it (see pg_replication_slots.active_pid) and run again`);
}

/** Drops the slot (waiting for, then ending, a walsender still holding it) and the publication. */
export async function dropSlotAndPublication(pool: pg.Pool, slot: string, publication: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    const r = await pool.query<{ active_pid: string | null }>(`SELECT active_pid::text FROM pg_replication_slots WHERE slot_name = $1`, [slot]);
    if (r.rows.length === 0) break;
    const pid = r.rows[0]!.active_pid;
    if (pid === null) {
      try {
        await pool.query(`SELECT pg_drop_replication_slot($1)`, [slot]);
        break;
      } catch (err) {
        if (pgCode(err) === '42704') break; // gone meanwhile
        if (pgCode(err) !== '55006' || attempt > 50) throw err;
      }
    } else if (attempt >= 10) {
      // Our own walsender lingering after its client went away.
      await pool.query(`SELECT pg_terminate_backend($1::int)`, [pid]).catch(() => undefined);
    }
    await new Promise((res) => setTimeout(res, 100));
  }
  if (publication) await pool.query(`DROP PUBLICATION IF EXISTS ${quoteIdent(publication)}`);
}
