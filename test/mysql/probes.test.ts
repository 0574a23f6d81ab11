// The MySQL/MariaDB throttle probes against a real primary and a real replica
// (binlog replication) whose apply we pause to build lag.

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import mysql from 'mysql2/promise';
import { startMariaDb, type RunningServer } from '../support/servers.js';
import { startMariaDbReplica, type RunningReplica } from '../support/replicas.js';
import { createMysqlProbes, HEARTBEAT_TABLE } from '../../src/dialects/mysql/mysql-probes.js';
import type { LoadProbes } from '../../src/dialects/dialect.js';

const DB = 'probes_db';

async function eventually<T>(what: string, check: () => Promise<T | null | false>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown = null;
  for (;;) {
    // An error counts as "not yet" (e.g. the first heartbeat has not reached the replica).
    const v = await check().catch((err: unknown) => ((last = err), null));
    if (v !== null && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('MySQL probes', () => {
  let primary: RunningServer;
  let replica: RunningReplica;
  let pool: mysql.Pool;
  let admin: mysql.Connection;
  let replicaUrl: string;
  const opened: LoadProbes[] = [];

  const probes = (jobId: string) => {
    const p = createMysqlProbes(pool, { jobId, schema: DB });
    opened.push(p);
    return p;
  };

  beforeAll(async () => {
    primary = await startMariaDb();
    replica = await startMariaDbReplica(primary);
    admin = await mysql.createConnection({ host: '127.0.0.1', port: primary.port, user: 'root', supportBigNumbers: true, bigNumberStrings: true, dateStrings: true });
    await admin.query(`CREATE DATABASE ${DB}`);
    pool = mysql.createPool({ uri: primary.adminUrl(DB), supportBigNumbers: true, bigNumberStrings: true, dateStrings: true, connectionLimit: 4 });
    replicaUrl = replica.adminUrl(DB);
  });
  afterAll(async () => {
    for (const p of opened) await p.close().catch(() => undefined);
    await pool?.end();
    await admin?.end();
    await replica?.stop();
    await primary?.stop();
  });

  const heartbeatTableExists = async (conn: mysql.Connection) => {
    const [rows] = await conn.query('SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?', [DB, HEARTBEAT_TABLE]);
    return (rows as unknown[]).length > 0;
  };

  it('reads global status variables as numbers, and names an unknown one', async () => {
    const p = probes('status');
    const before = await p.readStatus(['Threads_running', 'Threads_connected', 'questions']);
    expect(Object.keys(before).sort()).toEqual(['Threads_connected', 'Threads_running', 'questions']);
    expect(before.Threads_running).toBeGreaterThanOrEqual(1);
    expect(typeof before.Threads_connected).toBe('number');
    // More connections show up in Threads_connected.
    const extra = await Promise.all([1, 2, 3].map(() => mysql.createConnection({ host: '127.0.0.1', port: primary.port, user: 'root' })));
    try {
      const after = await p.readStatus(['Threads_connected']);
      expect(after.Threads_connected).toBeGreaterThanOrEqual(before.Threads_connected! + 3);
    } finally {
      await Promise.all(extra.map((c) => c.end()));
    }
    await expect(p.readStatus(['Threads_running', 'No_such_status_var'])).rejects.toThrow(/No_such_status_var/);
  });

  it('throttleQueryValue: first column of the first row, 0 when there is no row', async () => {
    const p = probes('tq');
    await admin.query(`CREATE TABLE ${DB}.ctl (id INT PRIMARY KEY, label VARCHAR(10))`);
    expect(await p.throttleQueryValue(`SELECT COUNT(*) FROM ctl`)).toBe(0);
    await admin.query(`INSERT INTO ${DB}.ctl VALUES (1, 'a'), (2, 'b'), (3, 'c')`);
    expect(await p.throttleQueryValue(`SELECT COUNT(*), 99 FROM ctl`)).toBe(3);
    expect(await p.throttleQueryValue(`SELECT id FROM ctl WHERE id > 100`)).toBe(0);
    expect(await p.throttleQueryValue(`SELECT 2.5`)).toBe(2.5);
    expect(await p.throttleQueryValue(`SELECT NULL`)).toBe(0);
    await expect(p.throttleQueryValue(`SELECT label FROM ctl ORDER BY id`)).rejects.toThrow(/not a number/);
  });

  it('streamRetainedBytes does not apply', async () => {
    expect(await probes('srb').streamRetainedBytes()).toBeNull();
  });

  it('replica lag from the heartbeat grows while the replica apply is paused and falls after resume', async () => {
    const p = probes('job-lag');
    await p.writeHeartbeat();
    const [rows] = await admin.query(`SELECT job_id, beat_at, TIMESTAMPDIFF(MICROSECOND, beat_at, UTC_TIMESTAMP(6)) AS age FROM ${DB}.${HEARTBEAT_TABLE}`);
    const row = (rows as Array<{ job_id: string; beat_at: string; age: string }>)[0]!;
    expect(row.job_id).toBe('job-lag');
    expect(row.beat_at).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}$/);
    expect(Math.abs(Number(row.age))).toBeLessThan(2_000_000);

    const beating = setInterval(() => void p.writeHeartbeat().catch(() => undefined), 100);
    try {
      // Caught up: small lag, measured from this job's heartbeat row on the replica
      // (before it arrives the probe falls back to Seconds_Behind_Master).
      const onReplica = await mysql.createConnection(replica.adminUrl(DB));
      try {
        await eventually('the heartbeat to reach the replica', async () => {
          const [r] = await onReplica.query(`SELECT 1 FROM ${DB}.${HEARTBEAT_TABLE} WHERE job_id = 'job-lag'`);
          return (r as unknown[]).length === 1;
        });
      } finally {
        await onReplica.end();
      }
      await eventually('a small lag', async () => (await p.replicaLagSeconds(replicaUrl)) < 0.5);

      await replica.pauseApply();
      // The lag grows while replay is paused: wait for it to pass 2 s, then to grow further.
      const paused = await eventually('the lag to pass 2 s while paused', async () => {
        const lag = await p.replicaLagSeconds(replicaUrl);
        return lag > 2 ? lag : null;
      });
      await eventually('the lag to keep growing', async () => (await p.replicaLagSeconds(replicaUrl)) > paused);

      await replica.resumeApply();
      await eventually('the lag to fall after resume', async () => (await p.replicaLagSeconds(replicaUrl)) < 0.5);
      // A heartbeat that stops being written ages too (the replica is caught up; the writer is not).
      clearInterval(beating);
      await eventually('the lag of a heartbeat no longer written to pass 1 s', async () => (await p.replicaLagSeconds(replicaUrl)) > 1);
    } finally {
      clearInterval(beating);
      await replica.resumeApply().catch(() => undefined);
    }
  });

  it('without a heartbeat row yet, falls back to Seconds_Behind_Master; stopped replication is an error', async () => {
    const p = probes('never-beat');
    // The heartbeat table exists on the replica (another job beats) but holds no row of this job.
    await eventually('the heartbeat table on the replica', async () => {
      const r = await mysql.createConnection({ host: '127.0.0.1', port: replica.port, user: 'root' });
      try {
        return heartbeatTableExists(r);
      } finally {
        await r.end();
      }
    });
    expect(await p.replicaLagSeconds(replicaUrl)).toBe(0);
    await replica.pauseApply();
    try {
      await expect(p.replicaLagSeconds(replicaUrl)).rejects.toThrow(/not running/);
    } finally {
      await replica.resumeApply();
    }
    // Not a replica at all (the primary) and no heartbeat row there either: a clear error.
    await expect(p.replicaLagSeconds(primary.adminUrl(DB))).rejects.toThrow(/not a replica/);
  });

  it('close removes the job row, and the table with the last row', async () => {
    await admin.query(`DROP TABLE IF EXISTS ${DB}.${HEARTBEAT_TABLE}`);
    const a = probes('close-a');
    const b = probes('close-b');
    await a.writeHeartbeat();
    await b.writeHeartbeat();
    await a.replicaLagSeconds(replicaUrl).catch(() => undefined);
    await a.close();
    let [rows] = await admin.query(`SELECT job_id FROM ${DB}.${HEARTBEAT_TABLE} ORDER BY job_id`);
    expect(rows).toEqual([{ job_id: 'close-b' }]);
    // A closed job writes no more heartbeats.
    await a.writeHeartbeat();
    [rows] = await admin.query(`SELECT job_id FROM ${DB}.${HEARTBEAT_TABLE} ORDER BY job_id`);
    expect(rows).toEqual([{ job_id: 'close-b' }]);
    await b.close();
    expect(await heartbeatTableExists(admin)).toBe(false);
    // And a job whose table another job dropped recreates it on its next beat.
    const c = probes('close-c');
    await c.writeHeartbeat();
    await admin.query(`DROP TABLE ${DB}.${HEARTBEAT_TABLE}`);
    await c.writeHeartbeat();
    [rows] = await admin.query(`SELECT job_id FROM ${DB}.${HEARTBEAT_TABLE}`);
    expect(rows).toEqual([{ job_id: 'close-c' }]);
    await c.close();
    expect(await heartbeatTableExists(admin)).toBe(false);
  });
});
