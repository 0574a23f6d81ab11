// An application-like write workload with an exact model of what the table
// must hold afterwards. Used by acceptance tests (the model is compared with
// the table after a migration) and by benchmarks (latency, stalls, errors).
//
// Table: (id bigint PK, user_id int, amount decimal(12,2), status varchar(16),
// note varchar(255), created_at datetime(6)/timestamp(6), payload
// varbinary/bytea ~200 bytes), index on user_id.
//
// Open loop: operation i is scheduled at start + i/rate whether or not earlier
// ones finished; latency counts from the scheduled time, so queueing behind a
// blocked table counts. Every statement names the table, so the workload
// follows a rename swap (the cut-over) like an application would.
//
// The model (WorkloadModel) holds, per id, the row that must be there after
// every ACKNOWLEDGED write: seed rows are a pure function of the id
// (seedRow), so only changed ids are stored. An id is never touched by two
// operations at once (it is taken out of its pool while an operation runs), so
// the order of acknowledged writes to one id is the order they ran in.
// See UNKNOWN OUTCOMES below.

import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { dialectOf, openDb, quoteIdent, ph, withDb, type Db, type Dialect } from './db.js';

export type { Db, Dialect } from './db.js';

export const WORKLOAD_COLUMNS = ['id', 'user_id', 'amount', 'status', 'note', 'created_at', 'payload'] as const;
export type WorkloadColumn = (typeof WORKLOAD_COLUMNS)[number];

/**
 * A row as exact text: decimal as the server prints it ('12.30'), created_at
 * as 'YYYY-MM-DD HH:MM:SS.ffffff' (always 6 fraction digits), payload as
 * upper-case hex, note possibly null.
 */
export interface WorkloadRow {
  id: string;
  user_id: string;
  amount: string;
  status: string;
  note: string | null;
  created_at: string;
  payload: string;
}

export const STATUSES = ['new', 'paid', 'shipped', 'cancelled', 'refunded'] as const;

// ---------------------------------------------------------------------------
// Schema and seeding

