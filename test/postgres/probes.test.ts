// The PostgreSQL throttle probes against a real primary and a real streaming hot
// standby whose replay we pause to build lag, plus a logical slot nobody consumes.

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import pg from 'pg';
import { startPostgres, type RunningServer } from '../support/servers.js';
import { startPostgresReplica, type RunningReplica } from '../support/replicas.js';
import { createPostgresProbes, PostgresProbes, HEARTBEAT_TABLE } from '../../src/dialects/postgres/postgres-probes.js';
import { clientConfigFor, type PgContext } from '../../src/dialects/postgres/postgres-context.js';
import { postgresArtefactNames } from '../../src/dialects/postgres/postgres-names.js';
import { parseConnectionUrl } from '../../src/util/connection-url.js';
import { silentLogger } from '../../src/util/logger.js';
import { ShadowReads } from '../../src/dialects/postgres/postgres-original-reads.js';
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

describe('PostgreSQL probes', () => {
  let primary: RunningServer;
  let replica: RunningReplica;
  let pool: pg.Pool;
  let admin: pg.Client;
  let replicaUrl: string;
  const opened: LoadProbes[] = [];

  const probes = (jobId: string, slotName?: string) => {
    const p = createPostgresProbes(pool, { jobId, schema: 'public', slotName });
    opened.push(p);
    return p;
  };
  const connect = async (url: string) => {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    return c;
  };
  const tableExists = async (c: pg.Client) =>
    (await c.query(`SELECT to_regclass($1) IS NOT NULL AS e`, [`public.${HEARTBEAT_TABLE}`])).rows[0].e as boolean;

  beforeAll(async () => {
    primary = await startPostgres();
    const c = await connect(primary.url);
    await c.query(`CREATE DATABASE ${DB}`);
    await c.end();
    replica = await startPostgresReplica(primary);
    admin = await connect(primary.adminUrl(DB));
    // The way the dialect opens its pool: every value as text.
    pool = new pg.Pool({ ...clientConfigFor(parseConnectionUrl(primary.adminUrl(DB))), max: 4 });
    replicaUrl = replica.adminUrl(DB);
  });
  afterAll(async () => {
    for (const p of opened) await p.close().catch(() => undefined);
    await pool?.end();
    await admin?.end();
    await replica?.stop();
    await primary?.stop();
  });

  it('reads backend counts, and lists the supported names for an unknown one', async () => {
    const p = probes('status');
    const idle = await p.readStatus(['total_backends', 'active_backends', 'waiting_backends']);
    expect(idle.total_backends).toBeGreaterThanOrEqual(2);
    expect(idle.active_backends).toBe(0); // our own query does not count
    expect(idle.waiting_backends).toBe(0);

    await admin.query('CREATE TABLE locked (id int)');
    const holder = await connect(primary.adminUrl(DB));
    const waiter = await connect(primary.adminUrl(DB));
    const sleeper = await connect(primary.adminUrl(DB));
    try {
      const sleeperPid = (await sleeper.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE locked IN ACCESS EXCLUSIVE MODE');
      const waiting = waiter.query('SELECT count(*) FROM locked');
      const sleeping = sleeper.query('SELECT pg_sleep(30)').then(() => null, (err: Error) => err);
      const busy = await eventually('a waiting and a sleeping backend', async () => {
        const s = await p.readStatus(['active_backends', 'waiting_backends', 'total_backends']);
        return s.waiting_backends! >= 1 && s.active_backends! >= 2 ? s : null;
      });
      expect(busy.total_backends).toBeGreaterThanOrEqual(idle.total_backends! + 3);
      await holder.query('ROLLBACK');
      await waiting;
      await admin.query('SELECT pg_cancel_backend($1)', [sleeperPid]);
      expect((await sleeping)?.message).toMatch(/cancel/);
    } finally {
      await Promise.all([holder.end(), waiter.end(), sleeper.end()]);
    }
    await expect(p.readStatus(['Threads_running'])).rejects.toThrow(/Threads_running.*active_backends.*total_backends.*waiting_backends/);
  });

  it('throttleQueryValue: first column of the first row, 0 when there is no row', async () => {
    const p = probes('tq');
    await admin.query('CREATE TABLE ctl (id int PRIMARY KEY, label text)');
    expect(await p.throttleQueryValue('SELECT count(*) FROM ctl')).toBe(0);
    await admin.query(`INSERT INTO ctl VALUES (1, 'a'), (2, 'b'), (3, 'c')`);
    expect(await p.throttleQueryValue('SELECT count(*), 99 FROM ctl')).toBe(3);
    expect(await p.throttleQueryValue('SELECT id FROM ctl WHERE id > 100')).toBe(0);
    expect(await p.throttleQueryValue('SELECT 2.5::numeric')).toBe(2.5);
    expect(await p.throttleQueryValue('SELECT NULL')).toBe(0);
    await expect(p.throttleQueryValue('SELECT label FROM ctl ORDER BY id')).rejects.toThrow(/not a number/);
  });

  it('replica lag from the heartbeat grows while the standby replay is paused and falls after resume', async () => {
    const p = probes('job-lag');
    await p.writeHeartbeat();
    const row = (await admin.query(`SELECT job_id, extract(epoch FROM clock_timestamp() - beat_at)::float8 AS age FROM ${HEARTBEAT_TABLE}`)).rows;
    expect(row).toHaveLength(1);
    expect(row[0].job_id).toBe('job-lag');
    expect(row[0].age).toBeLessThan(2);

    const beating = setInterval(() => void p.writeHeartbeat().catch(() => undefined), 100);
    try {
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

  it('without a heartbeat row of the job, replay lag still shows a paused standby', async () => {
    const other = probes('other-job');
    const p = probes('never-beat');
    // Caught up and idle: no heartbeat row of this job and nothing waiting to be replayed.
    await eventually('the standby to catch up', async () => {
      const r = await connect(replicaUrl);
      try {
        return (await r.query('SELECT pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() AS same')).rows[0].same === true;
      } finally {
        await r.end();
      }
    });
    await expect(p.replicaLagSeconds(replicaUrl)).rejects.toThrow(/no heartbeat of this job/);
    await replica.pauseApply();
    try {
      await other.writeHeartbeat(); // WAL arrives but is not replayed
      await eventually('the replay lag of a paused standby to pass 1 s', async () => (await p.replicaLagSeconds(replicaUrl)) > 1);
    } finally {
      await replica.resumeApply();
    }
    // The primary is no standby, and has no row of this job either.
    await expect(p.replicaLagSeconds(primary.adminUrl(DB))).rejects.toThrow(/not a standby/);
  });

  it('slot retained bytes grow while the slot is not consumed, and fall when it is', async () => {
    await admin.query(`SELECT pg_create_logical_replication_slot('probe_slot', 'pgoutput')`);
    try {
      const p = probes('slot', 'probe_slot');
      const start = (await p.streamRetainedBytes())!;
      expect(start).toBeGreaterThanOrEqual(0);
      expect(start).toBeLessThan(64 * 1024);
      await admin.query('CREATE TABLE filler (id int, pad text)');
      await admin.query(`INSERT INTO filler SELECT g, repeat('x', 200) FROM generate_series(1, 5000) g`);
      const grown = (await p.streamRetainedBytes())!;
      expect(grown).toBeGreaterThan(start + 1_000_000);
      // Consumed: the slot confirms up to the end; the server moves restart_lsn at the next running-xacts record.
      await admin.query(`SELECT pg_replication_slot_advance('probe_slot', pg_current_wal_insert_lsn())`);
      await admin.query('CHECKPOINT');
      await admin.query(`SELECT pg_replication_slot_advance('probe_slot', pg_current_wal_insert_lsn())`);
      expect(await p.streamRetainedBytes()).toBeLessThan(64 * 1024);
      expect(await probes('no-slot').streamRetainedBytes()).toBeNull();
      expect(await probes('gone-slot', 'no_such_slot').streamRetainedBytes()).toBeNull();
    } finally {
      await admin.query(`SELECT pg_drop_replication_slot('probe_slot')`);
    }
  });

  it('close removes the job row, and the table with the last row', async () => {
    await admin.query(`DROP TABLE IF EXISTS ${HEARTBEAT_TABLE}`);
    const a = probes('close-a');
    const b = probes('close-b');
    await a.writeHeartbeat();
    await b.writeHeartbeat();
    await eventually('replica lag readable', async () => (await a.replicaLagSeconds(replicaUrl).catch(() => null)) !== null);
    await a.close();
    expect((await admin.query(`SELECT job_id FROM ${HEARTBEAT_TABLE} ORDER BY job_id`)).rows).toEqual([{ job_id: 'close-b' }]);
    await a.writeHeartbeat();
    expect((await admin.query(`SELECT job_id FROM ${HEARTBEAT_TABLE} ORDER BY job_id`)).rows).toEqual([{ job_id: 'close-b' }]);
    await b.close();
    expect(await tableExists(admin)).toBe(false);
    const c = probes('close-c');
    await c.writeHeartbeat();
    await admin.query(`DROP TABLE ${HEARTBEAT_TABLE}`);
    await c.writeHeartbeat();
    expect((await admin.query(`SELECT job_id FROM ${HEARTBEAT_TABLE}`)).rows).toEqual([{ job_id: 'close-c' }]);
    await c.close();
    expect(await tableExists(admin)).toBe(false);
  });

  it('the session probes key the heartbeat by the job tag in the table schema and watch the job slot', async () => {
    await admin.query('CREATE SCHEMA app');
    const ctx: PgContext = { pool, config: parseConnectionUrl(primary.adminUrl(DB)), clientConfig: {}, log: silentLogger(), reads: new ShadowReads() };
    const names = postgresArtefactNames({ schema: 'app', name: 'orders' }, 'job-42');
    const p = new PostgresProbes(ctx, names);
    opened.push(p);
    await p.writeHeartbeat();
    expect((await admin.query(`SELECT job_id FROM app.${HEARTBEAT_TABLE}`)).rows).toEqual([{ job_id: names.extra.tag }]);
    expect(await p.streamRetainedBytes()).toBeNull(); // the slot does not exist (yet)
    await admin.query(`SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, [names.extra.slot]);
    try {
      expect(await p.streamRetainedBytes()).toBeGreaterThanOrEqual(0);
    } finally {
      await admin.query(`SELECT pg_drop_replication_slot($1)`, [names.extra.slot]);
    }
    await p.close();
    expect((await admin.query(`SELECT to_regclass('app.${HEARTBEAT_TABLE}') IS NULL AS gone`)).rows[0].gone).toBe(true);
  });
});
