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
// - The queue (../change-queue.ts) is bounded: above MAX_QUEUED events the binlog
//   connection is paused (TCP backpressure to the server) and resumed below half of that.
// - Changes it cannot follow end it for good (mysql-stream-guard.ts): DDL on the table,
//   DML logged as a statement, row images with columns left out. Nothing after such an
//   event is delivered, so a cut-over marker written later never arrives.
// - The job's own swap (the cut-over's RENAME) ends it too, as a batch flagged `swap`:
//   a row event on the table between the cut-over's marker and the swap is a write that
//   went into the old table after the drain, and the engine must see exactly those. So
//   a batch also ends at every marker.

import ZongJi from '@vlasky/zongji';
import type { RowDataPacket } from 'mysql2/promise';
import { cascadesOf, referencedLeftOut, replayedKeysByParent } from './mysql-cascades.js';
import { declaredBy, type ForeignKey } from './mysql-foreign-keys.js';
import type { ChangeBatch, ChangeEvent, ChangeStream, CopyPlan, Row, StreamPosition, Value } from '../dialect.js';
import { ChangeQueue, DEFAULT_MAX_QUEUED } from '../change-queue.js';
import { ShadowshiftError, TransientDatabaseError } from '../../util/errors.js';
import type { MyContext } from './mysql-context.js';
import { quoteTable } from './mysql-quote.js';
import { XaGuard, incompleteImage, incompleteParentImage, judgeQuery, leftOut, writesByStatement } from './mysql-stream-guard.js';
import { keepSpatialBytes, type TableMapColumn } from './mysql-binlog-geometry.js';

export const MAX_QUEUED = DEFAULT_MAX_QUEUED;

type Item =
  | { t: 'event'; event: ChangeEvent; ts: number }
  | { t: 'marker'; id: string; ts: number }
  | { t: 'swap'; ts: number; after: StreamPosition | null }
  | { t: 'commit'; position: StreamPosition; ts: number };

/** Rows_log_event's flag for a change made with foreign_key_checks=0 (MySQL's and MariaDB's log_event.h). */
const NO_FOREIGN_KEY_CHECKS = 1 << 1;

