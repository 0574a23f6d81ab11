// Snapshots older than the swap. The new table's rows were committed by the copy and
// the applier; a REPEATABLE READ transaction whose snapshot predates them, touching the
// table only after the swap, reads it empty (seen: 0 of 50,000, exit 0). The cut-over
// waits, before its lock, until no session holds a snapshot older than a fence it sets;
// after a long wait it sets another, so snapshots taken during the wait are waited for
// too. Over --cutover-snapshot-wait the attempt fails naming the sessions.
//
// The strongest check a test can make: every transaction that could have read the new
// table with an old snapshot reads it in full instead. An old transaction must end for
// the job to swap, so each test lets it read the table at the moment the job waits for
// it (on a build without the wait that moment comes after the swap) and then ends it.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { pino } from 'pino';
import { freshDb } from './helpers.js';
import { newJob, runAlter, waitUntil } from '../support/alter.js';
import { pgConnect } from '../support/databases.js';
import type { PostgresSession } from '../../src/dialects/postgres/postgres-dialect.js';
import type { AlterJob } from '../../src/engine/job.js';

let admin: pg.Client;
let session: PostgresSession;
let url: string;
const ROWS = 20_000;

beforeAll(async () => {
  ({ admin, session, url } = await freshDb('pgsnap'));
  await admin.query(`CREATE TABLE other (id int PRIMARY KEY, secret text)`);
  await admin.query(`INSERT INTO other VALUES (1, 'hunter2')`);
});
afterAll(async () => {
  await session?.close();
  await admin?.end();
});

async function seed(table: string, secondaryIndex: boolean): Promise<void> {
  await admin.query(`CREATE TABLE ${table} (id int PRIMARY KEY, grp int NOT NULL, v text)`);
  if (secondaryIndex) await admin.query(`CREATE INDEX ${table}_grp_idx ON ${table} (grp)`);
  await admin.query(`INSERT INTO ${table} SELECT g, g % 97, 'v' || g FROM generate_series(1, ${ROWS}) g`);
}

/** A REPEATABLE READ transaction whose snapshot is taken now, by reading another table (no lock on the one the job alters). */
async function snapshotNow(): Promise<{ c: pg.Client; pid: number }> {
  const c = await pgConnect(url);
  const pid = Number((await c.query(`SELECT pg_backend_pid() AS p`)).rows[0].p);
  await c.query(`BEGIN ISOLATION LEVEL REPEATABLE READ`);
  await c.query(`SELECT count(*) FROM other WHERE secret <> 'hunter2'`);
  return { c, pid };
}

/** The job waits for `pid`: its own snapshot wait, or (the deferred CREATE INDEX CONCURRENTLY) a lock on that transaction. */
async function jobWaitsFor(job: AlterJob, pid: number): Promise<boolean> {
  if (job.status().snapshotWait?.sessions.some((s) => s.pid === pid)) return true;
  const r = await admin.query(
    `SELECT count(*)::int AS n FROM pg_locks w JOIN pg_locks h ON h.locktype = 'virtualxid' AND h.virtualxid = w.virtualxid AND h.granted
      WHERE w.locktype = 'virtualxid' AND NOT w.granted AND h.pid = $1`,
    [pid],
  );
  return r.rows[0].n > 0;
}

function start(job: AlterJob) {
  const out = { finished: false, result: null as Promise<unknown> | null };
  out.result = job
    .prepare()
    .then((report) => job.execute(report))
    .finally(() => {
      out.finished = true;
    });
  out.result.catch(() => undefined);
  return out;
}

function capture() {
  const lines: Array<Record<string, unknown>> = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  return { log, lines };
}

const count = async (c: pg.Client, table: string) => (await c.query(`SELECT count(*)::int AS n FROM ${table}`)).rows[0].n as number;

