// The demo's table: an `orders` table like a shop's, seeded on the server, the
// ALTER the demo runs on it, and the final comparison of the table with the
// application's record of its writes (orders-model.ts).

import type { DemoDb, DemoEngine } from './demo-db.js';
import { quoteName } from './demo-db.js';
import { ORDER_COLUMNS, OrdersModel, sameRow, STATUSES, type OrderRow } from './orders-model.js';

export const DEMO_TABLE = 'orders';

/**
 * A NOT NULL column with a default plus a type change. The type change is what
 * makes the native ALTER rewrite the table under a lock that blocks writes for
 * the whole rewrite (on PostgreSQL reads too), which is the point of the demo.
 */
export function defaultAlter(engine: DemoEngine): string {
  return engine === 'postgres'
    ? "ALTER COLUMN customer_id TYPE bigint, ADD COLUMN currency char(3) NOT NULL DEFAULT 'EUR'"
    : "MODIFY customer_id BIGINT NOT NULL, ADD COLUMN currency CHAR(3) NOT NULL DEFAULT 'EUR'";
}

const TIMESTAMP_TEXT = { postgres: (e: string) => `to_char(${e}, 'YYYY-MM-DD HH24:MI:SS.US')`, mariadb: (e: string) => `DATE_FORMAT(${e}, '%Y-%m-%d %H:%i:%s.%f')` };

/** The seed value of each column for the id expression `n`, typed as the column (seedRow() in JS). */
function seedValues(engine: DemoEngine, n: string): Record<Exclude<(typeof ORDER_COLUMNS)[number], 'id'>, string> {
  const statuses = STATUSES.map((s) => `'${s}'`).join(', ');
  if (engine === 'postgres') {
    return {
      customer_id: `((${n} * 7919) % 100000 + 1)::int`,
      amount: `(((${n} * 37) % 1000000)::numeric / 100)::numeric(12,2)`,
      status: `(ARRAY[${statuses}])[(1 + ${n} % 5)::int]`,
      note: `CASE WHEN ${n} % 10 = 0 THEN NULL ELSE 'order ' || ${n} END`,
      created_at: `timestamp '2024-01-01 00:00:00' + ${n} * interval '1 second' + ((${n} * 7919) % 1000000) * interval '1 microsecond'`,
    };
  }
  return {
    customer_id: `(${n} * 7919) % 100000 + 1`,
    amount: `CAST(((${n} * 37) % 1000000) / 100 AS DECIMAL(12,2))`,
    status: `ELT(1 + ${n} % 5, ${statuses})`,
    note: `IF(${n} % 10 = 0, NULL, CONCAT('order ', ${n}))`,
    created_at: `TIMESTAMP'2024-01-01 00:00:00' + INTERVAL ${n} SECOND + INTERVAL ((${n} * 7919) % 1000000) MICROSECOND`,
  };
}

/** Exact text of each column of a row, as OrderRow holds it. */
export function textColumns(engine: DemoEngine): string {
  const q = (c: string) => quoteName(engine, c);
  return ORDER_COLUMNS.map((c) => {
    if (c === 'created_at') return `${TIMESTAMP_TEXT[engine](q(c))} AS ${q(c)}`;
    if (c === 'note' || c === 'status') return `${q(c)} AS ${q(c)}`;
    return engine === 'postgres' ? `${q(c)}::text AS ${q(c)}` : `CAST(${q(c)} AS CHAR) AS ${q(c)}`;
  }).join(', ');
}

export function readRow(r: Record<string, unknown>): OrderRow {
  const t = (v: unknown) => (v === null || v === undefined ? null : String(v));
  return { id: t(r.id)!, customer_id: t(r.customer_id)!, amount: t(r.amount)!, status: t(r.status)!, note: t(r.note), created_at: t(r.created_at)! };
}

/** Creates the table and inserts ids 1..rows on the server; PostgreSQL builds its indexes after loading, which is faster. */
export async function seedOrders(db: DemoDb, rows: number): Promise<OrdersModel> {
  const e = db.engine;
  const t = quoteName(e, DEMO_TABLE);
  const cols = ORDER_COLUMNS.map((c) => quoteName(e, c)).join(', ');
  const v = seedValues(e, 'n');
  const select = `n, ${v.customer_id}, ${v.amount}, ${v.status}, ${v.note}, ${v.created_at}`;
  if (e === 'postgres') {
    await db.exec(`CREATE TABLE ${t} (
      id bigint NOT NULL, customer_id integer NOT NULL, amount numeric(12,2) NOT NULL,
      status varchar(16) NOT NULL, note text, created_at timestamp(6) NOT NULL)`);
    if (rows > 0) await db.exec(`INSERT INTO ${t} (${cols}) SELECT ${select} FROM generate_series(1::bigint, ${rows}::bigint) AS n`);
    await db.exec(`ALTER TABLE ${t} ADD PRIMARY KEY (id)`);
    await db.exec(`CREATE INDEX orders_customer_id_idx ON ${t} (customer_id)`);
    // Now rather than by autovacuum in the middle of the measurements: a million fresh rows trigger it.
    await db.exec(`VACUUM (ANALYZE) ${t}`);
  } else {
    await db.exec(`CREATE TABLE ${t} (
      id BIGINT NOT NULL PRIMARY KEY, customer_id INT NOT NULL, amount DECIMAL(12,2) NOT NULL,
      status VARCHAR(16) NOT NULL, note TEXT NULL, created_at DATETIME(6) NOT NULL,
      KEY orders_customer_id_idx (customer_id)) ENGINE=InnoDB`);
    // The sequence engine's seq_1_to_N; 100k rows a statement keeps each binlog transaction modest.
    for (let lo = 1; lo <= rows; lo += 100_000) {
      const hi = Math.min(rows, lo + 99_999);
      await db.exec(`INSERT INTO ${t} (${cols}) SELECT ${select} FROM (SELECT seq AS n FROM seq_${lo}_to_${hi}) s`);
    }
    await db.exec(`ANALYZE TABLE ${t}`);
  }
  return new OrdersModel(rows);
}

