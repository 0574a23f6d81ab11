// --kill-blockers-after at the dialect level, and the job lock surviving the end of
// its connection (pg_terminate_backend) — or failing the job when another job took it.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { pino } from 'pino';
import type { PostgresSession } from '../../src/dialects/postgres/postgres-dialect.js';
import type { ArtefactNames, CopyPlan, ChangeStream } from '../../src/dialects/dialect.js';
import { redactQuery } from '../../src/dialects/postgres/postgres-redact.js';
import { BlockerKiller } from '../../src/engine/blocker-killer.js';
import { jobLockHeld } from '../../src/dialects/postgres/postgres-job-lock.js';
import { CutoverAttemptError, ShadowshiftError } from '../../src/util/errors.js';
import { drain, freshDb, makePlan } from './helpers.js';
import { pgConnect } from '../support/databases.js';

let admin: pg.Client;
let session: PostgresSession;
let url: string;

beforeAll(async () => {
  ({ admin, session, url } = await freshDb('pgkill'));
});
afterAll(async () => {
  await session?.close();
  await admin?.end();
});

function capture() {
  const lines: Array<Record<string, unknown>> = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  return { log, lines };
}

async function prepare(table: string, job: string): Promise<{ plan: CopyPlan; names: ArtefactNames; stream: ChangeStream }> {
  await admin.query(`CREATE TABLE ${table} (id int PRIMARY KEY, v text)`);
  await admin.query(`INSERT INTO ${table} SELECT g, 'x' FROM generate_series(1, 50) g`);
  const original = (await session.inspectTable({ schema: 'public', name: table }))!;
  const names = session.artefactNames(original.ref, job);
  const shadow = await session.createShadow(original, 'ADD COLUMN w int', names);
  const plan = makePlan(original, shadow, session.analyzeAlter('ADD COLUMN w int'));
  const stream = session.openChangeStream(plan, names, job);
  await stream.start();
  const b = (await session.copier.keyBounds(plan))!;
  await session.copier.copyChunk(plan, { after: null, upTo: b.max });
  await drain(session, stream, plan);
  return { plan, names, stream };
}

async function blockerOn(table: string, app: string): Promise<{ client: pg.Client; pid: number; broken: () => boolean }> {
  const client = await pgConnect(url);
  let broken = false;
  client.on('error', () => {
    broken = true;
  });
  await client.query(`SET application_name = '${app}'`);
  const pid = Number((await client.query<{ pid: string }>('SELECT pg_backend_pid()::text AS pid')).rows[0]!.pid);
  await client.query('BEGIN');
  // A literal that must never reach the log.
  await client.query(`UPDATE ${table} SET v = 'hunter2-secret' WHERE id = 1`);
  return { client, pid, broken: () => broken };
}

