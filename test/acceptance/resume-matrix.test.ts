// The fault matrix's "SIGKILL, then --resume" row (issue 11), both dialects, under a
// write workload (updates, inserts, deletes, primary-key changes). A job started without
// --resumable (every job checkpoints) is SIGKILLed in one phase, then `alter --resume`
// with the same ALTER finishes it: exit 0, the table equals the model of every
// acknowledged write, the checksum repaired nothing, only the backup is left, and the
// application never missed the table's name. The cut-over holding its lock and after its
// swap: test/acceptance/resume-phases.test.ts.
//
// Where the job is killed (test/support/kill-fixture.ts):
//  - copying: inside a chunk's transaction, past a third of the table and four intervals in. The kill costs at most
//    the rows the run copied in its last checkpoint interval (+ slack, + the chunk in
//    flight), as in kill-resume.test.ts;
//  - catching-up: right after entering it (saved), the stream not yet applied;
//  - checksum: between two key ranges, its snapshot open;
//  - postponed: while postponed by the flag file, the job applying the stream;
//  - indexes: PostgreSQL's CREATE INDEX CONCURRENTLY waiting for an old snapshot a test
//    session holds, MySQL's ALTER ... ADD KEY for the new table's metadata lock, which a
//    test session takes while the first chunk waits for it; the dead run's statement
//    keeps waiting on the server;
//  - cutover-waiting: its lock request queued behind a test session's transaction on
//    the table; the dead run's request keeps waiting on the server.
// In the last two the resume starts while the dead run's statement still waits (the
// blocker is released once the resume has started its stream): the resume must have
// ended it by then. Past the copy a kill re-copies nothing.

import { describe, it, expect } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMysqlDatabase, createPgDatabase } from '../support/databases.js';
import { openDb, type Db } from '../support/db.js';
import { createWorkloadTable, seedWorkloadTable, startWorkload } from '../support/workload/index.js';
import { compareWithModel, formatDiffs } from '../support/compare.js';
import { waitUntil } from '../support/alter.js';
import { startCli } from '../support/cli.js';
import { killFixtureAt } from '../support/kill-at.js';
import type { KillFixtureArgs, KillFixtureStop, KillPoint } from '../support/kill-fixture.js';

const ROWS = 12_000;
const CHUNK = 1000;
/** The copying case: enough rows and small enough chunks that the copy lasts several checkpoint intervals. */
const COPY_ROWS = 30_000;
const COPY_CHUNK = 250;
const INTERVAL_S = 0.5;
/** Beyond the interval, a save can wait for the chunk or batch in flight. */
const SLACK_S = 1;

const cases = [
  { dialect: 'mysql' as const, createDb: () => createMysqlDatabase('rmatrix'), alter: "ADD COLUMN flag VARCHAR(8) NOT NULL DEFAULT 'm'" },
  { dialect: 'postgres' as const, createDb: () => createPgDatabase('rmatrix'), alter: "ADD COLUMN flag varchar(8) NOT NULL DEFAULT 'm'" },
];
const points: KillPoint[] = ['copying', 'catching-up', 'checksum', 'postponed', 'indexes', 'cutover-waiting'];

const resumedAt = (stderr: string): number => Number(/"rowsCopied":(\d+)[^\n]*resuming the copy/.exec(stderr)?.[1] ?? /"rowsCopied":(\d+)[^\n]*copy was already complete/.exec(stderr)?.[1] ?? -1);

/**
 * A session the job waits for: an old snapshot or, on MySQL, the new table's metadata
 * lock (the index build), or a transaction on the table (the cut-over's lock). The new
 * table exists only once the job runs: its first chunk waits for `gateFile` (a hold
 * taken earlier would block the job's own DDL on the new table).
 */
