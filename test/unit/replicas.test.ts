// The throwaway replicas used by the replica-lag tests really replicate, and
// pausing their apply really holds changes back until resumed.

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { startMariaDb, startPostgres, type RunningServer } from '../support/servers.js';
import { startMariaDbReplica, startPostgresReplica, type RunningReplica } from '../support/replicas.js';

async function eventually(what: string, check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('MariaDB replica', () => {
  let primary: RunningServer;
  let replica: RunningReplica;
  let p: mysql.Connection;
  let r: mysql.Connection;

  beforeAll(async () => {
    primary = await startMariaDb();
    p = await mysql.createConnection({ host: '127.0.0.1', port: primary.port, user: 'root' });
    // Data written before the replica exists must reach it too.
    await p.query('CREATE DATABASE rt');
    await p.query('CREATE TABLE rt.t (id INT PRIMARY KEY)');
    await p.query('INSERT INTO rt.t VALUES (1)');
    replica = await startMariaDbReplica(primary);
    r = await mysql.createConnection({ host: '127.0.0.1', port: replica.port, user: 'root' });
  });
  afterAll(async () => {
    await p?.end();
    await r?.end();
    await replica?.stop();
    await primary?.stop();
  });

  const has = async (id: number) => {
    // Until the replica has applied the CREATEs, the table is not there yet: not a failure.
    const [rows] = await r.query('SELECT id FROM rt.t WHERE id = ?', [id]).catch((err: { code?: string }) => {
      if (err.code === 'ER_NO_SUCH_TABLE' || err.code === 'ER_BAD_DB_ERROR') return [[]];
      throw err;
    });
    return (rows as unknown[]).length === 1;
  };

  it('has its own server id and binlog', async () => {
    const [[a], [b]] = await Promise.all([p.query('SELECT @@server_id AS id'), r.query('SELECT @@server_id AS id, @@log_bin AS lb')]);
    expect((b as Array<{ id: number; lb: number }>)[0]!.id).not.toBe((a as Array<{ id: number }>)[0]!.id);
    expect(Number((b as Array<{ lb: number }>)[0]!.lb)).toBe(1);
  });

  it('replicates, holds writes back while paused and catches up on resume', async () => {
    await eventually('the pre-existing row', () => has(1));
    await p.query('INSERT INTO rt.t VALUES (2)');
    await eventually('row 2', () => has(2));

    await replica.pauseApply();
    await p.query('INSERT INTO rt.t VALUES (3)');
    await new Promise((res) => setTimeout(res, 1500));
    expect(await has(3)).toBe(false);

    await replica.resumeApply();
    await eventually('row 3 after resume', () => has(3));
  });
});

describe('PostgreSQL streaming replica', () => {
  let primary: RunningServer;
  let replica: RunningReplica;
  let p: pg.Client;
  let r: pg.Client;

  beforeAll(async () => {
    primary = await startPostgres();
    p = new pg.Client({ connectionString: primary.url });
    await p.connect();
    await p.query('CREATE TABLE rt (id int PRIMARY KEY)');
    await p.query('INSERT INTO rt VALUES (1)');
    replica = await startPostgresReplica(primary);
    r = new pg.Client({ connectionString: replica.url });
    await r.connect();
  });
  afterAll(async () => {
    await p?.end();
    await r?.end();
    await replica?.stop();
    await primary?.stop();
  });

  const has = async (id: number) => (await r.query('SELECT 1 FROM rt WHERE id = $1', [id])).rowCount === 1;

  it('is a hot standby on its own port', async () => {
    expect(replica.port).not.toBe(primary.port);
    expect((await r.query('SELECT pg_is_in_recovery() AS rec')).rows[0].rec).toBe(true);
    expect((await p.query('SELECT pg_is_in_recovery() AS rec')).rows[0].rec).toBe(false);
  });

  it('replicates, holds writes back while paused and catches up on resume', async () => {
    await eventually('the pre-existing row', () => has(1));
    await p.query('INSERT INTO rt VALUES (2)');
    await eventually('row 2', () => has(2));

    await replica.pauseApply();
    await p.query('INSERT INTO rt VALUES (3)');
    // The WAL does arrive; only replay is held.
    await eventually('the WAL to reach the standby', async () => {
      const x = await r.query('SELECT pg_last_wal_receive_lsn() > pg_last_wal_replay_lsn() AS behind');
      return x.rows[0].behind === true;
    });
    await new Promise((res) => setTimeout(res, 1000));
    expect(await has(3)).toBe(false);

    await replica.resumeApply();
    await eventually('row 3 after resume', () => has(3));
  });
});
