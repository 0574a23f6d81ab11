// "Say what the job waits for" (issue 11). Whenever the job waits on something outside
// itself, the status (`waitingFor`, `phase`), the progress line and the log name it: the
// phase, what blocks it (sessions with their age and redacted statement) and since when,
// and the wait is cleared when it ends. Every step waits for a condition on the status,
// never for time.

import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMysqlDatabase, createPgDatabase } from '../support/databases.js';
import { mysqlSeq, openDb, quoteIdent } from '../support/db.js';
import { capturingLogger, newJob, waitUntil } from '../support/alter.js';
import type { AlterJob } from '../../src/engine/job.js';
import type { JobStatus } from '../../src/engine/job-state.js';
import { statusLine } from '../../src/control/status-reporter.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function start(job: AlterJob) {
  const run = { finished: false, result: null as unknown as Promise<unknown> };
  run.result = job
    .prepare()
    .then((r) => job.execute(r))
    .finally(() => void (run.finished = true));
  run.result.catch(() => undefined);
  return run;
}

/** Polls the status until `ok` holds for it, failing early (with the status) if the job ended. */
async function statusWhere(job: AlterJob, run: { finished: boolean }, what: string, ok: (s: JobStatus) => boolean): Promise<JobStatus> {
  let last = job.status();
  try {
    await waitUntil(
      () => {
        last = job.status();
        if (run.finished && !ok(last)) throw new Error(`the job ended before ${what}: ${JSON.stringify(last)}`);
        return ok(last);
      },
      what,
      60_000,
    );
  } catch (err) {
    throw new Error(`${(err as Error).message}; last status: ${JSON.stringify(last)}`);
  }
  return last;
}

const cases = [
  { dialect: 'mysql' as const, createDb: () => createMysqlDatabase('waits'), series: `SELECT seq, seq FROM ${mysqlSeq(1, 5000)}`, self: 'SELECT CONNECTION_ID() AS id' },
  { dialect: 'postgres' as const, createDb: () => createPgDatabase('waits'), series: 'SELECT g, g FROM generate_series(1, 5000) g', self: 'SELECT pg_backend_pid() AS id' },
];

