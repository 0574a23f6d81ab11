// The binlog, read with @vlasky/zongji, as a ChangeStream.
//
// - A unique serverId per job (random, high range): two readers with the same id
//   kick each other off (errno 4052).
// - The start position is read with SHOW MASTER STATUS (SHOW BINARY LOG STATUS on
//   MySQL 8.4) before start() resolves, so it is fixed before the first row is copied.
// - Values: with dateStrings and timezone 'Z' zongji gives DATETIME/DATE/TIME as
//   exact strings and TIMESTAMP as UTC text (the applier's session is +00:00),
//   BIGINT as a number when it fits 2^53 else a string, DECIMAL as an exact string,
//   FLOAT/DOUBLE as the number the column holds, BLOB/BINARY/BIT as Buffers (trailing
//   zero bytes kept), MariaDB JSON as text, ENUM/SET as their text. Numbers are kept
//   only where they are exact; nothing goes through a Date.
// - Positions: zongji keeps options.position at the start of the open transaction
//   until its commit, and MariaDB writes end_log_pos 0 inside transactions; this
//   stream records `file:pos` at each commit (XID, or a COMMIT query) and a batch
//   carries the last commit it contains: resuming there replays at most a
//   transaction, and replays are idempotent.
// - The queue is bounded: above MAX_QUEUED events the binlog connection is paused
//   (TCP backpressure to the server) and resumed below half of that.

import ZongJi from '@vlasky/zongji';
import type { RowDataPacket } from 'mysql2/promise';
import type { ChangeBatch, ChangeEvent, ChangeStream, CopyPlan, Row, StreamPosition, Value } from '../dialect.js';
import { ShadowshiftError, TransientDatabaseError } from '../../util/errors.js';
import type { MyContext } from './mysql-context.js';
import { quoteTable } from './mysql-quote.js';

export const MAX_QUEUED = 50_000;

type Item =
  | { t: 'event'; event: ChangeEvent; ts: number }
  | { t: 'marker'; id: string; ts: number }
  | { t: 'commit'; position: StreamPosition; ts: number };

interface ZEvent {
  getEventName(): string;
  timestamp: number;
  nextPosition: number;
  tableId?: number;
  tableMap?: Record<number, { parentSchema: string; tableName: string }>;
  rows?: Array<Record<string, unknown>>;
  query?: string;
  schema?: string;
}

interface ZongJiInstance {
  on(event: string, fn: (...args: unknown[]) => void): void;
  removeAllListeners(event?: string): void;
  start(options: Record<string, unknown>): void;
  stop(): void;
  options: { filename?: string; position?: number };
  connection: { pause(): void; resume(): void; threadId?: number } | null;
}

export function formatPosition(file: string, pos: number): StreamPosition {
  return `${file}:${pos}`;
}

export function parsePosition(p: StreamPosition): { filename: string; position: number } {
  const i = p.lastIndexOf(':');
  const position = Number(p.slice(i + 1));
  if (i <= 0 || !Number.isInteger(position)) throw new ShadowshiftError(`not a binlog position: "${p}" (expected file:position)`);
  return { filename: p.slice(0, i), position };
}

/** Reads the server's current binlog file and position. */
export async function currentPosition(ctx: MyContext): Promise<StreamPosition> {
  let rows: RowDataPacket[];
  try {
    [rows] = await ctx.pool.query<RowDataPacket[]>('SHOW MASTER STATUS');
  } catch (err) {
    if ((err as { errno?: number }).errno !== 1064) throw err;
    [rows] = await ctx.pool.query<RowDataPacket[]>('SHOW BINARY LOG STATUS'); // MySQL 8.4 removed SHOW MASTER STATUS
  }
  const r = rows[0];
  if (!r) throw new ShadowshiftError('the server has no binary log (SHOW MASTER STATUS is empty): start it with --log-bin');
  return formatPosition(String(r.File), Number(r.Position));
}

/** A value as shadowshift passes it on: exact, never a Date or a rounded number. */
export function convertValue(v: unknown): Value {
  if (v === null || v === undefined) return null;
  if (typeof v === 'string' || typeof v === 'bigint' || typeof v === 'boolean' || Buffer.isBuffer(v)) return v;
  if (typeof v === 'number') return v;
  if (v instanceof Date) throw new ShadowshiftError('the change stream decoded a date into a JS Date (dateStrings is off?); refusing to lose precision');
  // MySQL 8 binary JSON decoded to an object: back to text.
  return JSON.stringify(v);
}

function toRow(raw: Record<string, unknown>): Row {
  const row: Row = {};
  for (const [k, v] of Object.entries(raw)) row[k] = convertValue(v);
  return row;
}

