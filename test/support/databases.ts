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

export async function createMysqlDatabase(prefix = 't'): Promise<TestDatabase> {
  const admin = inject('mysqlAdminUrl');
  const name = uniqueName(prefix);
  const conn = await mysql.createConnection(admin);
  await conn.query(`CREATE DATABASE \`${name}\``);
  await conn.end();
  return { url: withDatabase(admin, name), name };
}

export async function createPgDatabase(prefix = 't'): Promise<TestDatabase> {
  const admin = inject('pgAdminUrl');
  const name = uniqueName(prefix);
  const client = new pg.Client({ connectionString: withDatabase(admin, 'postgres') });
  await client.connect();
  await client.query(`CREATE DATABASE "${name}"`);
  await client.end();
  return { url: withDatabase(admin, name), name };
}

/** Opens a plain mysql2 connection with the options that keep values exact. */
export function mysqlConnect(url: string): Promise<mysql.Connection> {
  return mysql.createConnection({ uri: url, supportBigNumbers: true, bigNumberStrings: true, dateStrings: true, multipleStatements: true });
}

export async function pgConnect(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  return client;
}