describe.each(cases)('$dialect: the status names what the job waits for', ({ dialect, createDb, series, self }) => {
  it('a throttle flag file, a postponed cut-over, then a session holding a lock on the table at the cut-over', async () => {
    const { url } = await createDb();
    const db = await openDb(url);
    const blocker = await openDb(url);
    const q = (n: string) => quoteIdent(dialect, n);
    const dir = mkdtempSync(join(tmpdir(), 'ss-waits-'));
    dirs.push(dir);
    const throttleFlag = join(dir, 'throttle');
    const postponeFlag = join(dir, 'postpone');
    writeFileSync(throttleFlag, '');
    writeFileSync(postponeFlag, '');
    const { log, lines } = capturingLogger();
    const job = newJob(url, 't', 'ADD COLUMN w INT', {
      log,
      chunkSize: 1000,
      throttle: { flagFile: throttleFlag },
      postponeCutoverFlagFile: postponeFlag,
      // Long enough that the attempt is still waiting when the test looks.
      cutoverLockTimeoutMs: 60_000,
      cutoverRetries: 2,
    });
    try {
      await db.exec(`CREATE TABLE ${q('t')} (id INT PRIMARY KEY, v INT NOT NULL)`);
      await db.exec(`INSERT INTO ${q('t')} ${series}`);
      const run = start(job);

      // 1. A throttle signal: the copy waits for the flag file.
      const throttled = await statusWhere(job, run, 'a throttle wait', (s) => s.waitingFor?.what === 'throttle');
      expect(throttled.waitingFor).toMatchObject({ phase: 'copying', blockers: [] });
      expect(throttled.waitingFor!.detail).toContain(throttleFlag);
      expect(Date.parse(throttled.waitingFor!.since)).toBeLessThanOrEqual(Date.now());
      expect(statusLine(throttled)).toContain(`for throttle in copying: flag-file: ${throttleFlag} exists`);
      rmSync(throttleFlag);

      // 2. Postponed: the cut-over waits for the postpone flag.
      const postponed = await statusWhere(job, run, 'the postpone wait', (s) => s.waitingFor?.what === 'postpone');
      expect(postponed).toMatchObject({ state: 'postponed', phase: 'postponed' });
      expect(postponed.waitingFor!.detail).toContain(postponeFlag);
      expect(lines.some((l) => String(l.msg).startsWith('no longer waiting for throttle (copying)'))).toBe(true);

      // 3. A transaction that read the table holds a lock on it across the cut-over.
      const blockerId = Number((await blocker.query<{ id: unknown }>(self))[0]!.id);
      await blocker.exec('BEGIN');
      await blocker.query(`SELECT count(*) AS n FROM ${q('t')} WHERE v <> 424242`);
      rmSync(postponeFlag);
      const locked = await statusWhere(job, run, 'a lock wait naming the blocking session', (s) =>
        Boolean(s.waitingFor?.what === 'lock' && s.waitingFor.blockers.some((b) => b.session === blockerId)),
      );
      expect(locked).toMatchObject({ state: 'cutting-over', phase: 'cutting-over', waitingFor: { phase: 'cutting-over' } });
      const b = locked.waitingFor!.blockers.find((x) => x.session === blockerId)!;
      expect(b.ageSeconds).toBeGreaterThanOrEqual(0);
      if (dialect === 'postgres') {
        // The statement is named, its literals replaced.
        expect(b.query).toContain('count(*)');
        expect(b.query).not.toContain('424242');
        expect(b.state).toBe('idle in transaction');
      }
      expect(statusLine(locked)).toMatch(new RegExp(`^cutting over \\(copied 100%\\).*for lock in cutting-over: .*session ${blockerId} `));
      expect(lines.some((l) => l.level === 40 && String(l.msg).includes(`for lock in cutting-over`) && String(l.msg).includes(`session ${blockerId}`))).toBe(true);

      await blocker.exec('COMMIT');
      await run.result;
      const done = job.status();
      expect(done).toMatchObject({ state: 'done', phase: 'done', waitingFor: null });
      expect(lines.some((l) => String(l.msg).startsWith('no longer waiting for lock (cutting-over)'))).toBe(true);
    } finally {
      await job.close();
      await blocker.close();
      await db.close();
    }
  });
});

// MySQL only: a PostgreSQL chunk gives up a row lock wait after 500 ms (lock_timeout, so
// application writers never queue behind it) and is retried, too short to be looked at.
describe.each(cases.filter((c) => c.dialect === 'mysql'))('$dialect: a chunk of the copy behind a row lock (--copy-row-locks)', ({ dialect, createDb, series, self }) => {
  it('names the transaction holding the row, and clears the wait when it ends', async () => {
    const { url } = await createDb();
    const db = await openDb(url);
    const writer = await openDb(url);
    const q = (n: string) => quoteIdent(dialect, n);
    const dir = mkdtempSync(join(tmpdir(), 'ss-waits-'));
    dirs.push(dir);
    const flag = join(dir, 'throttle');
    writeFileSync(flag, '');
    const { log } = capturingLogger();
    // By default a MySQL chunk reads without row locks and waits for nobody.
    const job = newJob(url, 't', 'ADD COLUMN w INT', { log, chunkSize: 1000, copyRowLocks: true, throttle: { flagFile: flag } });
    try {
      await db.exec(`CREATE TABLE ${q('t')} (id INT PRIMARY KEY, v INT NOT NULL)`);
      await db.exec(`INSERT INTO ${q('t')} ${series}`);
      const writerId = Number((await writer.query<{ id: unknown }>(self))[0]!.id);
      const run = start(job);
      // Once the stream runs (the copy held by the flag), an uncommitted write in the middle
      // of the table: the chunk's shared row lock waits for it.
      await statusWhere(job, run, 'the copy to be throttled', (s) => s.waitingFor?.what === 'throttle');
      await writer.exec('BEGIN');
      await writer.exec(`UPDATE ${q('t')} SET v = -7 WHERE id = 2500`);
      rmSync(flag);
      const waiting = await statusWhere(job, run, 'a row-lock wait naming the writer', (s) =>
        Boolean(s.waitingFor?.what === 'row-lock' && s.waitingFor.blockers.some((b) => b.session === writerId)),
      );
      expect(waiting).toMatchObject({ state: 'copying', phase: 'copying', waitingFor: { phase: 'copying' } });
      await writer.exec('COMMIT');
      await statusWhere(job, run, 'the wait to be cleared', (s) => s.waitingFor === null && s.rowsCopied > 2500);
      await run.result;
      expect(job.status()).toMatchObject({ state: 'done', waitingFor: null });
    } finally {
      await job.close();
      await writer.close();
      await db.close();
    }
  });
});