export class MysqlChangeStream implements ChangeStream {
  readonly failed: Promise<never>;
  private fail!: (err: Error) => void;
  private zongji: ZongJiInstance | null = null;
  private readonly queue: Item[] = [];
  private events = 0;
  private lastPosition: StreamPosition = '';
  private paused = false;
  private waiters: Array<() => void> = [];
  private lastTakenTs: number | null = null;
  private stopped = false;
  readonly serverId: number;

  constructor(
    private readonly ctx: MyContext,
    private readonly plan: CopyPlan,
    private readonly changelog: string,
    private readonly markerPrefix: string,
    /** Decoded events held at most (then the binlog connection is paused). */
    private readonly maxQueued = MAX_QUEUED,
  ) {
    this.failed = new Promise<never>((_, reject) => {
      this.fail = reject;
    });
    this.failed.catch(() => undefined);
    // A high random id: no real replica uses these, and two jobs are unlikely to meet.
    this.serverId = 0x40000000 + Math.floor(Math.random() * 0x3ffffff0);
  }

  async start(from?: StreamPosition): Promise<StreamPosition> {
    const position = from ?? (await currentPosition(this.ctx));
    const { filename, position: pos } = parsePosition(position);
    this.lastPosition = position;
    const o = this.ctx.options;
    const z = new (ZongJi as unknown as new (dsn: object) => ZongJiInstance)({
      host: o.host,
      port: o.port,
      user: o.user,
      password: o.password,
      ...(o.socketPath ? { socketPath: o.socketPath } : {}),
      ...(o.ssl ? { ssl: o.ssl } : {}),
      ...(o.stream ? { stream: o.stream } : {}),
      charset: 'UTF8MB4_UNICODE_CI',
      dateStrings: true,
      timezone: 'Z',
      supportBigNumbers: true,
      bigNumberStrings: true,
    });
    this.zongji = z;
    const schema = this.plan.original.ref.schema;
    await new Promise<void>((resolve, reject) => {
      let ready = false;
      z.on('ready', () => {
        ready = true;
        resolve();
      });
      z.on('error', (err: unknown) => {
        const e = err as Error & { errno?: number };
        const message =
          e.errno === 4052
            ? `another binlog reader uses server id ${this.serverId} (errno 4052): ${e.message}`
            : `binlog reader failed: ${e.message}`;
        // A lost or refused binlog connection is worth a reconnect from the last applied position.
        const wrapped = new TransientDatabaseError(message, { cause: err });
        if (!ready) reject(wrapped);
        if (!this.stopped) this.fail(wrapped);
      });
      z.on('binlog', (ev: unknown) => this.onEvent(ev as ZEvent));
      z.start({
        serverId: this.serverId,
        filename,
        position: pos,
        includeEvents: ['rotate', 'tablemap', 'writerows', 'updaterows', 'deleterows', 'xid', 'query'],
        includeSchema: { [schema]: [this.plan.original.ref.name, this.changelog] },
      });
    });
    return position;
  }

  private currentPositionString(): StreamPosition | null {
    const o = this.zongji?.options;
    if (!o?.filename || !o.position) return null;
    return formatPosition(o.filename, o.position);
  }

