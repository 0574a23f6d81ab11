// A thin, dialect-neutral connection for test and benchmark support code
// (workload, compare, bench/lib). No vitest import: benchmarks run it under tsx.
//
// Values are read as strings (the queries here cast to text / HEX themselves);
// mysql2 is opened with bigNumberStrings + dateStrings so nothing passes
// through a JS number or Date by accident.

import mysql from 'mysql2/promise';
import pg from 'pg';
import { randomBytes } from 'node:crypto';

export type Dialect = 'mysql' | 'postgres';

export interface DmlResult {
  /** Rows matched (MySQL: mysql2 sets CLIENT_FOUND_ROWS by default) / rowCount (PG). */
  affectedRows: number;
}

export interface Db {
  readonly dialect: Dialect;
  readonly url: string;
  /** Rows of a SELECT. Placeholders: `?` for MySQL, `$n` for PostgreSQL (see ph()). */
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  /** A DML/DDL statement; returns the affected row count. */
  exec(sql: string, params?: unknown[]): Promise<DmlResult>;
  /** Set when the connection reported a fatal error; the Db is then unusable. */
  readonly broken: boolean;
  close(): Promise<void>;
  /** Drops the connection without waiting for anything (in-flight statements keep running on the server). */
  destroy(): void;
  /** Cuts the socket at once, unlike PostgreSQL's destroy(), which ends the session politely after what was sent. */
  dropSocket(): void;
}

export function dialectOf(url: string): Dialect {
  const scheme = new URL(url).protocol.replace(/:$/, '');
  if (scheme === 'mysql' || scheme === 'mariadb') return 'mysql';
  if (scheme === 'postgres' || scheme === 'postgresql') return 'postgres';
  throw new Error(`unsupported URL scheme: ${scheme}`);
}

export function quoteIdent(dialect: Dialect, name: string): string {
  return dialect === 'mysql' ? '`' + name.replace(/`/g, '``') + '`' : '"' + name.replace(/"/g, '""') + '"';
}

/** The i-th (1-based) bind placeholder. */
export function ph(dialect: Dialect, i: number): string {
  return dialect === 'mysql' ? '?' : `$${i}`;
}