describe('postgres: the deferred index build waits for an old transaction', () => {
  it('status names the phase, the session, its statement and age; cleared when it ends', async () => {
    const { url } = await createPgDatabase('waitidx');
    const db = await openDb(url);
    const old = await openDb(url);
    const { log, lines } = capturingLogger();
    const job = newJob(url, 'items', 'ADD COLUMN note text', { log, chunkSize: 5000 });
    try {
      await db.exec(`CREATE TABLE other (id int PRIMARY KEY, secret text)`);
      await db.exec(`INSERT INTO other VALUES (1, 'hunter2')`);
      await db.exec(`CREATE TABLE items (id int PRIMARY KEY, grp int NOT NULL, v text)`);
      await db.exec(`CREATE INDEX items_grp_idx ON items (grp)`);
      await db.exec(`INSERT INTO items SELECT g, g % 97, 'v' || g FROM generate_series(1, 20000) g`);
      // A REPEATABLE READ transaction whose snapshot predates the index build (it reads another table).
      const pid = Number((await old.query<{ id: unknown }>('SELECT pg_backend_pid() AS id'))[0]!.id);
      await old.exec('BEGIN ISOLATION LEVEL REPEATABLE READ');
      await old.query(`SELECT count(*) AS n FROM other WHERE secret <> 'hunter2'`);

      const run = start(job);
      const waiting = await statusWhere(job, run, 'the index build waiting for the old transaction', (s) =>
        Boolean(s.waitingFor?.what === 'old-snapshots' && s.waitingFor.blockers.some((b) => b.session === pid)),
      );
      expect(waiting).toMatchObject({ state: 'copying', phase: 'building-indexes', waitingFor: { phase: 'building-indexes' } });
      expect(waiting.waitingFor!.detail).toMatch(/CREATE INDEX CONCURRENTLY waiting for old snapshots/);
      const b = waiting.waitingFor!.blockers.find((x) => x.session === pid)!;
      expect(b).toMatchObject({ state: 'idle in transaction' });
      expect(b.query).toContain('FROM other WHERE secret <>');
      expect(b.query).not.toContain('hunter2');
      expect(b.ageSeconds).toBeGreaterThanOrEqual(0);
      // The progress line says what the job does, not "copying 100%, ETA --".
      const line = statusLine(waiting);
      expect(line).toMatch(/^building indexes \(copied 100%\)/);
      expect(line).toContain(`session ${pid} `);
      expect(lines.some((l) => l.level === 40 && String(l.msg).includes('for old snapshots in building-indexes'))).toBe(true);

      await old.exec('COMMIT');
      // Ended: cleared (the cut-over's own snapshot wait finds nobody either).
      await statusWhere(job, run, 'the wait to be cleared after the transaction ended', (s) => s.phase !== 'building-indexes' && s.waitingFor === null);
      await run.result;
      expect(job.status()).toMatchObject({ state: 'done', waitingFor: null });
      expect(lines.some((l) => String(l.msg).startsWith('no longer waiting for old snapshots (building-indexes)'))).toBe(true);
    } finally {
      await job.close();
      await old.close();
      await db.close();
    }
  });
});