async function holdBlocker(db: Db, point: KillPoint, gateFile: string): Promise<void> {
  if (point === 'indexes' && db.dialect === 'mysql') {
    // Once the first chunk has begun (its marker): the new table is complete by then.
    await waitUntil(async () => (await db.query("SHOW TABLES LIKE 'orders_sslog'")).length > 0 && (await db.query("SELECT 1 FROM orders_sslog WHERE kind = 'chunk'")).length > 0, 'the first chunk');
    await db.exec('BEGIN');
    await db.query('SELECT id FROM orders_ssnew LIMIT 1');
    writeFileSync(gateFile, '');
  } else if (point === 'indexes') {
    await db.exec('BEGIN ISOLATION LEVEL REPEATABLE READ');
    await db.query('SELECT count(*) FROM orders');
  } else if (db.dialect === 'mysql') {
    await db.exec('BEGIN');
    await db.query('SELECT id FROM orders LIMIT 1');
  } else {
    await db.exec('BEGIN');
    await db.exec('LOCK TABLE orders IN ACCESS SHARE MODE');
  }
}

/** The dead run's statement still waiting on the server: its cut-over's lock request, or its index build. */
async function waitingStatements(db: Db, point: KillPoint): Promise<string[]> {
  if (db.dialect === 'mysql') {
    const rows = await db.query<{ id: string }>(
      'SELECT ID AS id FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() AND DB = DATABASE() AND INFO LIKE ?',
      [point === 'indexes' ? 'ALTER TABLE%' : 'LOCK TABLES%'],
    );
    return rows.map((r) => String(r.id));
  }
  const like = point === 'indexes' ? 'CREATE INDEX CONCURRENTLY%' : 'LOCK TABLE%';
  const rows = await db.query<{ pid: number }>(
    "SELECT pid FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND datname = current_database() AND state = 'active' AND query ILIKE $1",
    [like],
  );
  return rows.map((r) => String(r.pid));
}