export interface TableCheck {
  /** The table holds exactly what the application's record says. */
  matches: boolean;
  expectedRows: number;
  tableRows: number;
  /** Ids whose last write had an unknown outcome (either state accepted). */
  unknownIds: number;
  differences: number;
  /** A few differences, described. */
  samples: string[];
}

const SAMPLES = 10;

/**
 * Compares `table` with the model, exactly. The rows the application wrote are
 * read and compared in JS; the untouched seed rows are checked on the server
 * against the seed function (reading a million rows into JS would take longer
 * than the migration): every seed row that differs from its seed value must be
 * one the application wrote, and the row counts inside and outside the seed
 * range must be what the model says.
 */
export async function checkAgainstModel(db: DemoDb, table: string, model: OrdersModel): Promise<TableCheck> {
  const e = db.engine;
  const t = quoteName(e, table);
  const id = quoteName(e, 'id');
  const samples: string[] = [];
  let differences = 0;
  const differ = (s: string) => {
    differences++;
    if (samples.length < SAMPLES) samples.push(s);
  };

  const touched = model.touchedIds();
  const found = new Map<number, OrderRow>();
  for (let i = 0; i < touched.length; i += 1000) {
    const ids = touched.slice(i, i + 1000).join(', ');
    for (const r of await db.query<Record<string, unknown>>(`SELECT ${textColumns(e)} FROM ${t} WHERE ${id} IN (${ids})`)) found.set(Number(r.id), readRow(r));
  }
  let touchedSeeded = 0;
  let touchedSeededPresent = 0;
  let touchedOtherPresent = 0;
  for (const tid of touched) {
    const actual = found.get(tid) ?? null;
    const seeded = tid >= 1 && tid <= model.seedRows;
    if (seeded) touchedSeeded++;
    if (actual && seeded) touchedSeededPresent++;
    else if (actual) touchedOtherPresent++;
    const s = model.get(tid);
    if (s.kind === 'present' && !sameRow(s.row, actual)) differ(actual ? `id ${tid}: ${describeDiff(s.row, actual)}` : `id ${tid}: acknowledged row is missing`);
    if (s.kind === 'absent' && actual) differ(`id ${tid}: acknowledged delete, but the row is there`);
    if (s.kind === 'unknown' && !s.candidates.some((c) => sameRow(c, actual))) differ(`id ${tid}: matches none of the outcomes of its last (unacknowledged) write`);
  }

  const n = model.seedRows;
  const [counts] = await db.query<{ seeded: unknown; other: unknown }>(
    `SELECT COALESCE(SUM(CASE WHEN ${id} BETWEEN 1 AND ${n} THEN 1 ELSE 0 END), 0) AS seeded, COALESCE(SUM(CASE WHEN ${id} BETWEEN 1 AND ${n} THEN 0 ELSE 1 END), 0) AS other FROM ${t}`,
  );
  const seededRows = Number(counts?.seeded ?? 0);
  const otherRows = Number(counts?.other ?? 0);
  if (seededRows !== n - touchedSeeded + touchedSeededPresent) differ(`${n - touchedSeeded + touchedSeededPresent - seededRows} seed row(s) the application never wrote are missing (or extra)`);
  if (otherRows !== touchedOtherPresent) differ(`${otherRows - touchedOtherPresent} row(s) outside the seed range that the application never wrote`);

  const touchedSet = new Set(touched);
  for (const r of await db.query<{ id: unknown }>(`SELECT ${e === 'postgres' ? `${id}::text` : `CAST(${id} AS CHAR)`} AS id FROM ${t} WHERE ${id} BETWEEN 1 AND ${n} AND ${seedDiffers(e)}`)) {
    if (!touchedSet.has(Number(r.id))) differ(`id ${String(r.id)}: changed, but the application never wrote it`);
  }
  return { matches: differences === 0, expectedRows: model.expectedRows(), tableRows: seededRows + otherRows, unknownIds: model.unknownIds(), differences, samples };
}

/**
 * A condition true when the row differs from its seed value. Typed comparisons
 * are exact for these types (numeric, timestamp, integers) and three times
 * faster than comparing text; strings compare as bytes (MariaDB's collation
 * would call 'paid' and 'PAID' equal).
 */
function seedDiffers(e: DemoEngine): string {
  const q = (c: string) => quoteName(e, c);
  const v = seedValues(e, q('id'));
  const cols = ['customer_id', 'amount', 'status', 'note', 'created_at'] as const;
  if (e === 'postgres') {
    const col = (c: (typeof cols)[number]) => (c === 'status' ? `${q(c)}::text` : q(c));
    return `(${cols.map(col).join(', ')}) IS DISTINCT FROM (${cols.map((c) => v[c]).join(', ')})`;
  }
  const same = (c: (typeof cols)[number]) =>
    c === 'status' || c === 'note' ? `CAST(${q(c)} AS BINARY) <=> CAST(${v[c]} AS BINARY)` : `${q(c)} <=> (${v[c]})`;
  return `NOT (${cols.map(same).join(' AND ')})`;
}

function describeDiff(expected: OrderRow, actual: OrderRow): string {
  return ORDER_COLUMNS.filter((c) => expected[c] !== actual[c])
    .map((c) => `${c} is ${JSON.stringify(actual[c])}, the application wrote ${JSON.stringify(expected[c])}`)
    .join('; ');
}