describe('snapshots older than the swap', () => {
  for (const secondaryIndex of [false, true]) {
    it(`a REPEATABLE READ transaction older than the job reads every row (${secondaryIndex ? 'with' : 'without'} secondary indexes)`, async () => {
      const table = secondaryIndex ? 'snap_idx' : 'snap_plain';
      await seed(table, secondaryIndex);
      const old = await snapshotNow();
      const job = newJob(url, table, 'ADD COLUMN note text', { chunkSize: 5000 });
      const run = start(job);
      try {
        await waitUntil(async () => run.finished || (await jobWaitsFor(job, old.pid)), 'the job to wait for the old transaction, or to finish');
        // Without the wait the swap is done by now and this counted 0.
        expect(await count(old.c, table)).toBe(ROWS);
        await old.c.query('COMMIT');
        await run.result;
      } finally {
        await old.c.end();
        await job.close();
      }
      expect(await count(admin, table)).toBe(ROWS);
      const cols = await admin.query(`SELECT count(*)::int AS n FROM pg_attribute WHERE attrelid = $1::regclass AND attname = 'note'`, [table]);
      expect(cols.rows[0].n).toBe(1);
    });
  }

  it('waits before its lock for exactly the older snapshots, says whom, and fences again after a long wait', async () => {
    await seed('snap_w', false);
    const oid = async () => (await admin.query(`SELECT 'snap_w'::regclass::oid::text AS o`)).rows[0].o as string;
    const before = await oid();
    const old = await snapshotNow();
    const { log, lines } = capture();
    const job = newJob(url, 'snap_w', 'ADD COLUMN note text', { chunkSize: 5000, log });
    const run = start(job);
    let during: Awaited<ReturnType<typeof snapshotNow>> | null = null;
    try {
      await waitUntil(async () => run.finished || (await jobWaitsFor(job, old.pid)), 'the job to wait for the old transaction');
      expect(run.finished).toBe(false);
      // It waits before any lock, the original still in place, and says for whom (statement redacted).
      expect(job.status().state).toBe('cutting-over');
      expect(await oid()).toBe(before);
      const locks = await admin.query(`SELECT count(*)::int AS n FROM pg_locks WHERE relation = 'snap_w'::regclass AND pid <> $1`, [old.pid]);
      expect(locks.rows[0].n).toBe(0);
      // (This test's own polling statement may be caught by a fence for the moment it runs.)
      const waiting = job.status().snapshotWait!;
      expect(waiting.sessions.find((x) => x.pid === old.pid)).toEqual({ pid: old.pid, ageSeconds: expect.any(Number), user: 'postgres', application: '', state: 'idle in transaction', query: "SELECT count(*) FROM other WHERE secret <> '…'" });
      expect(lines.some((l) => /^waiting for session\(s\) [\d, ]+: their snapshot is older/.test(String(l.msg)) && String(l.msg).includes(String(old.pid)))).toBe(true);
      // A snapshot taken now is newer than the fence: not waited for while the old one is there.
      during = await snapshotNow();
      // Let the job look again a few times (each look updates the seconds it reports).
      const seen = job.status().snapshotWait!.seconds;
      await waitUntil(() => (job.status().snapshotWait?.seconds ?? 0) >= seen + 0.3, 'the job to look at the sessions again');
      expect(job.status().snapshotWait!.sessions.map((x) => x.pid)).toContain(old.pid);
      expect(job.status().snapshotWait!.sessions.map((x) => x.pid)).not.toContain(during.pid);
      // Past one second of waiting, snapshots taken meanwhile (this one) are waited for in turn.
      await waitUntil(() => (job.status().snapshotWait?.seconds ?? 0) > 1, 'the wait to pass one second');
      expect(await count(old.c, 'snap_w')).toBe(ROWS);
      await old.c.query('COMMIT');
      await waitUntil(async () => run.finished || (await jobWaitsFor(job, during!.pid)), 'the job to wait for the snapshot taken during the wait');
      expect(run.finished).toBe(false);
      expect(await oid()).toBe(before);
      expect(await count(during.c, 'snap_w')).toBe(ROWS);
      await during.c.query('COMMIT');
      await run.result;
    } finally {
      await old.c.end();
      await during?.c.end();
      await job.close();
    }
    expect(await oid()).not.toBe(before);
    expect(await count(admin, 'snap_w')).toBe(ROWS);
    expect(JSON.stringify(lines)).toContain("secret <> '…'");
    expect(JSON.stringify(lines)).not.toContain('hunter2');
    const done = lines.find((l) => l.msg === 'cut-over done')!;
    expect(done.snapshotWindowMs).toEqual(expect.any(Number));
    expect(done.eventsSinceFence).toBe(0);
  });

  it('over --cutover-snapshot-wait the cut-over gives up naming the session, original untouched, nothing left', async () => {
    await seed('snap_b', false);
    const state = async () => ({
      oid: (await admin.query(`SELECT 'snap_b'::regclass::oid::text AS o`)).rows[0].o,
      rows: await count(admin, 'snap_b'),
      leftovers: (await admin.query(`SELECT relname FROM pg_class WHERE relname LIKE '\\_ss\\_%' ORDER BY 1`)).rows,
      slots: (await admin.query(`SELECT count(*)::int AS n FROM pg_replication_slots WHERE database = current_database()`)).rows[0].n,
    });
    const before = await state();
    const old = await snapshotNow();
    try {
      const err = await runAlter(url, 'snap_b', 'ADD COLUMN note text', { cutoverSnapshotWaitMs: 300, cutoverRetries: 2 }).then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(Error);
      expect((err as Error).message).toMatch(new RegExp(`session\\(s\\) ${old.pid} \\(postgres, -, transaction [\\d.]+s old, idle in transaction: SELECT count\\(\\*\\) FROM other WHERE secret <> '…'\\) still hold a snapshot older than the new table's rows`));
      expect((err as Error).message).toMatch(/--cutover-snapshot-wait 0\.3s/);
      // The transaction was never disturbed.
      expect(await count(old.c, 'snap_b')).toBe(ROWS);
      await old.c.query('COMMIT');
    } finally {
      await old.c.end();
    }
    expect(await state()).toEqual(before);
  });

  it('a snapshot taken after the last fence misses at most the changes applied since it (the documented window)', async () => {
    await seed('snap_q', false);
    const writer = await pgConnect(url);
    let stop = false;
    let next = ROWS + 1;
    const writes = (async () => {
      while (!stop) await writer.query(`INSERT INTO snap_q VALUES ($1, 0, 'w')`, [next++]);
    })();
    let late: Awaited<ReturnType<typeof snapshotNow>> | null = null;
    const { log, lines } = capture();
    let backup = '';
    try {
      await waitUntil(() => next > ROWS + 50, 'the writer to get going');
      const result = await runAlter(url, 'snap_q', 'ADD COLUMN note text', {
        chunkSize: 5000,
        log,
        testHooks: {
          afterSnapshotWait: async () => {
            late = await snapshotNow();
          },
        },
      });
      backup = result.backupTable!;
      stop = true;
      await writes;
      // What that snapshot sees of the original (now the backup) against the new table.
      const inOld = await count(late!.c, result.backupTable!);
      const inNew = await count(late!.c, 'snap_q');
      const done = lines.find((l) => l.msg === 'cut-over done')!;
      expect(inOld - inNew).toBeGreaterThanOrEqual(0);
      expect(inOld - inNew).toBeLessThanOrEqual(done.eventsSinceFence as number);
      expect(done.snapshotWindowMs as number).toBeLessThan(60_000);
    } finally {
      stop = true;
      await writes;
      await writer.end();
      await (late as { c: pg.Client } | null)?.c.end();
    }
    // A transaction that starts after the job sees every row the original had, and what was written after the swap.
    const gap = await admin.query(`SELECT count(*)::int AS n FROM ${backup} b WHERE NOT EXISTS (SELECT 1 FROM snap_q n WHERE n.id = b.id)`);
    expect(gap.rows[0].n).toBe(0);
  });

  it('--cutover-snapshot-wait 0 does not wait, and names the sessions it did not wait for', async () => {
    await seed('snap_z', false);
    const old = await snapshotNow();
    const { log, lines } = capture();
    try {
      await runAlter(url, 'snap_z', 'ADD COLUMN note text', { cutoverSnapshotWaitMs: 0, log });
      const warned = lines.filter((l) => String(l.msg).startsWith(`--cutover-snapshot-wait 0: not waiting for session(s) ${old.pid},`));
      expect(warned).toHaveLength(1);
      // What the option gives up, and what the wait prevents.
      expect(await count(old.c, 'snap_z')).toBe(0);
      await old.c.query('COMMIT');
    } finally {
      await old.c.end();
    }
    expect(await count(admin, 'snap_z')).toBe(ROWS);
  });
});