describe.each(cases)('$dialect: SIGKILL in each phase, then --resume', ({ dialect, createDb, alter }) => {
  it.each(points)('killed while %s: the resume converges', async (point) => {
    const { url } = await createDb();
    const db = await openDb(url);
    const blocker = await openDb(url);
    const dir = mkdtempSync(join(tmpdir(), 'ss-rmatrix-'));
    let blocking = false;
    let workload: Awaited<ReturnType<typeof startWorkload>> | null = null;
    try {
      await createWorkloadTable(db, 'orders');
      const copying = point === 'copying';
      const chunk = copying ? COPY_CHUNK : CHUNK;
      const model = await seedWorkloadTable(db, 'orders', copying ? COPY_ROWS : ROWS);
      await db.exec(dialect === 'mysql' ? 'ANALYZE TABLE orders' : 'ANALYZE orders');
      workload = await startWorkload({ url, table: 'orders', model, rate: 100, connections: 2, seed: 23 });
      const gateFile = join(dir, 'gate');
      const gated = dialect === 'mysql' && point === 'indexes';
      let holding: Promise<void> | null = null;
      if (point === 'indexes' || point === 'cutover-waiting') {
        holding = holdBlocker(blocker, point, gateFile);
        blocking = true;
        if (!gated) await holding;
      }
      const postponeFlagFile = join(dir, 'postpone');
      if (point === 'postponed') writeFileSync(postponeFlagFile, '');
      const flagFile = join(dir, 'stopped');
      const args: KillFixtureArgs = {
        url, table: 'orders', alter, stopAt: point, flagFile, chunkSize: chunk, checkpointIntervalSeconds: INTERVAL_S,
        // Past a third of the table, and four intervals into the copy.
        copyRows: copying ? COPY_ROWS / 3 : undefined,
        copySeconds: copying ? 4 * INTERVAL_S : undefined,
        postponeFlagFile: point === 'postponed' ? postponeFlagFile : undefined,
        gateFile: gated ? gateFile : undefined,
        // Whatever other tests' sessions read the binlog meanwhile (deferred-indexes.test.ts).
        deferIndexes: point === 'indexes' ? true : undefined,
      };
      const log = await killFixtureAt(args, `the job to reach ${point}`);
      await holding;
      const stop = JSON.parse(readFileSync(flagFile, 'utf8')) as KillFixtureStop;
      expect(log, 'the killed run stopped where it should').toMatch(/test: at the kill point/);

      // The dead run's statement the server still runs (indexes, cutover-waiting).
      const dead = blocking ? await waitingStatements(db, point) : [];
      if (blocking) expect(dead.length, `the killed run's ${point} statement waits on the server`).toBeGreaterThan(0);

      const resume = startCli(['alter', '--table', 'orders', '--alter', alter, '--execute', '--json', '--resume', '--checkpoint-interval', String(INTERVAL_S), '--control-socket', join(dir, 'r.sock')], { SHADOWSHIFT_URL: url });
      let stillWaiting: string[] = [];
      if (blocking) {
        let ended: string | null = null;
        void resume.done.then((r) => (ended = `the resume exited ${r.code}: ${r.stderr.slice(-3000)}`));
        await waitUntil(() => {
          if (ended) throw new Error(ended);
          return /change stream resumed from the checkpoint/.test(resume.stderrSoFar());
        }, 'the resume to start its stream', 120_000);
        // By now the resume has ended the stopped run's statements.
        const now = await waitingStatements(db, point);
        stillWaiting = dead.filter((id) => now.includes(id));
        await blocker.exec(point === 'indexes' ? 'ROLLBACK' : 'COMMIT');
        blocking = false;
      }
      const resumed = await resume.done;
      if (process.env.SS_MATRIX_DEBUG) writeFileSync(`/tmp/ss-km-${dialect}-${point}.log`, `${log}\n----- resume\n${resumed.stderr}`);
      expect(resumed.code, resumed.stderr.slice(-3000)).toBe(0);
      expect(stillWaiting, `the killed run's ${point} statement still waited after the resume started`).toEqual([]);
      const { result } = JSON.parse(resumed.stdout);
      expect(result.repairedChunks, resumed.stderr.slice(-3000)).toBe(0);
      expect(result.checksum.ran).toBe(true);
      const from = resumedAt(resumed.stderr);
      if (point === 'copying') {
        // What the run copied in its last interval (+ slack, + the chunk in flight): the most the kill may cost.
        const windowStart = [...stop.samples].reverse().find((s) => s.at <= stop.at - (INTERVAL_S + SLACK_S) * 1000) ?? { rows: 0 };
        const allowed = stop.rowsCopied - windowStart.rows + chunk;
        expect(from, resumed.stderr.slice(-3000)).toBeGreaterThan(0);
        expect(stop.rowsCopied - from, `the run had copied ${stop.rowsCopied}, its resume started at ${from}, allowed ${allowed}`).toBeLessThanOrEqual(allowed);
      } else {
        // Past the copy the phase change was saved: nothing is copied again.
        expect(resumed.stderr).toMatch(/the copy was already complete/);
        expect(from).toBe(stop.rowsCopied);
      }

      const stats = await workload.stop();
      workload = null;
      const missing = stats.errorSamples.filter((e) => /doesn't exist|does not exist/.test(e.message));
      expect(missing, 'the table name was missing for the application').toEqual([]);
      expect(stats.errors, JSON.stringify(stats.errorSamples.slice(0, 5))).toBe(0);
      expect(stats.anomalies, JSON.stringify(stats.anomalySamples.slice(0, 5))).toBe(0);
      const final = await compareWithModel(db, 'orders', model);
      expect(final.equal, formatDiffs(final)).toBe(true);
      expect((await db.query<{ flag: string }>('SELECT DISTINCT flag FROM orders')).map((r) => r.flag)).toEqual(['m']);
      const cleanup = await startCli(['cleanup', '--json'], { SHADOWSHIFT_URL: url }).done;
      expect(cleanup.code, cleanup.stderr).toBe(0);
      const left = (JSON.parse(cleanup.stdout).leftovers as Array<{ kind: string; name: string }>).filter((l) => l.kind !== 'backup');
      expect(left, JSON.stringify(left)).toEqual([]);
    } finally {
      if (blocking) await blocker.exec('ROLLBACK').catch(() => undefined);
      await workload?.stop().catch(() => undefined);
      await blocker.close();
      await db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 240_000);
});