interface ZEvent {
  getEventName(): string;
  timestamp: number;
  nextPosition: number;
  tableId?: number;
  tableMap?: Record<number, { parentSchema: string; tableName: string; columns?: TableMapColumn[] }>;
  rows?: Array<Record<string, unknown>>;
  numberOfColumns?: number;
  columns_present_bitmap?: Buffer;
  columns_present_bitmap2?: Buffer;
  /** A rows event's flags (NO_FOREIGN_KEY_CHECKS_F: the session had foreign_key_checks off). */
  flags?: number;
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

/**
 * Why the binlog cannot be read from `from`, or null when it can (or the server will not
 * list its binary logs: then the dump connection's own error says it). Asked before a
 * resume changes anything: the dump connection fails only once the job is under way, and
 * with the server's words, which name no way out.
 */
export async function unreadablePosition(ctx: MyContext, from: StreamPosition): Promise<string | null> {
  const { filename, position } = parsePosition(from);
  let logs: RowDataPacket[];
  try {
    [logs] = await ctx.pool.query<RowDataPacket[]>('SHOW BINARY LOGS');
  } catch (err) {
    ctx.log.debug({ err: (err as Error).message }, 'SHOW BINARY LOGS refused: the binlog position is checked by the stream itself');
    return null;
  }
  const files = logs.map((r) => ({ name: String(r.Log_name), size: Number(r.File_size) }));
  const file = files.find((f) => f.name === filename);
  if (file && position <= file.size) return null;
  const retention =
    'A job can resume only while the server keeps the binary log its checkpoint points at: keep binary logs longer than a job may stay stopped ' +
    '(binlog_expire_logs_seconds; expire_logs_days on MariaDB before 10.6), and do not PURGE BINARY LOGS past a stopped job';
  if (file) return `the binary log ${filename} on the server is ${file.size} bytes long, short of the checkpoint's position ${from} (the binary logs were reset, or this is another server)`;
  const oldest = files[0]?.name;
  const purged = oldest !== undefined && filename < oldest;
  return (
    `the binary log ${filename} that the checkpoint's position ${from} is in ${purged ? `was purged from the server (its oldest binary log is now ${oldest})` : `is not on the server (its binary logs are ${oldest ? `${oldest} to ${files[files.length - 1]!.name}` : 'none'})`}. ` +
    retention
  );
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
  private zongji: ZongJiInstance | null = null;
  private readonly queue: ChangeQueue<Item>;
  private lastPosition: StreamPosition = '';
  private lastTakenTs: number | null = null;
  private stopped = false;
  /** Set once an event showed a change the stream cannot follow (mysql-stream-guard.ts). */
  private refused: ShadowshiftError | null = null;
  /** Set once the job's own swap is queued: what follows belongs to the new table. */
  private swapSeen = false;
  /** The table's cascading foreign keys by parent: the parents' events are read to replay them (mysql-cascades.ts). */
  private cascadingParents = new Map<string, ForeignKey[]>();
  readonly serverId: number;
  readonly seesSwap = true;

  constructor(
    private readonly ctx: MyContext,
    private readonly plan: CopyPlan,
    private readonly changelog: string,
    private readonly markerPrefix: string,
    /** Decoded events held at most (then the binlog connection is paused). */
    maxQueued = MAX_QUEUED,
  ) {
    this.queue = new ChangeQueue<Item>({ maxEvents: maxQueued, resumeBelow: 0.5 }, () => this.zongji?.connection ?? null);
    this.failed = this.queue.failed;
    // A high random id: no real replica uses these, and two jobs are unlikely to meet.
    this.serverId = 0x40000000 + Math.floor(Math.random() * 0x3ffffff0);
  }

  async start(from?: StreamPosition): Promise<StreamPosition> {
    const { schema: tableSchema, name: tableName } = this.plan.original.ref;
    this.cascadingParents = replayedKeysByParent(await declaredBy(this.ctx.pool, tableSchema, tableName));
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
        if (!this.stopped) this.queue.fail(wrapped);
      });
      z.on('binlog', (ev: unknown) => this.onEvent(ev as ZEvent));
      z.start({
        serverId: this.serverId,
        filename,
        position: pos,
        includeEvents: ['rotate', 'tablemap', 'writerows', 'updaterows', 'deleterows', 'xid', 'query'],
        includeSchema: { [schema]: [this.plan.original.ref.name, this.changelog, ...this.cascadingParents.keys()] },
      });
    });
    return position;
  }

  private currentPositionString(): StreamPosition | null {
    const o = this.zongji?.options;
    if (!o?.filename || !o.position) return null;
    return formatPosition(o.filename, o.position);
  }

  /** Ends the stream for good: nothing after the offending event is delivered, not even a marker. */
  private refuse(err: ShadowshiftError): void {
    if (this.stopped || this.refused) return;
    this.refused = err;
    this.queue.fail(err);
  }

  private readonly xa = new XaGuard();

  private onEvent(ev: ZEvent): void {
    if (this.stopped || this.refused || this.swapSeen) return;
    const name = ev.getEventName();
    const ts = ev.timestamp;
    const original = this.plan.original.ref;
    if (name === 'xid') {
      this.xa.committed();
      const p = this.currentPositionString();
      if (p) this.queue.push({ t: 'commit', position: p, ts });
      return;
    }
    if (name === 'query') {
      const xa = this.xa.query(ev.query ?? '', original);
      if (xa) return this.refuse(xa);
      // Query events are not filtered by schema: every database's DDL (and statement-logged DML) comes here.
      for (const parent of this.cascadingParents.keys()) {
        const byStatement = writesByStatement(ev.query ?? '', ev.schema, { schema: original.schema, name: parent });
        if (byStatement) return this.refuse(byStatement);
      }
      const verdict = judgeQuery(ev.query ?? '', ev.schema, original);
      if (verdict.t === 'commit') {
        this.xa.committed();
        const p = this.currentPositionString();
        if (p) this.queue.push({ t: 'commit', position: p, ts });
      } else if (verdict.t === 'truncate') this.queue.push({ t: 'event', event: { kind: 'truncate' }, ts });
      else if (verdict.t === 'swap') {
        this.swapSeen = true;
        // The first write to the new table is logged after the RENAME: a revert reads from here.
        const file = this.zongji?.options.filename;
        this.queue.push({ t: 'swap', ts, after: file && ev.nextPosition ? formatPosition(file, ev.nextPosition) : null });
      }
      else if (verdict.t === 'fail') this.refuse(verdict.error);
      return;
    }
    if (name === 'tablemap') {
      const m = ev.tableMap?.[ev.tableId ?? -1];
      if (m?.tableName === original.name) keepSpatialBytes(m);
      return;
    }
    if (name !== 'writerows' && name !== 'updaterows' && name !== 'deleterows') return;
    const map = ev.tableMap?.[ev.tableId ?? -1];
    const table = map?.tableName;
    if (table === this.changelog) {
      if (name !== 'writerows') return;
      for (const r of ev.rows ?? []) {
        if (r.kind === 'marker' && typeof r.value === 'string' && r.value.startsWith(this.markerPrefix)) {
          this.queue.push({ t: 'marker', id: r.value.slice(this.markerPrefix.length), ts });
        }
      }
      return;
    }
    const parentKeys = table === undefined ? undefined : this.cascadingParents.get(table);
    if (parentKeys) {
      // InnoDB cascades nothing for a change made with foreign_key_checks off: nor does the replay.
      if ((ev.flags ?? 0) & NO_FOREIGN_KEY_CHECKS) return;
      // An insert cascades nothing; a delete or update needs the referenced columns of its images.
      const missing = name === 'writerows' ? [] : referencedLeftOut(parentKeys, leftOut(ev, name === 'updaterows', (map?.columns ?? []).map((c) => c.name)));
      if (missing.length > 0) return this.refuse(incompleteParentImage({ schema: original.schema, name: table! }, missing));
      for (const r of ev.rows ?? []) {
        const change =
          name === 'writerows' ? { before: null, after: toRow(r) }
          : name === 'deleterows' ? { before: toRow(r), after: null }
          : { before: toRow((r as { before: Record<string, unknown> }).before), after: toRow((r as { after: Record<string, unknown> }).after) };
        for (const event of cascadesOf(parentKeys, change)) {
          this.xa.rows();
          this.queue.push({ t: 'event', event, ts });
        }
      }
      return;
    }
    if (table !== original.name) return;
    this.xa.rows();
    const incomplete = incompleteImage(ev, name === 'updaterows', (map?.columns ?? []).map((c) => c.name), original);
    if (incomplete) return this.refuse(incomplete);
    for (const r of ev.rows ?? []) {
      if (name === 'writerows') this.queue.push({ t: 'event', event: { kind: 'insert', after: toRow(r) }, ts });
      else if (name === 'deleterows') this.queue.push({ t: 'event', event: { kind: 'delete', before: toRow(r) }, ts });
      else {
        const u = r as { before: Record<string, unknown>; after: Record<string, unknown> };
        this.queue.push({ t: 'event', event: { kind: 'update', before: toRow(u.before), after: toRow(u.after) }, ts });
      }
    }
  }

  take(maxEvents: number): ChangeBatch | null {
    if (this.queue.waiting.length === 0) return null;
    const markers: string[] = [];
    let swap = false;
    let afterSwap: StreamPosition | null = null;
    const events = this.queue.take(maxEvents, (item) => {
      if (item.t === 'marker') markers.push(item.id);
      else if (item.t === 'swap') {
        swap = true;
        afterSwap = item.after;
      } else if (item.t === 'commit') this.lastPosition = item.position;
      this.lastTakenTs = item.ts;
      return markers.length === 0 && !swap;
    });
    return { events, markers, position: this.lastPosition, ...(swap ? { swap, afterSwap } : {}) };
  }

  backlog(): number {
    return this.queue.backlog();
  }

  /** The server's id for this stream's binlog dump connection (for diagnostics and tests). */
  get dumpThreadId(): number | null {
    return this.zongji?.connection?.threadId ?? null;
  }

  /** Whether the binlog connection is paused because the queue is full. */
  get isPaused(): boolean {
    return this.queue.isPaused;
  }

  waitForData(ms: number): Promise<void> {
    return this.queue.waitForData(ms);
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
    const first = this.queue.waiting[0];
    if (first) return Math.max(0, (Date.now() - first.ts) / 1000);
    return this.lastTakenTs === null ? null : 0;
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    const z = this.zongji;
    this.zongji = null;
    this.queue.wake();
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
