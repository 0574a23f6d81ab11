// Replica-lag throttling against a real replica: a second throwaway server
// replicating from the first. Pausing the replica's apply makes it fall behind;
// the copy must pause (rows copied flat, changes still applied) and resume once
// the replica catches up.

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { startMariaDb, startPostgres, type RunningServer } from '../support/servers.js';
import { startMariaDbReplica, startPostgresReplica, type RunningReplica } from '../support/replicas.js';
import { openDb, quoteIdent, type Db, mysqlSeq } from '../support/db.js';
import { newJob, waitUntil } from '../support/alter.js';

const ROWS = 30_000;

const cases = [
  {
    dialect: 'mysql' as const,
    start: async () => {
      const primary = await startMariaDb();
      const replica = await startMariaDbReplica(primary);
      const admin = await openDb(primary.adminUrl('mysql'));
      await admin.exec('CREATE DATABASE app');
      await admin.close();
      return { primary, replica, url: primary.adminUrl('app'), replicaUrl: replica.adminUrl('app') };
    },
    series: `SELECT seq, seq FROM ${mysqlSeq(1, ROWS)}`,
  },
  {
    dialect: 'postgres' as const,
    start: async () => {
      const primary = await startPostgres();
      const replica = await startPostgresReplica(primary);
      return { primary, replica, url: primary.adminUrl('postgres'), replicaUrl: replica.adminUrl('postgres') };
    },
    series: `SELECT g, g FROM generate_series(1, ${ROWS}) g`,
  },
];

describe.each(cases)('$dialect: replica lag throttles the copy', ({ dialect, start, series }) => {
  let primary: RunningServer;
  let replica: RunningReplica;
  let url: string;
  let replicaUrl: string;
  let db: Db;
  const q = (n: string) => quoteIdent(dialect, n);

  beforeAll(async () => {
    ({ primary, replica, url, replicaUrl } = await start());
    db = await openDb(url);
  }, 120_000);
  afterAll(async () => {
    await db?.close();
    await replica?.stop();
    await primary?.stop();
  });

  it('pauses while the replica is more than --max-lag behind, and resumes after', async () => {
    await db.exec(`CREATE TABLE ${q('t')} (id INT PRIMARY KEY, v INT NOT NULL)`);
    await db.exec(`INSERT INTO ${q('t')} ${series}`);
    // Only this job writes heartbeats on the primary.
    const heartbeatsOnReplica = async () => {
      const r = await openDb(replicaUrl);
      try {
        const [row] = await r.query<{ n: string }>(`SELECT COUNT(*) AS n FROM ${q('_shadowshift_heartbeat')}`);
        return Number(row!.n);
      } catch {
        return 0; // the table has not reached the replica yet
      } finally {
        await r.close();
      }
    };
    const job = newJob(url, 't', 'ADD COLUMN w INT', {
      // Changes must be applied while the copy is paused: on PostgreSQL, the copy under
      // row locks (at the stream's snapshot nothing is applied until the copy ends).
      copySnapshotMaxSeconds: 0,
      chunkSize: 300,
      maxLagSeconds: 1,
      throttle: { replicaUrls: [replicaUrl], heartbeatIntervalMs: 100 },
    });
    try {
      const report = await job.prepare();
      // Hold the copy until the job's heartbeat has reached the replica, then stop the replica's apply.
      job.controls.manualThrottle = true;
      const running = job.execute(report);
      running.catch(() => undefined);
      // The heartbeat row must be on the replica before its apply stops: until
      // then the lag comes from the replica's own status, which has no value
      // once the apply is stopped.
      await waitUntil(
        async () => job.status().state === 'copying' && (await heartbeatsOnReplica()) > 0 && job.replicaLagSeconds() !== null && job.replicaLagSeconds()! < 1,
        "the job's heartbeat to reach the replica",
        60_000,
      );
      await replica.pauseApply();
      await waitUntil(() => (job.replicaLagSeconds() ?? 0) > 1.2, 'the replica to fall behind', 60_000);
      job.controls.manualThrottle = false;
      await job.refreshThrottle();
      expect(job.status().state).toBe('copying');
      expect(job.status().throttled).toMatch(/^replica-lag: replica .* behind \(max 1s\)/);
      const flat = job.status().rowsCopied;
      expect(flat).toBeLessThan(ROWS);
      const applied = job.status().eventsApplied;
      for (let i = 1; i <= 10; i++) await db.exec(`UPDATE ${q('t')} SET v = -v WHERE id = ${i}`);
      await waitUntil(() => job.status().eventsApplied >= applied + 10, 'changes applied while throttled');
      await new Promise((r) => setTimeout(r, 1000));
      expect(job.status().rowsCopied).toBe(flat);
      expect(job.replicaLagSeconds()).toBeGreaterThan(1);

      await replica.resumeApply();
      await running;
      expect(job.status().state).toBe('done');
      expect(job.status().repairedChunks).toBe(0);
      expect(job.throttledSeconds().get('replica-lag')).toBeGreaterThan(1);
    } finally {
      await job.close();
    }
    const [row] = await db.query<{ n: string }>(`SELECT COUNT(*) AS n FROM ${q('t')} WHERE v < 0`);
    expect(String(row!.n)).toBe('10');
  }, 180_000);
});
