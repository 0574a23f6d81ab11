// `migrate up --throttle-replicas URL --max-lag S`: the backfill writes its own
// heartbeat on the primary and pauses while a real replica is more than S
// seconds behind (no batch runs), resumes once the replica catches up, and
// removes its heartbeat when it ends. MariaDB only: the throttle and probes are
// the engine's, proven on both dialects in test/operator/replica-lag.test.ts.

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startMariaDb, type RunningServer } from '../support/servers.js';
import { startMariaDbReplica, type RunningReplica } from '../support/replicas.js';
import { openDb, type Db, mysqlSeq } from '../support/db.js';
import { waitUntil } from '../support/alter.js';
import { startCli, stderrShows, tempDir, write } from './helpers.js';

const ROWS = 3000;

describe('mysql: replica lag throttles a backfill', () => {
  let primary: RunningServer;
  let replica: RunningReplica;
  let url: string;
  let replicaUrl: string;
  let db: Db;
  let dir: string;

  beforeAll(async () => {
    primary = await startMariaDb();
    replica = await startMariaDbReplica(primary);
    const admin = await openDb(primary.adminUrl('mysql'));
    await admin.exec('CREATE DATABASE app');
    await admin.close();
    url = primary.adminUrl('app');
    replicaUrl = replica.adminUrl('app');
    db = await openDb(url);
    dir = tempDir();
  }, 120_000);
  afterAll(async () => {
    await db?.close();
    await replica?.stop();
    await primary?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Age of the backfill's heartbeat as the replica has applied it, in seconds; null before it arrives. */
  async function heartbeatAgeOnReplica(): Promise<number | null> {
    const r = await openDb(replicaUrl);
    try {
      const rows = await r.query<{ us: string }>(
        "SELECT TIMESTAMPDIFF(MICROSECOND, beat_at, UTC_TIMESTAMP(6)) AS us FROM _shadowshift_heartbeat WHERE job_id LIKE 'migrate-%'",
      );
      return rows[0] ? Number(rows[0].us) / 1e6 : null;
    } catch {
      return null; // the table has not reached the replica yet
    } finally {
      await r.close();
    }
  }

  it('pauses while the replica is more than --max-lag behind and resumes after', async () => {
    await db.exec('CREATE TABLE items (id BIGINT NOT NULL PRIMARY KEY, w BIGINT NULL)');
    await db.exec(`INSERT INTO items (id) SELECT seq FROM ${mysqlSeq(1, ROWS)}`);
    write(dir, '100_fill_w.sql', '-- shadowshift:backfill\nUPDATE items SET w = id WHERE w IS NULL;\n');
    // The flag file holds the backfill until its heartbeat is on the replica and the replica is behind.
    const flag = join(dir, 'hold');
    writeFileSync(flag, '');
    const filled = async () => Number((await db.query<{ c: string }>('SELECT COUNT(*) AS c FROM items WHERE w IS NOT NULL'))[0]!.c);
    const run = startCli(
      ['migrate', 'up', '--execute', '--dir', dir, '--backfill-batch', '300', '--throttle-flag-file', flag, '--throttle-replicas', replicaUrl, '--max-lag', '1', '--heartbeat-interval', '100'],
      { SHADOWSHIFT_URL: url, SHADOWSHIFT_LOG_LEVEL: 'info' },
    );
    let stderr = '';
    run.child.stderr!.on('data', (d) => (stderr += d));
    let paused = false;
    try {
      await stderrShows(run, /backfill of \S*items paused: flag-file/);
      // The heartbeat row must be on the replica before its apply stops: until then the
      // lag comes from the replica's own status, which has no value once the apply is stopped.
      await waitUntil(async () => ((await heartbeatAgeOnReplica()) ?? Infinity) < 1, "the backfill's heartbeat to reach the replica", 60_000, 100);
      await replica.pauseApply();
      paused = true;
      await waitUntil(async () => ((await heartbeatAgeOnReplica()) ?? 0) > 1.5, 'the replica to fall behind', 30_000, 100);
      rmSync(flag);
      await waitUntil(() => /"msg":"throttling: replica-lag"/.test(stderr), 'the throttle to switch to replica lag', 30_000);
      expect(stderr).toMatch(/"signal":"replica-lag","reason":"replica \S+ is [\d.]+s behind \(max 1s\)"/);
      await new Promise((r) => setTimeout(r, 1500));
      expect(await filled()).toBe(0);
    } finally {
      rmSync(flag, { force: true });
      if (paused) await replica.resumeApply();
    }
    const r = await run.done;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/"msg":"throttle released"/);
    expect(r.stderr).toMatch(/backfill of \S*items resumed after [\d.]+s/);
    expect(await filled()).toBe(ROWS);
    // Its heartbeat row (and, being the only one, the table) is gone from the primary.
    const left = await db.query("SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'app' AND TABLE_NAME = '_shadowshift_heartbeat'");
    expect(left).toEqual([]);
  }, 180_000);
});
