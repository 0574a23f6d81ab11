// --kill-blockers-after spares sessions younger than its threshold, so the age it reads
// must be right on a server whose system time zone is not UTC. InnoDB writes
// INNODB_TRX.trx_started in the server process's local time, while every shadowshift
// session runs with time_zone '+00:00': compared with that session's NOW(), a
// transaction begun a moment ago on a server five hours west of UTC looked five hours
// old, and would have been ended as an old blocker.

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import type { Connection } from 'mysql2/promise';
import { startMariaDb, type RunningServer } from '../support/servers.js';
import { mysqlConnect } from '../support/databases.js';
import { openSession } from './helpers.js';
import { mysqlLockBlockers } from '../../src/dialects/mysql/mysql-lock-blockers.js';
import type { MysqlSession } from '../../src/dialects/mysql/mysql-dialect.js';

describe('the age of a blocking session on a server west of UTC', () => {
  let server: RunningServer;
  let session: MysqlSession;
  let app: Connection;
  beforeAll(async () => {
    // The server's SYSTEM zone comes from TZ when it starts (POSIX form: no zone files needed).
    const tz = process.env.TZ;
    process.env.TZ = 'EST5';
    try {
      server = await startMariaDb();
    } finally {
      if (tz === undefined) delete process.env.TZ;
      else process.env.TZ = tz;
    }
    const admin = await mysqlConnect(server.adminUrl('mysql'));
    await admin.query('CREATE DATABASE app');
    await admin.query('CREATE TABLE app.t (id INT PRIMARY KEY)');
    await admin.end();
    session = await openSession(server.adminUrl('app'));
    app = await mysqlConnect(server.adminUrl('app'));
  }, 60_000);
  afterAll(async () => {
    await app?.end();
    await session?.close();
    await server?.stop();
  });

  it('a transaction just begun reads as seconds old, not hours', async () => {
    const [[{ zone }]] = (await app.query('SELECT @@system_time_zone AS zone')) as unknown as [[{ zone: string }]];
    expect(zone).toBe('EST');
    await app.query('BEGIN');
    await app.query('SELECT COUNT(*) FROM t');
    const [[{ id }]] = (await app.query('SELECT CONNECTION_ID() AS id')) as unknown as [[{ id: number }]];
    try {
      const found = await mysqlLockBlockers(session.ctx, 'app', ['t'], -1).find();
      const holder = found.find((b) => b.session === Number(id));
      expect(holder, JSON.stringify(found)).toBeDefined();
      expect(holder!.ageSeconds).toBeLessThan(60);
    } finally {
      await app.query('ROLLBACK');
    }
  });
});