async function alive(pid: number): Promise<boolean> {
  const r = await admin.query('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [pid]);
  return r.rows.length > 0;
}

describe('--kill-blockers-after', () => {
  it('ends the session blocking the lock within the same attempt, logging it without secrets', async () => {
    const { plan, names, stream } = await prepare('kb', 'kb-job');
    const blocker = await blockerOn('kb', 'billing app');
    const { log, lines } = capture();
    let drained = 0;
    const started = Date.now();
    await session.cutover.swap(plan, names, {
      lockTimeoutMs: 5000,
      killBlockers: new BlockerKiller({ afterMs: 300, table: 'kb', log }),
      drainUnderLock: async () => {
        drained++;
        await stream.writeMarker('x');
      },
      log,
    });
    const took = Date.now() - started;
    expect(drained).toBe(1);
    expect(took).toBeGreaterThanOrEqual(300);
    expect(took).toBeLessThan(4000); // well inside the lock timeout: the same attempt
    for (let i = 0; i < 50 && (await alive(blocker.pid)); i++) await new Promise((r) => setTimeout(r, 20));
    expect(await alive(blocker.pid)).toBe(false);
    const killed = lines.filter((l) => String(l.msg).includes('ended a session that blocked the cut-over'));
    expect(killed).toHaveLength(1);
    expect(killed[0]).toMatchObject({ pid: blocker.pid, application: 'billing app', state: 'idle in transaction', ended: true });
    expect(typeof killed[0]!.user).toBe('string');
    expect(String(killed[0]!.xactStart)).toMatch(/^\d{4}-/);
    expect(String(killed[0]!.query)).toContain('UPDATE kb SET v =');
    expect(JSON.stringify(lines)).not.toContain('hunter2');
    blocker.client.end().catch(() => undefined);
    await stream.stop();
  }, 60_000);

  it('counts the wait across attempts when the threshold is longer than the lock timeout', async () => {
    const { plan, names, stream } = await prepare('kb2', 'kb2-job');
    const blocker = await blockerOn('kb2', 'reporting');
    const { log, lines } = capture();
    // One policy for both attempts, as the engine keeps one for a job's attempts.
    const opts = { lockTimeoutMs: 400, killBlockers: new BlockerKiller({ afterMs: 600, table: 'kb2', log }), drainUnderLock: async () => undefined, log };
    // Attempt 1 waits 400 ms (< 600): gives up, the blocker lives.
    await expect(session.cutover.swap(plan, names, opts)).rejects.toBeInstanceOf(CutoverAttemptError);
    expect(await alive(blocker.pid)).toBe(true);
    // Attempt 2: after 200 ms more the blocker is ended and the swap goes through.
    await session.cutover.swap(plan, names, opts);
    expect(await alive(blocker.pid)).toBe(false);
    expect(lines.filter((l) => String(l.msg).includes('ended a session'))).toHaveLength(1);
    blocker.client.end().catch(() => undefined);
    await stream.stop();
  }, 60_000);

  it('never ends a session whose transaction is younger than the threshold, nor anything when off', async () => {
    const { plan, names, stream } = await prepare('kb3', 'kb3-job');
    const blocker = await blockerOn('kb3', 'app');
    const { log, lines } = capture();
    await expect(
      session.cutover.swap(plan, names, { lockTimeoutMs: 300, drainUnderLock: async () => undefined, log }),
    ).rejects.toBeInstanceOf(CutoverAttemptError);
    expect(await alive(blocker.pid)).toBe(true);
    // Threshold far above the blocker's age: nothing ended this attempt.
    await expect(
      session.cutover.swap(plan, names, { lockTimeoutMs: 300, killBlockers: new BlockerKiller({ afterMs: 60_000, table: 'kb3', log }), drainUnderLock: async () => undefined, log }),
    ).rejects.toBeInstanceOf(CutoverAttemptError);
    expect(await alive(blocker.pid)).toBe(true);
    expect(lines.filter((l) => String(l.msg).includes('ended a session'))).toHaveLength(0);
    await blocker.client.query('ROLLBACK');
    await blocker.client.end();
    await stream.stop();
  }, 60_000);

  it('a cut-over connection ended under the lock is a failed attempt (rolled back), and the next attempt swaps', async () => {
    const { plan, names, stream } = await prepare('kb4', 'kb4-job');
    const { log } = capture();
    const err = await session.cutover
      .swap(plan, names, {
        lockTimeoutMs: 2000,
        drainUnderLock: async () => {
          await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'shadowshift cut-over' AND datname = current_database()`);
          await new Promise((r) => setTimeout(r, 100));
        },
        log,
      })
      .catch((e: Error) => e);
    expect(err).toBeInstanceOf(CutoverAttemptError);
    const t = await admin.query(`SELECT to_regclass('kb4')::text AS o, to_regclass($1)::text AS s, to_regclass($2)::text AS b`, [names.shadow, names.backup]);
    expect(t.rows[0]).toEqual({ o: 'kb4', s: names.shadow, b: null });
    await session.cutover.swap(plan, names, { lockTimeoutMs: 2000, drainUnderLock: async () => undefined, log });
    const u = await admin.query(`SELECT to_regclass($1)::text AS s, to_regclass($2)::text AS b`, [names.shadow, names.backup]);
    expect(u.rows[0]).toEqual({ s: null, b: names.backup });
    await stream.stop();
  }, 60_000);

  it('redacts literals and numbers from logged statements', () => {
    expect(redactQuery(`ALTER ROLE x PASSWORD 'p''w' ; select $$body$$, $q$x$q$, 42, t1.c FROM t1 WHERE a = E'\\x'`)).toBe(
      `ALTER ROLE x PASSWORD '…' ; select $…$, $…$, ?, t1.c FROM t1 WHERE a = '…'`,
    );
    expect(redactQuery('x'.repeat(500))).toHaveLength(120);
  });
});

describe('job lock', () => {
  it('takes the lock again on a new connection when its connection is terminated', async () => {
    const ref = { schema: 'public', name: 'jl1' };
    await session.acquireJobLock(ref);
    const lost = session.jobLockLost(ref);
    let rejected: Error | null = null;
    lost.catch((e: Error) => {
      rejected = e;
    });
    const pids = async () =>
      (await admin.query<{ pid: string }>(`SELECT pid::text FROM pg_stat_activity WHERE application_name = 'shadowshift job lock' AND datname = current_database()`)).rows.map((r) => r.pid);
    const [before] = await pids();
    await admin.query('SELECT pg_terminate_backend($1::int)', [before]);
    for (let i = 0; i < 100 && session.jobLocks.reacquiredCount(ref) === 0; i++) await new Promise((r) => setTimeout(r, 20));
    await session.jobLocks.settled(ref);
    expect(session.jobLocks.reacquiredCount(ref)).toBe(1);
    expect(await jobLockHeld(admin, ref)).toBe(true);
    expect((await pids())[0]).not.toBe(before);
    // A second job is still refused.
    const other = await (await import('./helpers.js')).openSession(url);
    try {
      await expect(other.acquireJobLock(ref)).rejects.toThrow(/another shadowshift job is already running/);
    } finally {
      await other.close();
    }
    expect(rejected).toBeNull();
    await session.releaseJobLock(ref);
    expect(await jobLockHeld(admin, ref)).toBe(false);
  }, 30_000);

  it('fails the job (rejects, calls back) when another job took the lock meanwhile', async () => {
    const ref = { schema: 'public', name: 'jl2' };
    await session.acquireJobLock(ref);
    const lost = session.jobLockLost(ref);
    const called: string[] = [];
    const off = session.onJobLockLost((t, err) => called.push(`${t.name}: ${err.message}`));
    // Another job queues for the lock first, so it gets it the moment ours is gone.
    const thief = await pgConnect(url);
    const thiefPid = Number((await thief.query<{ pid: string }>('SELECT pg_backend_pid()::text AS pid')).rows[0]!.pid);
    const taking = thief.query(`SELECT pg_advisory_lock(hashtext('shadowshift'), hashtext('public.jl2'))`);
    for (let i = 0; i < 100; i++) {
      const w = await admin.query(`SELECT 1 FROM pg_locks WHERE pid = $1 AND NOT granted`, [thiefPid]);
      if (w.rows.length) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'shadowshift job lock' AND datname = current_database()`);
    await taking;
    const err = await lost.catch((e: Error) => e);
    expect(err).toBeInstanceOf(ShadowshiftError);
    expect((err as Error).message).toMatch(/lost the job lock on public\.jl2 .*another shadowshift job took it meanwhile/);
    expect(called).toHaveLength(1);
    off();
    await session.releaseJobLock(ref);
    // The thief's lock is untouched by our release.
    expect(await jobLockHeld(admin, ref)).toBe(true);
    await thief.end();
  }, 30_000);
});
