// A fresh database per test file, on the servers global-setup started.

import { inject } from 'vitest';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { randomBytes } from 'node:crypto';

function uniqueName(prefix: string): string {
  return `${prefix}_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`.toLowerCase().replace(/[^a-z0-9_]/g, '_');
}

function withDatabase(adminUrl: string, db: string): string {
  const u = new URL(adminUrl);
  u.pathname = '/' + db;
  return u.toString();
}

export interface TestDatabase {
  url: string;
  name: string;
}

// What this test file created on the shared servers; per-file.ts drops it after the file.
const created: Array<{ dialect: 'mysql' | 'postgres'; admin: string; name: string }> = [];
const accounts: Array<{ dialect: 'mysql' | 'postgres'; name: string }> = [];

/**
 * A role (PostgreSQL) or user (MySQL, `'name'@'host'` as written) the file created
 * on the shared server: dropped after the file, once its databases are gone (which
 * takes the role's privileges and objects there with them).
 */
export function dropAfterFile(dialect: 'mysql' | 'postgres', name: string): void {
  accounts.push({ dialect, name });
}

export async function createMysqlDatabase(prefix = 't'): Promise<TestDatabase> {
  const admin = inject('mysqlAdminUrl');
  if (!admin) throw new Error('no MySQL server in this test project (SHADOWSHIFT_TEST_DIALECTS leaves it out)');
  const name = uniqueName(prefix);
  const conn = await mysql.createConnection(admin);
  await conn.query(`CREATE DATABASE \`${name}\``);
  await conn.end();
  created.push({ dialect: 'mysql', admin, name });
  return { url: withDatabase(admin, name), name };
}

/**
 * Drops every database this file created (after its own afterAll hooks): on
 * PostgreSQL the sessions still in it are ended and its inactive replication slots
 * dropped first (a slot pins the database). What cannot be dropped is reported.
 */
export async function dropCreatedDatabases(): Promise<void> {
  const failed: string[] = [];
  for (const db of created.splice(0)) {
    try {
      if (db.dialect === 'mysql') {
        const conn = await mysql.createConnection(db.admin);
        try {
          await conn.query(`DROP DATABASE IF EXISTS \`${db.name}\``);
        } finally {
          await conn.end();
        }
      } else {
        const client = new pg.Client({ connectionString: withDatabase(db.admin, 'postgres') });
        await client.connect();
        try {
          await client.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`, [db.name]);
          await client.query(`SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE database = $1 AND active_pid IS NOT NULL`, [db.name]);
          for (let i = 0; ; i++) {
            const slots = await client.query<{ s: string }>(`SELECT slot_name AS s FROM pg_replication_slots WHERE database = $1 AND NOT active`, [db.name]);
            for (const { s } of slots.rows) await client.query('SELECT pg_drop_replication_slot($1)', [s]).catch(() => undefined);
            const left = await client.query(`SELECT 1 FROM pg_replication_slots WHERE database = $1`, [db.name]);
            if (left.rows.length === 0 || i >= 50) break;
            await new Promise((r) => setTimeout(r, 100)); // a terminated walsender lets go of its slot
          }
          await client.query(`DROP DATABASE IF EXISTS "${db.name}" WITH (FORCE)`);
        } finally {
          await client.end();
        }
      }
    } catch (err) {
      failed.push(`${db.dialect} ${db.name}: ${(err as Error).message}`);
    }
  }
  for (const a of accounts.splice(0)) {
    try {
      if (a.dialect === 'mysql') {
        const conn = await mysql.createConnection(inject('mysqlAdminUrl'));
        try {
          await conn.query(`DROP USER IF EXISTS ${a.name}`);
        } finally {
          await conn.end();
        }
      } else {
        const client = new pg.Client({ connectionString: withDatabase(inject('pgAdminUrl'), 'postgres') });
        await client.connect();
        try {
          await client.query(`DROP OWNED BY "${a.name}"`).catch(() => undefined);
          await client.query(`DROP ROLE IF EXISTS "${a.name}"`);
        } finally {
          await client.end();
        }
      }
    } catch (err) {
      failed.push(`${a.dialect} account ${a.name}: ${(err as Error).message}`);
    }
  }
  if (failed.length) process.stderr.write(`test databases left on the shared servers:\n  ${failed.join('\n  ')}\n`);
}

export async function createPgDatabase(prefix = 't'): Promise<TestDatabase> {
  const admin = inject('pgAdminUrl');
  const name = uniqueName(prefix);
  const client = new pg.Client({ connectionString: withDatabase(admin, 'postgres') });
  await client.connect();
  await client.query(`CREATE DATABASE "${name}"`);
  await client.end();
  created.push({ dialect: 'postgres', admin, name });
  return { url: withDatabase(admin, name), name };
}

/** Opens a plain mysql2 connection with the options that keep values exact. */
export function mysqlConnect(url: string): Promise<mysql.Connection> {
  return mysql.createConnection({ uri: url, supportBigNumbers: true, bigNumberStrings: true, dateStrings: true, multipleStatements: true });
}

export async function pgConnect(url: string, options: { application_name?: string } = {}): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, ...options });
  await client.connect();
  return client;
}

/**
 * The cases of a per-dialect test the run asks for: SHADOWSHIFT_TEST_DIALECTS
 * (comma-separated, e.g. `postgres` in the second-PostgreSQL project), else all.
 */
export function testedDialects<T extends { dialect: string }>(cases: readonly T[]): T[] {
  const only = process.env.SHADOWSHIFT_TEST_DIALECTS?.split(',').map((d) => d.trim()).filter(Boolean);
  return only?.length ? cases.filter((c) => only.includes(c.dialect)) : [...cases];
}