export function workloadTableSql(dialect: Dialect, table: string): string[] {
  const t = quoteIdent(dialect, table);
  if (dialect === 'mysql') {
    return [
      `CREATE TABLE ${t} (
  id BIGINT NOT NULL,
  user_id INT NOT NULL,
  amount DECIMAL(12,2) NOT NULL,
  status VARCHAR(16) NOT NULL,
  note VARCHAR(255) NULL,
  created_at DATETIME(6) NOT NULL,
  payload VARBINARY(255) NOT NULL,
  PRIMARY KEY (id),
  KEY ${quoteIdent(dialect, `${table}_user_id_idx`)} (user_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
    ];
  }
  return [
    `CREATE TABLE ${t} (
  id bigint NOT NULL PRIMARY KEY,
  user_id integer NOT NULL,
  amount numeric(12,2) NOT NULL,
  status varchar(16) NOT NULL,
  note varchar(255),
  created_at timestamp(6) NOT NULL,
  payload bytea NOT NULL
)`,
    `CREATE INDEX ${quoteIdent(dialect, `${table}_user_id_idx`)} ON ${t} (user_id)`,
  ];
}

export async function createWorkloadTable(target: string | Db, table: string): Promise<void> {
  await withDb(target, async (db) => {
    for (const sql of workloadTableSql(db.dialect, table)) await db.exec(sql);
  });
}

const SEED_EPOCH_MS = Date.UTC(2024, 0, 1);

/** The seed row for id (1..N): the same function the seeding SQL computes server-side. */
export function seedRow(id: number): WorkloadRow {
  const n = BigInt(id);
  const cents = (n * 37n) % 100000000n;
  const micros = n * 1000000n + ((n * 7919n) % 1000000n);
  const h1 = createHash('sha256').update(`p${id}`).digest('hex');
  const h2 = createHash('sha256').update(`q${id}`).digest('hex');
  return {
    id: String(id),
    user_id: String(((n * 7919n) % 1000000n) + 1n),
    amount: formatCents(cents),
    status: STATUSES[Number(n % 5n)]!,
    note: n % 10n === 0n ? null : `seed ${id} ünïcødé €`,
    created_at: formatMicros(BigInt(SEED_EPOCH_MS) * 1000n + micros),
    payload: (h1.repeat(6) + h2.slice(0, 16)).toUpperCase(),
  };
}

function formatCents(cents: bigint): string {
  const neg = cents < 0n;
  const a = neg ? -cents : cents;
  return `${neg ? '-' : ''}${a / 100n}.${String(a % 100n).padStart(2, '0')}`;
}

/** Micros since the Unix epoch -> 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC calendar, no zone). */
function formatMicros(us: bigint): string {
  const secs = us / 1000000n;
  const frac = us % 1000000n;
  const iso = new Date(Number(secs) * 1000).toISOString(); // whole seconds: exact
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)}.${String(frac).padStart(6, '0')}`;
}

/** Pads a datetime's fraction to 6 digits (PostgreSQL's text output trims trailing zeros). */
export function normalizeDatetime(text: string): string {
  const m = /^(\d{4,}-\d\d-\d\d \d\d:\d\d:\d\d)(?:\.(\d{1,6}))?$/.exec(text);
  if (!m) return text;
  return `${m[1]}.${(m[2] ?? '').padEnd(6, '0')}`;
}

export interface SeedOptions {
  /** Rows per INSERT ... SELECT statement (default 50,000). */
  chunkRows?: number;
}

/**
 * Inserts ids 1..rows (seedRow(id)) with server-side generation: the MariaDB
 * sequence engine (seq_1_to_N), a recursive CTE on MySQL, generate_series on
 * PostgreSQL. Returns the model of the seeded table. The table must be empty.
 */
export async function seedWorkloadTable(target: string | Db, table: string, rows: number, options: SeedOptions = {}): Promise<WorkloadModel> {
  const chunk = options.chunkRows ?? 50_000;
  await withDb(target, async (db) => {
    const t = quoteIdent(db.dialect, table);
    const cols = WORKLOAD_COLUMNS.join(', ');
    let mariadb = false;
    if (db.dialect === 'mysql') {
      const [v] = await db.query<{ v: string }>('SELECT VERSION() AS v');
      mariadb = /mariadb/i.test(String(v?.v));
      if (!mariadb) await db.exec(`SET SESSION cte_max_recursion_depth = ${Math.max(1000, chunk + 10)}`);
    }
    for (let lo = 1; lo <= rows; lo += chunk) {
      const hi = Math.min(rows, lo + chunk - 1);
      if (db.dialect === 'mysql') {
        const select = `SELECT n, (n * 7919) % 1000000 + 1, ((n * 37) % 100000000) / 100,
            ELT(1 + n % 5, 'new', 'paid', 'shipped', 'cancelled', 'refunded'),
            CASE WHEN n % 10 = 0 THEN NULL ELSE CONCAT('seed ', n, ' ünïcødé €') END,
            TIMESTAMP'2024-01-01 00:00:00' + INTERVAL (n * 1000000 + (n * 7919) % 1000000) MICROSECOND,
            UNHEX(CONCAT(REPEAT(SHA2(CONCAT('p', n), 256), 6), LEFT(SHA2(CONCAT('q', n), 256), 16)))`;
        if (mariadb) {
          await db.exec(`INSERT INTO ${t} (${cols}) ${select} FROM (SELECT seq AS n FROM seq_${lo}_to_${hi}) s`);
        } else {
          await db.exec(
            `INSERT INTO ${t} (${cols}) WITH RECURSIVE s (n) AS (SELECT CAST(${lo} AS SIGNED) UNION ALL SELECT n + 1 FROM s WHERE n < ${hi}) ${select} FROM s`,
          );
        }
      } else {
        await db.exec(
          `INSERT INTO ${t} (${cols})
           SELECT n, ((n * 7919) % 1000000 + 1)::int, ((n * 37) % 100000000)::numeric / 100,
             (ARRAY['new', 'paid', 'shipped', 'cancelled', 'refunded'])[1 + n % 5],
             CASE WHEN n % 10 = 0 THEN NULL ELSE 'seed ' || n || ' ünïcødé €' END,
             timestamp '2024-01-01 00:00:00' + (n * 1000000 + (n * 7919) % 1000000) * interval '1 microsecond',
             decode(repeat(encode(sha256(('p' || n)::bytea), 'hex'), 6) || left(encode(sha256(('q' || n)::bytea), 'hex'), 16), 'hex')
           FROM generate_series(${lo}::bigint, ${hi}::bigint) AS n`,
        );
      }
    }
    if (db.dialect === 'postgres') await db.exec(`ANALYZE ${t}`);
  });
  return new WorkloadModel(rows);
}

// ---------------------------------------------------------------------------
// The model

/**
 * What one id must look like in the table:
 *  - present: exactly this row;
 *  - absent: no row;
 *  - unknown: an operation on it failed without telling whether it committed
 *    (connection lost, client timeout). Any candidate is acceptable (null =
 *    no row). The workload never touches the id again.
 */
export type ModelState =
  | { kind: 'present'; row: WorkloadRow }
  | { kind: 'absent' }
  | { kind: 'unknown'; candidates: Array<WorkloadRow | null> };

const ABSENT: ModelState = Object.freeze({ kind: 'absent' }) as ModelState;

export class WorkloadModel {
  private readonly overrides = new Map<number, ModelState>();

  /** ids 1..seedRows start as seedRow(id); every other id starts absent. */
  constructor(readonly seedRows = 0) {}

  get(id: number): ModelState {
    const o = this.overrides.get(id);
    if (o) return o;
    if (Number.isInteger(id) && id >= 1 && id <= this.seedRows) return { kind: 'present', row: seedRow(id) };
    return ABSENT;
  }

  /** The kind of state of id, without building the row. */
  kindOf(id: number): ModelState['kind'] {
    const o = this.overrides.get(id);
    if (o) return o.kind;
    return Number.isInteger(id) && id >= 1 && id <= this.seedRows ? 'present' : 'absent';
  }

  setPresent(row: WorkloadRow): void {
    this.overrides.set(Number(row.id), { kind: 'present', row });
  }

  setAbsent(id: number): void {
    this.overrides.set(id, ABSENT);
  }

  setUnknown(id: number, candidates: Array<WorkloadRow | null>): void {
    this.overrides.set(id, { kind: 'unknown', candidates });
  }

  /** Ids whose state is unknown, ascending. */
  unknownIds(): number[] {
    return [...this.overrides].filter(([, s]) => s.kind === 'unknown').map(([id]) => id).sort((a, b) => a - b);
  }

  /** Ascending ids that are present or unknown (i.e. may have a row). */
  *candidateIds(): Generator<number> {
    const extra = [...this.overrides.keys()].sort((a, b) => a - b);
    let j = 0;
    let i = 1;
    for (;;) {
      const nextSeed = i <= this.seedRows ? i : Infinity;
      const nextExtra = j < extra.length ? extra[j]! : Infinity;
      if (nextSeed === Infinity && nextExtra === Infinity) return;
      let id: number;
      if (nextSeed < nextExtra) {
        id = nextSeed;
        i++;
      } else {
        id = nextExtra;
        j++;
        if (nextSeed === nextExtra) i++;
      }
      if (this.kindOf(id) !== 'absent') yield id;
    }
  }

  /** Ids that must have a row (state present), ascending. */
  *presentIds(): Generator<number> {
    for (const id of this.candidateIds()) if (this.kindOf(id) === 'present') yield id;
  }

  /** Number of rows that must exist, and the number of unknown ids. */
  counts(): { present: number; unknown: number } {
    let present = this.seedRows;
    let unknown = 0;
    for (const [id, s] of this.overrides) {
      const seeded = id >= 1 && id <= this.seedRows && Number.isInteger(id);
      if (s.kind === 'present' && !seeded) present++;
      if (s.kind !== 'present' && seeded) present--;
      if (s.kind === 'unknown') unknown++;
    }
    return { present, unknown };
  }

  /** Largest id the model has ever seen (seed range included). */
  maxId(): number {
    let max = this.seedRows;
    for (const id of this.overrides.keys()) if (id > max) max = id;
    return max;
  }

  /** Ids with state absent that were once written (deleted, or moved away by a PK change). */
  absentIds(): number[] {
    return [...this.overrides].filter(([, s]) => s.kind === 'absent').map(([id]) => id);
  }
}

// ---------------------------------------------------------------------------
// The workload

export type OpKind = 'insert' | 'update' | 'update-pk' | 'delete' | 'select';

export interface OpMix {
  insert: number;
  update: number;
  delete: number;
  select: number;
}

export interface WorkloadOptions {
  url: string;
  table: string;
  /** The model of the table as it is now; the workload keeps it up to date. */
  model: WorkloadModel;
  /** Target operations per second, scheduled open-loop (default 300). */
  rate?: number;
  /** Connections (default 8). */
  connections?: number;
  /** Relative weights (default update 50, insert 30, delete 10, select 10). */
  mix?: Partial<OpMix>;
  /** Share of updates that change the primary key: UPDATE ... SET id = newId (default 0.1). */
  pkChangeShare?: number;
  /** Share of inserts (and of PK-change targets) that reuse a deleted id instead of a fresh high one (default 0.3). */
  reuseShare?: number;
  /** First fresh id for inserts (default 1e12; raised above the model's max id). */
  highIdStart?: number;
  /** Client-side timeout of one statement; on expiry the outcome is unknown and the connection is replaced (default 30 s). */
  opTimeoutMs?: number;
  /** PRNG seed, for reproducible runs (default: random). */
  seed?: number;
  /** How many error / anomaly / mismatch samples to keep (default 20). */
  maxSamples?: number;
}

export interface WorkloadError {
  op: OpKind;
  /** MySQL errno as a string ('1146'), PostgreSQL SQLSTATE ('42P01'), or a client code ('TIMEOUT', 'ECONNRESET', 'CONNECT'). */
  key: string;
  code?: string;
  errno?: number;
  message: string;
  /** false when the statement may have committed (its ids are then unknown in the model). */
  definite: boolean;
  /** ms since start. */
  at: number;
}

export interface WorkloadSample {
  op: OpKind;
  id: string;
  message: string;
  at: number;
}

export interface LatencySummary {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

export interface WorkloadStats {
  /** Running time in ms, pauses excluded. */
  durationMs: number;
  targetRate: number;
  /** Operations taken off the schedule (started). */
  ops: number;
  /** Operations that succeeded. */
  okOps: number;
  opsByKind: Record<OpKind, number>;
  /** Failed operations (any reason); errorsByKey counts them by key (e.g. '1146', '42P01', 'TIMEOUT'). */
  errors: number;
  errorsByKey: Record<string, number>;
  errorSamples: WorkloadError[];
  /** Failed operations whose outcome is unknown (ids marked unknown in the model). */
  unknownOutcomes: number;
  /**
   * Acknowledged writes whose affected-row count disagreed with the model
   * (e.g. an UPDATE of an id the model holds matched 0 rows): the table lost
   * or gained a row behind the application's back.
   */
  anomalies: number;
  anomalySamples: WorkloadSample[];
  /** SELECTs whose row differed from the model (or was missing). */
  readMismatches: number;
  readMismatchSamples: WorkloadSample[];
  /** All completed operations, ms from the scheduled start (queueing included). */
  latency: LatencySummary;
  /** Writes only (insert/update/update-pk/delete). */
  writeLatency: LatencySummary;
  /**
   * Longest write stall, ms: the longest interval, while running and not
   * paused, in which no write completed successfully. Measured between
   * consecutive successful write completions, from start (or resume) to the
   * first, and from the last to stop() (or pause()).
   */
  longestWriteStallMs: number;
  /** ms since start at which the longest stall began. */
  longestWriteStallStart: number;
  /** Largest single write latency (from scheduled start), ms. */
  maxWriteLatencyMs: number;
  /** Successful writes per second of running time. */
  writesPerSec: number;
  /** Completed operations per second of running time. */
  opsPerSec: number;
  /** Scheduled operations never started because stop() came first. */
  backlogAtStop: number;
}

interface Slot {
  db: Db | null;
  busy: boolean;
}

/** A pool of ids with O(1) random take and add. */
class IdPool {
  private ids: number[] = [];
  private pos = new Map<number, number>();
  get size(): number {
    return this.ids.length;
  }
  add(id: number): void {
    if (this.pos.has(id)) return;
    this.pos.set(id, this.ids.length);
    this.ids.push(id);
  }
  take(rand: number): number | undefined {
    if (this.ids.length === 0) return undefined;
    const id = this.ids[Math.floor(rand * this.ids.length)]!;
    this.remove(id);
    return id;
  }
  remove(id: number): void {
    const i = this.pos.get(id);
    if (i === undefined) return;
    const last = this.ids.pop()!;
    if (last !== id) {
      this.ids[i] = last;
      this.pos.set(last, i);
    }
    this.pos.delete(id);
  }
}

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function summarize(values: number[]): LatencySummary {
  if (values.length === 0) return { count: 0, p50: 0, p90: 0, p99: 0, max: 0, mean: 0 };
  const s = Float64Array.from(values).sort();
  const at = (q: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
  let sum = 0;
  for (const v of s) sum += v;
  return { count: s.length, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: s[s.length - 1]!, mean: sum / s.length };
}

interface Classified {
  key: string;
  code?: string;
  errno?: number;
  message: string;
  /** The statement certainly did not commit. */
  definite: boolean;
  /** The connection must be replaced. */
  fatal: boolean;
}

class OpTimeout extends Error {
  constructor(ms: number) {
    super(`statement did not finish within ${ms} ms`);
  }
}

/**
 * Every workload statement is a single autocommit statement, so a server error
 * on a live connection means it was rolled back (statement atomicity). Lost
 * connections, client timeouts and a server shutting the session down leave
 * the outcome unknown.
 */
export function classifyError(dialect: Dialect, err: unknown): Classified {
  const e = err as { code?: string; errno?: number; sqlState?: string; fatal?: boolean; message?: string };
  const message = String(e?.message ?? err);
  if (err instanceof OpTimeout) return { key: 'TIMEOUT', message, definite: false, fatal: true };
  if (dialect === 'mysql') {
    const server = typeof e.errno === 'number' && typeof e.sqlState === 'string' && !e.fatal;
    // Server shutdown / connection killed: the session is gone; don't guess whether it committed.
    const killed = server && [1053, 1927, 3169].includes(e.errno!);
    return { key: server ? String(e.errno) : String(e.code ?? 'UNKNOWN'), code: e.code, errno: e.errno, message, definite: server && !killed, fatal: !server || killed };
  }
  const sqlstate = typeof e.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code) ? e.code : undefined;
  const lost = !sqlstate || sqlstate.startsWith('08') || sqlstate.startsWith('57P');
  return { key: sqlstate ?? String(e.code ?? 'UNKNOWN'), code: e.code, message, definite: !lost, fatal: lost };
}

const NOTE_PIECES = ['order', "it's", 'naïve', 'Ünïcødé', '€', '日本語', '🚀', 'back\\slash', '"quoted"', 'tab\there', '  '];

export class Workload {
  readonly model: WorkloadModel;
  private readonly o: Required<Omit<WorkloadOptions, 'mix' | 'seed'>> & { mix: OpMix };
  private readonly dialect: Dialect;
  private readonly t: string;
  private readonly rand: () => number;
  private readonly live = new IdPool();
  private readonly dead = new IdPool();
  private nextHighId: number;
  private slots: Slot[] = [];
  private queue: number[] = [];
  private qHead = 0;
  private timer: NodeJS.Timeout | null = null;
  private interval: number;
  private nextDue = 0;
  private running = false;
  private paused = false;
  private stopping = false;
  private inFlight = 0;
  private idleWaiters: Array<() => void> = [];
  private t0 = 0;
  private pausedMs = 0;
  private pausedAt = 0;
  private lastWriteAt = 0;
  // stats
  private latencies: number[] = [];
  private writeLatencies: number[] = [];
  private opsStarted = 0;
  private okOps = 0;
  private okWrites = 0;
  private opsByKind: Record<OpKind, number> = { insert: 0, update: 0, 'update-pk': 0, delete: 0, select: 0 };
  private errors = 0;
  private errorsByKey: Record<string, number> = {};
  private errorSamples: WorkloadError[] = [];
  private unknownOutcomes = 0;
  private anomalies = 0;
  private anomalySamples: WorkloadSample[] = [];
  private readMismatches = 0;
  private readMismatchSamples: WorkloadSample[] = [];
  private longestStall = 0;
  private longestStallStart = 0;
  private backlogAtStop = 0;
  private endedAt = 0;

  constructor(options: WorkloadOptions) {
    const mix = { update: 50, insert: 30, delete: 10, select: 10, ...options.mix };
    this.o = {
      url: options.url,
      table: options.table,
      model: options.model,
      rate: options.rate ?? 300,
      connections: options.connections ?? 8,
      mix,
      pkChangeShare: options.pkChangeShare ?? 0.1,
      reuseShare: options.reuseShare ?? 0.3,
      highIdStart: options.highIdStart ?? 1e12,
      opTimeoutMs: options.opTimeoutMs ?? 30_000,
      maxSamples: options.maxSamples ?? 20,
    };
    this.model = options.model;
    this.dialect = dialectOf(options.url);
    this.t = quoteIdent(this.dialect, options.table);
    this.rand = mulberry32(options.seed ?? Math.floor(Math.random() * 2 ** 32));
    this.interval = 1000 / this.o.rate;
    for (const id of this.model.presentIds()) this.live.add(id);
    for (const id of this.model.absentIds()) this.dead.add(id);
    this.nextHighId = Math.max(this.o.highIdStart, this.model.maxId() + 1);
  }

  /** Opens the connections and starts the schedule. */
  async start(): Promise<void> {
    if (this.running) throw new Error('workload already started');
    this.slots = await Promise.all(Array.from({ length: this.o.connections }, async () => ({ db: await openDb(this.o.url), busy: false })));
    this.running = true;
    this.t0 = performance.now();
    this.lastWriteAt = this.t0;
    this.nextDue = this.t0;
    this.tick();
  }

  /** Stops scheduling, waits for in-flight operations, closes the connections. */
  async stop(): Promise<WorkloadStats> {
    if (!this.running) throw new Error('workload not running');
    const now = performance.now();
    if (!this.paused) this.noteStall(now);
    else this.pausedMs += now - this.pausedAt;
    this.endedAt = now;
    this.stopping = true;
    this.clearTimer();
    this.backlogAtStop = this.queue.length - this.qHead;
    this.queue = [];
    this.qHead = 0;
    await this.idle();
    this.running = false;
    await Promise.all(this.slots.map((s) => s.db?.close()));
    this.slots = [];
    return this.stats();
  }

  /** Stops starting operations and waits for the in-flight ones. Time paused does not count. */
  async pause(): Promise<void> {
    if (!this.running || this.paused) return;
    this.paused = true;
    this.pausedAt = performance.now();
    this.noteStall(this.pausedAt);
    this.clearTimer();
    await this.idle();
  }

  /** Continues the schedule where it stopped (queued operations keep their place; the pause is not counted as latency). */
  resume(): void {
    if (!this.running || !this.paused || this.stopping) return;
    const now = performance.now();
    const d = now - this.pausedAt;
    this.pausedMs += d;
    for (let i = this.qHead; i < this.queue.length; i++) this.queue[i]! += d;
    this.nextDue += d;
    this.lastWriteAt = now;
    this.paused = false;
    this.tick();
  }

  get isPaused(): boolean {
    return this.paused;
  }

  /** Statistics so far (callable while running). */
  stats(): WorkloadStats {
    const end = this.running && !this.stopping ? performance.now() : this.endedAt;
    const pausedNow = this.paused && !this.stopping ? end - this.pausedAt : 0;
    const durationMs = Math.max(0, end - this.t0 - this.pausedMs - pausedNow);
    const secs = durationMs / 1000 || 1;
    const writeLatency = summarize(this.writeLatencies);
    return {
      durationMs,
      targetRate: this.o.rate,
      ops: this.opsStarted,
      okOps: this.okOps,
      opsByKind: { ...this.opsByKind },
      errors: this.errors,
      errorsByKey: { ...this.errorsByKey },
      errorSamples: [...this.errorSamples],
      unknownOutcomes: this.unknownOutcomes,
      anomalies: this.anomalies,
      anomalySamples: [...this.anomalySamples],
      readMismatches: this.readMismatches,
      readMismatchSamples: [...this.readMismatchSamples],
      latency: summarize(this.latencies),
      writeLatency,
      longestWriteStallMs: this.longestStall,
      longestWriteStallStart: this.longestStallStart,
      maxWriteLatencyMs: writeLatency.max,
      writesPerSec: this.okWrites / secs,
      opsPerSec: this.latencies.length / secs,
      backlogAtStop: this.backlogAtStop,
    };
  }

  // -- scheduling -----------------------------------------------------------

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private tick = (): void => {
    this.timer = null;
    if (!this.running || this.paused || this.stopping) return;
    const now = performance.now();
    while (this.nextDue <= now) {
      this.queue.push(this.nextDue);
      this.nextDue += this.interval;
    }
    this.pump();
    this.timer = setTimeout(this.tick, Math.max(1, Math.floor(this.nextDue - performance.now())));
  };

  private pump(): void {
    if (this.paused || this.stopping) return;
    for (const slot of this.slots) {
      if (this.qHead >= this.queue.length) break;
      if (slot.busy) continue;
      const scheduledAt = this.queue[this.qHead++]!;
      slot.busy = true;
      this.inFlight++;
      void this.run(slot, scheduledAt).finally(() => {
        slot.busy = false;
        this.inFlight--;
        if (this.inFlight === 0) for (const w of this.idleWaiters.splice(0)) w();
        this.pump();
      });
    }
    if (this.qHead > 4096 && this.qHead * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.qHead);
      this.qHead = 0;
    }
  }

  private idle(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  private noteStall(now: number): void {
    const gap = now - this.lastWriteAt;
    if (gap > this.longestStall) {
      this.longestStall = gap;
      this.longestStallStart = this.lastWriteAt - this.t0;
    }
    this.lastWriteAt = now;
  }

  // -- operations -----------------------------------------------------------

  private pickKind(): OpKind {
    const { insert, update, delete: del, select } = this.o.mix;
    let r = this.rand() * (insert + update + del + select);
    let kind: OpKind;
    if ((r -= update) < 0) kind = this.rand() < this.o.pkChangeShare ? 'update-pk' : 'update';
    else if ((r -= insert) < 0) kind = 'insert';
    else if ((r -= del) < 0) kind = 'delete';
    else kind = 'select';
    if (kind !== 'insert' && this.live.size === 0) kind = 'insert';
    return kind;
  }

  private randInt(lo: number, hi: number): number {
    return lo + Math.floor(this.rand() * (hi - lo + 1));
  }

  private randomAmount(): string {
    return formatCents(BigInt(this.randInt(0, 999_999_999)));
  }

  private randomStatus(): string {
    return STATUSES[this.randInt(0, STATUSES.length - 1)]!;
  }

  private randomNote(): string | null {
    const r = this.rand();
    if (r < 0.1) return null;
    if (r < 0.13) return '';
    const parts: string[] = [];
    const n = this.randInt(1, 6);
    for (let i = 0; i < n; i++) parts.push(NOTE_PIECES[this.randInt(0, NOTE_PIECES.length - 1)]!);
    parts.push(String(this.randInt(0, 1e6)));
    return parts.join(' ').slice(0, 200);
  }

  private randomCreatedAt(): string {
    const p2 = (n: number) => String(n).padStart(2, '0');
    return `${this.randInt(2000, 2037)}-${p2(this.randInt(1, 12))}-${p2(this.randInt(1, 28))} ${p2(this.randInt(0, 23))}:${p2(this.randInt(0, 59))}:${p2(this.randInt(0, 59))}.${String(this.randInt(0, 999_999)).padStart(6, '0')}`;
  }

  private randomPayload(): string {
    const len = this.randInt(180, 220);
    const b = Buffer.alloc(len);
    for (let i = 0; i < len; i++) b[i] = this.randInt(0, 255);
    return b.toString('hex').toUpperCase();
  }

  private randomRow(id: number): WorkloadRow {
    return {
      id: String(id),
      user_id: String(this.randInt(1, 2_000_000_000)),
      amount: this.randomAmount(),
      status: this.randomStatus(),
      note: this.randomNote(),
      created_at: this.randomCreatedAt(),
      payload: this.randomPayload(),
    };
  }

  /** A bind value for a model column. */
  private bindValue(col: WorkloadColumn, row: WorkloadRow): unknown {
    if (col === 'payload') return Buffer.from(row.payload, 'hex');
    if (col === 'id') return Number(row.id);
    return row[col];
  }

  private selectSql(): string {
    const d = this.dialect;
    const q = (c: string) => quoteIdent(d, c);
    const exprs =
      d === 'mysql'
        ? WORKLOAD_COLUMNS.map((c) => `${c === 'payload' ? `HEX(${q(c)})` : `CAST(${q(c)} AS CHAR)`} AS ${q(c)}`)
        : WORKLOAD_COLUMNS.map((c) => `${c === 'payload' ? `upper(encode(${q(c)}, 'hex'))` : `${q(c)}::text`} AS ${q(c)}`);
    return `SELECT ${exprs.join(', ')} FROM ${this.t} WHERE ${q('id')} = ${ph(d, 1)}`;
  }

  private takeNewId(): { id: number; reused: boolean } {
    if (this.dead.size > 0 && this.rand() < this.o.reuseShare) return { id: this.dead.take(this.rand())!, reused: true };
    return { id: this.nextHighId++, reused: false };
  }

  private async run(slot: Slot, scheduledAt: number): Promise<void> {
    const d = this.dialect;
    const q = (c: string) => quoteIdent(d, c);
    const kind = this.pickKind();
    this.opsStarted++;
    this.opsByKind[kind]++;

    // Prepare the statement and what each outcome means for the model.
    let sql: string;
    let params: unknown[];
    let expectAffected = 1;
    let onOk: (affected: number, rows: Record<string, unknown>[]) => void;
    let onFail: () => void;
    let onUnknown: () => void;
    let sampleId: string;

    if (kind === 'insert') {
      const { id, reused } = this.takeNewId();
      const row = this.randomRow(id);
      sampleId = row.id;
      sql = `INSERT INTO ${this.t} (${WORKLOAD_COLUMNS.map(q).join(', ')}) VALUES (${WORKLOAD_COLUMNS.map((_, i) => ph(d, i + 1)).join(', ')})`;
      params = WORKLOAD_COLUMNS.map((c) => this.bindValue(c, row));
      onOk = () => {
        this.model.setPresent(row);
        this.live.add(id);
      };
      onFail = () => {
        if (reused) this.dead.add(id);
      };
      onUnknown = () => this.model.setUnknown(id, [null, row]);
    } else if (kind === 'update' || kind === 'update-pk' || kind === 'delete' || kind === 'select') {
      const id = this.live.take(this.rand())!;
      const state = this.model.get(id);
      if (state.kind !== 'present') throw new Error(`workload bug: live id ${id} is ${state.kind}`);
      const before = state.row;
      sampleId = before.id;
      if (kind === 'update') {
        const variant = this.randInt(0, 3);
        const changes: Partial<WorkloadRow> =
          variant === 0
            ? { amount: this.randomAmount(), status: this.randomStatus() }
            : variant === 1
              ? { note: this.randomNote(), payload: this.randomPayload() }
              : variant === 2
                ? { user_id: String(this.randInt(1, 2_000_000_000)), created_at: this.randomCreatedAt() }
                : (({ id: _id, ...rest }) => rest)(this.randomRow(id));
        const after: WorkloadRow = { ...before, ...changes };
        const cols = Object.keys(changes) as WorkloadColumn[];
        sql = `UPDATE ${this.t} SET ${cols.map((c, i) => `${q(c)} = ${ph(d, i + 1)}`).join(', ')} WHERE ${q('id')} = ${ph(d, cols.length + 1)}`;
        params = [...cols.map((c) => this.bindValue(c, after)), id];
        onOk = () => {
          this.model.setPresent(after);
          this.live.add(id);
        };
        onFail = () => this.live.add(id);
        onUnknown = () => this.model.setUnknown(id, [before, after]);
      } else if (kind === 'update-pk') {
        const { id: newId, reused } = this.takeNewId();
        const after: WorkloadRow = { ...before, id: String(newId), status: this.randomStatus() };
        sql = `UPDATE ${this.t} SET ${q('id')} = ${ph(d, 1)}, ${q('status')} = ${ph(d, 2)} WHERE ${q('id')} = ${ph(d, 3)}`;
        params = [newId, after.status, id];
        onOk = () => {
          this.model.setAbsent(id);
          this.model.setPresent(after);
          this.dead.add(id);
          this.live.add(newId);
        };
        onFail = () => {
          this.live.add(id);
          if (reused) this.dead.add(newId);
        };
        onUnknown = () => {
          this.model.setUnknown(id, [before, null]);
          this.model.setUnknown(newId, [null, after]);
        };
      } else if (kind === 'delete') {
        sql = `DELETE FROM ${this.t} WHERE ${q('id')} = ${ph(d, 1)}`;
        params = [id];
        onOk = () => {
          this.model.setAbsent(id);
          this.dead.add(id);
        };
        onFail = () => this.live.add(id);
        onUnknown = () => this.model.setUnknown(id, [before, null]);
      } else {
        sql = this.selectSql();
        params = [id];
        expectAffected = -1;
        onOk = (_n, rows) => {
          this.live.add(id);
          const got = rows[0];
          if (!got) return this.readMismatch(kind, before.id, 'row missing');
          for (const c of WORKLOAD_COLUMNS) {
            const v = got[c] === null || got[c] === undefined ? null : String(got[c]);
            const actual = c === 'created_at' && v !== null ? normalizeDatetime(v) : v;
            if (actual !== before[c]) return this.readMismatch(kind, before.id, `${c}: expected ${JSON.stringify(before[c])}, got ${JSON.stringify(actual)}`);
          }
        };
        onFail = () => this.live.add(id);
        onUnknown = () => this.live.add(id);
      }
    } else {
      throw new Error(`unknown op ${kind as string}`);
    }

    const isWrite = kind !== 'select';
    try {
      const db = await this.connection(slot);
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new OpTimeout(this.o.opTimeoutMs)), this.o.opTimeoutMs);
      });
      let affected = 0;
      let rows: Record<string, unknown>[] = [];
      try {
        if (kind === 'select') rows = await Promise.race([db.query<Record<string, unknown>>(sql, params), timeout]);
        else affected = (await Promise.race([db.exec(sql, params), timeout])).affectedRows;
      } finally {
        clearTimeout(timer);
      }
      const now = performance.now();
      this.latencies.push(now - scheduledAt);
      this.okOps++;
      if (isWrite) {
        this.writeLatencies.push(now - scheduledAt);
        this.okWrites++;
        if (!this.paused && !this.stopping) this.noteStall(now);
        else if (!this.stopping) this.lastWriteAt = now;
      }
      if (expectAffected >= 0 && affected !== expectAffected) {
        this.anomalies++;
        if (this.anomalySamples.length < this.o.maxSamples) {
          this.anomalySamples.push({ op: kind, id: sampleId, message: `affected ${affected} rows, the model expected ${expectAffected}`, at: now - this.t0 });
        }
      }
      // The write was acknowledged: the model records what it asked for, so a
      // lost row shows up in the final comparison as well as in `anomalies`.
      onOk(affected, rows);
    } catch (err) {
      const now = performance.now();
      const c = err instanceof ConnectError ? { ...classifyError(this.dialect, err.cause), key: 'CONNECT', definite: true, fatal: true } : classifyError(this.dialect, err);
      this.latencies.push(now - scheduledAt);
      if (isWrite) this.writeLatencies.push(now - scheduledAt);
      this.errors++;
      this.errorsByKey[c.key] = (this.errorsByKey[c.key] ?? 0) + 1;
      if (this.errorSamples.length < this.o.maxSamples) {
        this.errorSamples.push({ op: kind, key: c.key, code: c.code, errno: c.errno, message: c.message, definite: c.definite, at: now - this.t0 });
      }
      if (c.definite) onFail();
      else {
        this.unknownOutcomes++;
        onUnknown();
      }
      if (c.fatal && slot.db) {
        slot.db.destroy();
        slot.db = null;
      }
    }
  }

  private readMismatch(op: OpKind, id: string, message: string): void {
    this.readMismatches++;
    if (this.readMismatchSamples.length < this.o.maxSamples) this.readMismatchSamples.push({ op, id, message, at: performance.now() - this.t0 });
  }

  private async connection(slot: Slot): Promise<Db> {
    if (slot.db && !slot.db.broken) return slot.db;
    slot.db?.destroy();
    slot.db = null;
    try {
      slot.db = await openDb(this.o.url);
      return slot.db;
    } catch (err) {
      throw new ConnectError(err);
    }
  }
}

class ConnectError extends Error {
  constructor(override readonly cause: unknown) {
    super(`connect failed: ${(cause as Error)?.message ?? String(cause)}`);
  }
}

/** Creates, starts and returns a workload. */
export async function startWorkload(options: WorkloadOptions): Promise<Workload> {
  const w = new Workload(options);
  await w.start();
  return w;
}
