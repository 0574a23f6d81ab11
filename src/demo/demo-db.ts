// One plain connection for the demo's own SQL (seeding, the application
// workload, the final comparison), for both engines. The demo talks to the
// database like an application does, not through the engine's dialect code, so
// what it measures and checks is independent of what it demonstrates.
//
// Values come back as text: the demo's queries cast to text themselves, and
// mysql2 keeps big numbers and dates as strings.

import mysql from 'mysql2/promise';
import pg from 'pg';

export type DemoEngine = 'postgres' | 'mariadb';

export interface DemoDb {
  readonly engine: DemoEngine;
  /** Rows of a SELECT. Placeholders: `?` on MariaDB, `$n` on PostgreSQL (see ph()). */
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  /** A statement's affected (MariaDB: matched) row count. */
  exec(sql: string, params?: unknown[]): Promise<number>;
  /** Set once the connection failed; open a new one. */
  readonly broken: boolean;
  close(): Promise<void>;
  /** Drops the connection without waiting for a statement in flight. */
  destroy(): void;
}

export function engineOf(url: string): DemoEngine {
  return /^postgres(ql)?:/.test(url) ? 'postgres' : 'mariadb';
}

export function quoteName(engine: DemoEngine, name: string): string {
  return engine === 'mariadb' ? '`' + name.replace(/`/g, '``') + '`' : '"' + name.replace(/"/g, '""') + '"';
}

/** The i-th (1-based) bind placeholder. */
export function ph(engine: DemoEngine, i: number): string {
  return engine === 'mariadb' ? '?' : `$${i}`;
}

export async function openDemoDb(url: string): Promise<DemoDb> {
  const engine = engineOf(url);
  let broken = false;
  if (engine === 'mariadb') {
    const conn = await mysql.createConnection({ uri: url.replace(/^mariadb:/, 'mysql:'), supportBigNumbers: true, bigNumberStrings: true, dateStrings: true });
    conn.on('error', () => (broken = true));
    const run = async (sql: string, params?: unknown[]) => {
      try {
        return (await conn.query(sql, params))[0];
      } catch (err) {
        if ((err as { fatal?: boolean }).fatal) broken = true;
        throw err;
      }
    };
    return {
      engine,
      get broken() {
        return broken;
      },
      query: async <T>(sql: string, params?: unknown[]) => (await run(sql, params)) as T[],
      exec: async (sql, params) => Number(((await run(sql, params)) as { affectedRows?: number }).affectedRows ?? 0),
      async close() {
        broken = true;
        await conn.end().catch(() => conn.destroy());
      },
      destroy() {
        broken = true;
        conn.destroy();
      },
    };
  }
  const client = new pg.Client({ connectionString: url.replace(/^postgresql:/, 'postgres:') });
  client.on('error', () => (broken = true));
  client.on('end', () => (broken = true));
  await client.connect();
  return {
    engine,
    get broken() {
      return broken;
    },
    query: async <T>(sql: string, params?: unknown[]) => (await client.query(sql, params)).rows as T[],
    exec: async (sql, params) => (await client.query(sql, params)).rowCount ?? 0,
    async close() {
      broken = true;
      await client.end().catch(() => undefined);
    },
    destroy() {
      broken = true;
      client.end().catch(() => undefined);
    },
  };
}

export async function withDemoDb<T>(url: string, fn: (db: DemoDb) => Promise<T>): Promise<T> {
  const db = await openDemoDb(url);
  try {
    return await fn(db);
  } finally {
    await db.close();
  }
}
