// A long transaction holds a lock on the table across the cut-over. Each attempt
// may block the application's writes for at most the lock timeout, then gives
// up and retries; the job completes once the transaction ends — or, with
// --kill-blockers-after, ends that transaction itself.

import { describe, it, expect } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMysqlDatabase, createPgDatabase, testedDialects } from '../support/databases.js';
import { openDb, quoteIdent, type Db, mysqlSeq } from '../support/db.js';
import { newJob, waitUntil } from '../support/alter.js';

const LOCK_TIMEOUT_MS = 1000;
/** Scheduling noise on a loaded 2-core machine, on top of the lock timeout. */
const SLACK_MS = 1500;

const cases = [
  { dialect: 'mysql' as const, createDb: () => createMysqlDatabase('block'), series: `SELECT seq, seq FROM ${mysqlSeq(1, 5000)}` },
  { dialect: 'postgres' as const, createDb: () => createPgDatabase('block'), series: 'SELECT g, g FROM generate_series(1, 5000) g' },
];

/** Writes one row at a time and records the slowest write. */
function writer(db: Db, table: string, dialect: 'mysql' | 'postgres') {
  let stop = false;
  let slowest = 0;
  let errors = 0;
  let writes = 0;
  const q = quoteIdent(dialect, table);
  const loop = (async () => {
    for (let i = 0; !stop; i++) {
      const started = Date.now();
      try {
        await db.exec(`UPDATE ${q} SET v = v + 1 WHERE id = ${100 + (i % 4000)}`);
        writes++;
      } catch {
        errors++;
      }
      slowest = Math.max(slowest, Date.now() - started);
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  return {
    async stop() {
      stop = true;
      await loop;
      return { slowest, errors, writes };
    },
  };
}

describe.each(testedDialects(cases))('$dialect: a transaction holding a lock across the cut-over', ({ dialect, createDb, series }) => {
  async function scenario(killBlockersAfterMs?: number) {
    const { url } = await createDb();
    const db = await openDb(url);
    const blocker = await openDb(url);
    const writes = await openDb(url);
    const q = (n: string) => quoteIdent(dialect, n);
    const dir = mkdtempSync(join(tmpdir(), 'ss-block-'));
    const flag = join(dir, 'postpone');
    writeFileSync(flag, '');
    try {
      await db.exec(`CREATE TABLE ${q('t')} (id INT PRIMARY KEY, v INT NOT NULL)`);
      await db.exec(`INSERT INTO ${q('t')} ${series}`);
      const job = newJob(url, 't', 'ADD COLUMN w INT', {
        postponeCutoverFlagFile: flag,
        cutoverLockTimeoutMs: LOCK_TIMEOUT_MS,
        cutoverRetries: 30,
        killBlockersAfterMs,
      });
      try {
        const running = job.prepare().then((r) => job.execute(r));
        running.catch(() => undefined);
        await waitUntil(() => job.status().state === 'postponed' || job.status().state === 'failed', 'postponed');
        await blocker.exec('BEGIN');
        await blocker.exec(`UPDATE ${q('t')} SET v = -1 WHERE id = 1`);
        const w = writer(writes, 't', dialect);
        rmSync(flag);
        if (killBlockersAfterMs === undefined) {
          await waitUntil(() => job.status().cutoverAttempts >= 3 || job.status().state === 'failed', 'three cut-over attempts', 60_000);
          expect(job.status().state).not.toBe('done');
          expect(job.status().error).toBeNull();
          await blocker.exec('COMMIT');
        }
        const done = await running;
        expect(done.repairedChunks).toBe(0);
        const result = await w.stop();
        console.log(`[${dialect}] kill-blockers=${killBlockersAfterMs ?? 'off'}: ${job.status().cutoverAttempts} attempts, slowest write ${result.slowest} ms, ${result.writes} writes`);
        expect(job.status().state).toBe('done');
        expect(result.errors).toBe(0);
        expect(result.slowest).toBeLessThan(LOCK_TIMEOUT_MS + SLACK_MS);
        const blockerKilled = blocker.broken || (await blocker.query('SELECT 1').then(() => false, () => true));
        return { attempts: job.status().cutoverAttempts, blockerKilled };
      } finally {
        await job.close();
      }
    } finally {
      await db.close();
      blocker.destroy();
      await writes.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }

  it('retries within the lock timeout and completes once the transaction ends', async () => {
    const { attempts, blockerKilled } = await scenario();
    expect(attempts).toBeGreaterThanOrEqual(3);
    expect(blockerKilled).toBe(false);
  }, 120_000);

  it('with --kill-blockers-after, ends the blocking session and completes', async () => {
    const { blockerKilled } = await scenario(300);
    expect(blockerKilled).toBe(true);
  }, 120_000);
});
