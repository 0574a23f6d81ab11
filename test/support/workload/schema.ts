// The workload table and the exact text form of its rows.

import { quoteIdent, withDb, type Db, type Dialect } from '../db.js';

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

export function formatCents(cents: bigint): string {
  const neg = cents < 0n;
  const a = neg ? -cents : cents;
  return `${neg ? '-' : ''}${a / 100n}.${String(a % 100n).padStart(2, '0')}`;
}

/** Micros since the Unix epoch -> 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC calendar, no zone). */
export function formatMicros(us: bigint): string {
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

/** A bind value for a model column. */
export function bindValue(col: WorkloadColumn, row: WorkloadRow): unknown {
  if (col === 'payload') return Buffer.from(row.payload, 'hex');
  if (col === 'id') return Number(row.id);
  return row[col];
}