  private push(item: Item): void {
    this.queue.push(item);
    if (item.t === 'event') this.events++;
    if (this.events >= this.maxQueued && !this.paused && this.zongji?.connection) {
      this.zongji.connection.pause();
      this.paused = true;
    }
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  private onEvent(ev: ZEvent): void {
    if (this.stopped) return;
    const name = ev.getEventName();
    const ts = ev.timestamp;
    if (name === 'xid') {
      const p = this.currentPositionString();
      if (p) this.push({ t: 'commit', position: p, ts });
      return;
    }
    if (name === 'query') {
      const q = (ev.query ?? '').trim();
      if (/^COMMIT$/i.test(q)) {
        const p = this.currentPositionString();
        if (p) this.push({ t: 'commit', position: p, ts });
      } else if (/^TRUNCATE\b/i.test(q) && this.mentionsOriginal(q, ev.schema)) {
        this.push({ t: 'event', event: { kind: 'truncate' }, ts });
      } else if (/^(ALTER|DROP|RENAME)\b/i.test(q) && this.mentionsOriginal(q, ev.schema) && !/_ss(new|log|old_)/.test(q)) {
        if (!this.stopped) this.fail(new ShadowshiftError(`someone else changed ${this.plan.original.ref.name} while the job ran ("${q.slice(0, 200)}"); the shadow no longer matches. Run the job again.`));
      }
      return;
    }
    if (name !== 'writerows' && name !== 'updaterows' && name !== 'deleterows') return;
    const table = ev.tableMap?.[ev.tableId ?? -1]?.tableName;
    if (table === this.changelog) {
      if (name !== 'writerows') return;
      for (const r of ev.rows ?? []) {
        if (r.kind === 'marker' && typeof r.value === 'string' && r.value.startsWith(this.markerPrefix)) {
          this.push({ t: 'marker', id: r.value.slice(this.markerPrefix.length), ts });
        }
      }
      return;
    }
    if (table !== this.plan.original.ref.name) return;
    for (const r of ev.rows ?? []) {
      if (name === 'writerows') this.push({ t: 'event', event: { kind: 'insert', after: toRow(r) }, ts });
      else if (name === 'deleterows') this.push({ t: 'event', event: { kind: 'delete', before: toRow(r) }, ts });
      else {
        const u = r as { before: Record<string, unknown>; after: Record<string, unknown> };
        this.push({ t: 'event', event: { kind: 'update', before: toRow(u.before), after: toRow(u.after) }, ts });
      }
    }
  }

  /**
   * True when the statement names the original table as an identifier (bare or
   * backtick-quoted, schema-qualified or in the statement's default schema), not
   * merely contains its name: `t` must not match `_shadowshift_checkpoints`, nor
   * `otherdb.t`.
   */
  private mentionsOriginal(q: string, defaultSchema: string | undefined): boolean {
    const { schema, name } = this.plan.original.ref;
    const part = '`((?:[^`]|``)+)`|([A-Za-z0-9_$\\u0080-\\uffff]+)';
    const qualified = new RegExp(`(?:(?:${part})\\s*\\.\\s*)?(?:${part})`, 'g');
    const unquote = (quoted: string | undefined, bare: string | undefined) => (quoted !== undefined ? quoted.replace(/``/g, '`') : bare);
    for (const m of q.matchAll(qualified)) {
      const qualifier = unquote(m[1], m[2]);
      const ident = unquote(m[3], m[4]);
      if (ident?.toLowerCase() !== name.toLowerCase()) continue;
      const inSchema = qualifier ?? defaultSchema;
      if (inSchema === undefined || inSchema.toLowerCase() === schema.toLowerCase()) return true;
    }
    return false;
  }



  take(maxEvents: number): ChangeBatch | null {
    if (this.queue.length === 0) return null;
    const events: ChangeEvent[] = [];
    const markers: string[] = [];
    let taken = 0;
    while (taken < this.queue.length) {
      const item = this.queue[taken]!;
      if (item.t === 'event') {
        if (events.length >= maxEvents) break;
        events.push(item.event);
      } else if (item.t === 'marker') markers.push(item.id);
      else this.lastPosition = item.position;
      this.lastTakenTs = item.ts;
      taken++;
    }
    this.queue.splice(0, taken);
    this.events -= events.length;
    if (this.paused && this.events < this.maxQueued / 2 && this.zongji?.connection) {
      this.zongji.connection.resume();
      this.paused = false;
    }
    return { events, markers, position: this.lastPosition };
  }

  backlog(): number {
    return this.events;
  }

  /** The server's id for this stream's binlog dump connection (for diagnostics and tests). */
  get dumpThreadId(): number | null {
    return this.zongji?.connection?.threadId ?? null;
  }

  /** Whether the binlog connection is paused because the queue is full. */
  get isPaused(): boolean {
    return this.paused;
  }

  waitForData(ms: number): Promise<void> {
    if (this.queue.length > 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      const self = this;
      function done() {
        clearTimeout(timer);
        self.waiters = self.waiters.filter((w) => w !== done);
        resolve();
      }
      this.waiters.push(done);
    });
  }

  async acknowledge(): Promise<void> {
    // The binlog keeps no per-reader state: nothing to acknowledge.
  }

  async writeMarker(id: string): Promise<void> {
    await this.ctx.pool.query(`INSERT INTO ${quoteTable(this.plan.original.ref.schema, this.changelog)} (kind, value) VALUES ('marker', ?)`, [
      this.markerPrefix + id,
    ]);
  }

  lagSeconds(): number | null {
    const first = this.queue[0];
    if (first) return Math.max(0, (Date.now() - first.ts) / 1000);
    return this.lastTakenTs === null ? null : 0;
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    const z = this.zongji;
    this.zongji = null;
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
    if (!z) return;
    // zongji KILLs its dump thread from its control connection (1 s timeout) and emits 'stopped'.
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 3000);
      z.on('stopped', () => {
        clearTimeout(timer);
        resolve();
      });
      z.on('error', () => undefined);
      try {
        z.stop();
      } catch {
        clearTimeout(timer);
        resolve();
      }
    });
  }
}