export async function openDb(url: string): Promise<Db> {
  const dialect = dialectOf(url);
  if (dialect === 'mysql') {
    const conn = await mysql.createConnection({
      uri: url.replace(/^mariadb:/, 'mysql:'),
      supportBigNumbers: true,
      bigNumberStrings: true,
      dateStrings: true,
    });
    let broken = false;
    conn.on('error', () => {
      broken = true;
    });
    return {
      dialect,
      url,
      get broken() {
        return broken;
      },
      async query<T>(sql: string, params?: unknown[]) {
        try {
          const [rows] = await conn.query(sql, params);
          return rows as T[];
        } catch (err) {
          if ((err as { fatal?: boolean }).fatal) broken = true;
          throw err;
        }
      },
      async exec(sql: string, params?: unknown[]) {
        try {
          const [res] = await conn.query(sql, params);
          return { affectedRows: Number((res as { affectedRows?: number }).affectedRows ?? 0) };
        } catch (err) {
          if ((err as { fatal?: boolean }).fatal) broken = true;
          throw err;
        }
      },
      async close() {
        broken = true;
        await conn.end().catch(() => conn.destroy());
      },
      destroy() {
        broken = true;
        conn.destroy();
      },
      dropSocket() {
        broken = true;
        conn.destroy();
      },
    };
  }
  const client = new pg.Client({ connectionString: url.replace(/^postgresql:/, 'postgres:') });
  let broken = false;
  client.on('error', () => {
    broken = true;
  });
  client.on('end', () => {
    broken = true;
  });
  await client.connect();
  return {
    dialect,
    url,
    get broken() {
      return broken;
    },
    async query<T>(sql: string, params?: unknown[]) {
      const r = await client.query(sql, params as unknown[] | undefined);
      return r.rows as T[];
    },
    async exec(sql: string, params?: unknown[]) {
      const r = await client.query(sql, params as unknown[] | undefined);
      return { affectedRows: r.rowCount ?? 0 };
    },
    async close() {
      broken = true;
      await client.end().catch(() => undefined);
    },
    destroy() {
      broken = true;
      client.end().catch(() => undefined);
    },
    dropSocket() {
      broken = true;
      (client as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
    },
  };
}

/** Runs fn with a Db: the given one, or one opened (and closed afterwards) from a URL. */
export async function withDb<T>(target: string | Db, fn: (db: Db) => Promise<T>): Promise<T> {
  if (typeof target !== 'string') return fn(target);
  const db = await openDb(target);
  try {
    return await fn(db);
  } finally {
    await db.close();
  }
}

/**
 * Creates a fresh database on a server given a root/superuser URL (any path),
 * without vitest's inject(): for benchmarks. Tests use databases.ts.
 */
export async function createDatabaseOn(adminUrl: string, prefix = 'b'): Promise<{ url: string; name: string }> {
  const name = `${prefix}_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`.toLowerCase().replace(/[^a-z0-9_]/g, '_');
  const dialect = dialectOf(adminUrl);
  const u = new URL(adminUrl);
  u.pathname = dialect === 'mysql' ? '/' : '/postgres';
  await withDb(u.toString(), (db) => db.exec(`CREATE DATABASE ${quoteIdent(dialect, name)}`));
  u.pathname = '/' + name;
  return { url: u.toString(), name };
}

/** Columns of a table in ordinal order with their lower-case base data type. */
export async function tableColumns(db: Db, table: string): Promise<Array<{ name: string; dataType: string }>> {
  const rows =
    db.dialect === 'mysql'
      ? await db.query<{ name: string; dataType: string }>(
          `SELECT COLUMN_NAME AS name, LOWER(DATA_TYPE) AS dataType FROM information_schema.COLUMNS
            WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION`,
          [table],
        )
      : await db.query<{ name: string; dataType: string }>(
          `SELECT a.attname AS name, lower(format_type(a.atttypid, NULL)) AS "dataType"
             FROM pg_attribute a
            WHERE a.attrelid = to_regclass(quote_ident($1)) AND a.attnum > 0 AND NOT a.attisdropped
            ORDER BY a.attnum`,
          [table],
        );
  return rows.map((r) => ({ name: String(r.name), dataType: String(r.dataType) }));
}

/** Primary key columns of a table, in key order. */
export async function primaryKeyColumns(db: Db, table: string): Promise<string[]> {
  const rows =
    db.dialect === 'mysql'
      ? await db.query<{ name: string }>(
          `SELECT COLUMN_NAME AS name FROM information_schema.STATISTICS
            WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX`,
          [table],
        )
      : await db.query<{ name: string }>(
          `SELECT a.attname AS name
             FROM pg_index i
             JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) ON true
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
            WHERE i.indrelid = to_regclass(quote_ident($1)) AND i.indisprimary
            ORDER BY k.ord`,
          [table],
        );
  return rows.map((r) => String(r.name));
}

const MYSQL_BINARY_TYPES = new Set(['binary', 'varbinary', 'tinyblob', 'blob', 'mediumblob', 'longblob', 'bit', 'geometry', 'point', 'linestring', 'polygon', 'multipoint', 'multilinestring', 'multipolygon', 'geometrycollection']);

/**
 * An expression giving an exact text image of a column: HEX (upper case) for
 * binary types, the server's own text output otherwise. Never a JS number.
 */
export function columnTextExpr(dialect: Dialect, column: string, dataType: string, tableAlias?: string): string {
  const ref = (tableAlias ? tableAlias + '.' : '') + quoteIdent(dialect, column);
  if (dialect === 'mysql') return MYSQL_BINARY_TYPES.has(dataType) ? `HEX(${ref})` : `CAST(${ref} AS CHAR)`;
  return dataType === 'bytea' ? `upper(encode(${ref}, 'hex'))` : `${ref}::text`;
}

export function isIntegerType(dataType: string): boolean {
  return /^(tinyint|smallint|mediumint|int|integer|bigint|int2|int4|int8)( unsigned)?$/.test(dataType);
}

/**
 * A derived table of one column `seq`, the integers lo..hi, that runs on MariaDB
 * and MySQL 8 alike: MariaDB's sequence-engine tables (seq_1_to_N) do not exist on
 * MySQL, and a recursive CTE stops at MySQL's cte_max_recursion_depth (1000). Cross
 * joins of the digits 0-9 need neither. Use as `FROM ${mysqlSeq(1, 5000)}`.
 */
export function mysqlSeq(lo: number, hi: number): string {
  if (!Number.isSafeInteger(lo) || !Number.isSafeInteger(hi) || hi < lo) throw new Error(`mysqlSeq(${lo}, ${hi}): give integers lo <= hi`);
  const count = hi - lo + 1;
  let digits = 1;
  while (10 ** digits < count) digits++;
  const digit = '(SELECT 0 AS d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9)';
  const idx = [...Array(digits).keys()];
  const n = idx.map((i) => (i === 0 ? 'd0.d' : `d${i}.d * ${10 ** i}`)).join(' + ');
  const from = idx.map((i) => `${digit} AS d${i}`).join(' CROSS JOIN ');
  // ORDER BY with LIMIT: rows arrive in order, as from the sequence engine (auto-increment ids follow seq).
  return `(SELECT ${lo} + ${n} AS seq FROM ${from} WHERE ${n} < ${count} ORDER BY seq LIMIT ${count}) AS seq_${lo}_to_${hi}`;
}
