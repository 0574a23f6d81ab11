import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { spawn } from 'node:child_process';
import type { PostgresSession } from '../../src/dialects/postgres/postgres-dialect.js';
import { freshDb } from './helpers.js';

let admin: pg.Client;
let session: PostgresSession;
let url: string;

beforeAll(async () => {
  ({ admin, session, url } = await freshDb('pgleft'));
});
afterAll(async () => {
  await session?.close();
  await admin?.end();
});

function startJob(table: string, jobId: string) {
  const child = spawn('npx', ['tsx', 'test/postgres/fixtures/crash-job.ts', url, table, jobId], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d) => String(d).includes('ready') && resolve());
    child.on('exit', (code) => reject(new Error(`job exited ${code}: ${err}`)));
  });
  return { child, ready };
}

describe('leftovers', () => {
  it('lists a running job as in use, and after SIGKILL removes everything', async () => {
    await admin.query(`CREATE TABLE lt (id int PRIMARY KEY)`);
    const job = startJob('lt', 'crash-1');
    await job.ready;
    const running = await session.listLeftovers();
    expect(running.map((l) => [l.kind, l.inUse]).sort()).toEqual([
      ['publication', true],
      ['shadow', true],
      ['slot', true],
    ]);
    await expect(session.removeLeftover(running.find((l) => l.kind === 'slot')!)).rejects.toThrow(/in use/);

    // Kill the whole process tree without any cleanup.
    const exited = new Promise((r) => job.child.once('exit', r));
    process.kill(-job.child.pid!, 'SIGKILL'); // its own process group: npx, tsx and node
    await exited;
    // The server notices the dead connections.
    let left = await session.listLeftovers();
    for (let i = 0; i < 50 && left.some((l) => l.inUse); i++) {
      await new Promise((r) => setTimeout(r, 100));
      left = await session.listLeftovers();
    }
    expect(left.map((l) => [l.kind, l.inUse]).sort()).toEqual([
      ['publication', false],
      ['shadow', false],
      ['slot', false],
    ]);
    for (const l of left) await session.removeLeftover(l);
    expect(await session.listLeftovers()).toEqual([]);
    expect((await admin.query(`SELECT count(*)::int AS n FROM pg_replication_slots WHERE database = current_database()`)).rows[0].n).toBe(0);
    expect((await admin.query(`SELECT count(*)::int AS n FROM pg_class WHERE relname LIKE '\\_ss\\_%'`)).rows[0].n).toBe(0);
  });

  it('close() stops an open stream and drops its slot', async () => {
    const { openSession } = await import('./helpers.js');
    await admin.query(`CREATE TABLE lt2 (id int PRIMARY KEY)`);
    const s = await openSession(url);
    const info = (await s.inspectTable({ schema: 'public', name: 'lt2' }))!;
    const names = s.artefactNames(info.ref, 'close-job');
    const shadow = await s.createShadow(info, 'ADD COLUMN z int', names);
    const stream = s.openChangeStream({ original: info, shadow, key: [{ source: 'id', target: 'id' }], columns: [{ source: 'id', target: 'id' }], newUniqueIndexes: [] }, names, 'close-job');
    await stream.start();
    await s.close();
    expect((await admin.query(`SELECT count(*)::int AS n FROM pg_replication_slots WHERE database = current_database()`)).rows[0].n).toBe(0);
    expect((await admin.query(`SELECT count(*)::int AS n FROM pg_publication`)).rows[0].n).toBe(0);
    await session.dropArtefacts(names, { keepBackup: false });
  });
});

describe('leftovers of resumable jobs', () => {
  it('marks the slot, publication and shadow a resumable job keeps as resumable, and no others', async () => {
    const { makePlan } = await import('./helpers.js');
    await admin.query(`CREATE TABLE lres (id int PRIMARY KEY, v text)`);
    const original = (await session.inspectTable({ schema: 'public', name: 'lres' }))!;
    const kept: Array<{ tag: string; resumable: boolean }> = [];
    for (const [job, resumable] of [['lres-r', true], ['lres-n', false]] as const) {
      const names = session.artefactNames(original.ref, job, { resumable });
      const shadow = await session.createShadow(original, 'ADD COLUMN w int', names);
      const stream = session.openChangeStream(makePlan(original, shadow, session.analyzeAlter('ADD COLUMN w int')), names, job);
      await stream.start();
      await stream.stop({ keepForResume: true });
      kept.push({ tag: names.extra.tag!, resumable });
    }
    // A stopped stream's walsender may linger a moment (the slot shows active): wait for it.
    let items = await session.listLeftovers();
    for (let i = 0; i < 100 && items.some((x) => x.inUse && kept.some((k) => x.name.startsWith(`_ss_${k.tag}_`))); i++) {
      await new Promise((r) => setTimeout(r, 50));
      items = await session.listLeftovers();
    }
    for (const { tag, resumable } of kept) {
      const mine = items.filter((i) => i.name.startsWith(`_ss_${tag}_`));
      expect(mine.map((i) => i.kind).sort()).toEqual(['publication', 'shadow', 'slot']);
      for (const i of mine) expect(i.resumable, `${i.kind} ${i.name}`).toBe(resumable);
      for (const i of mine.filter((x) => x.kind !== 'publication')) await session.removeLeftover(i);
      for (const i of mine.filter((x) => x.kind === 'publication')) await session.removeLeftover(i);
    }
    expect((await session.listLeftovers()).filter((i) => kept.some((k) => i.name.startsWith(`_ss_${k.tag}_`)))).toEqual([]);
  }, 60_000);
});

describe('checkpoints and the shared tables', () => {
  it('lists each checkpoint and the shared heartbeat table (in use while any job runs), and an empty checkpoint table; removes them', async () => {
    const { openSession } = await import('./helpers.js');
    await admin.query(`CREATE TABLE lcp (id int PRIMARY KEY)`);
    await admin.query(`CREATE TABLE lother (id int PRIMARY KEY)`);
    const ref = { schema: 'public', name: 'lcp' };
    const names = session.artefactNames(ref, 'lcp-job', { resumable: true });
    // What a resumable job killed with SIGKILL leaves in the shared tables: its checkpoint and its heartbeat row.
    await session.checkpoints.save({ version: 1, jobId: 'lcp-job', table: ref, alter: 'ADD COLUMN z int', names, streamPosition: '0/0', watermark: null, ceiling: null, rowsCopied: 0, savedAt: new Date().toISOString() });
    await session.openProbes(names).writeHeartbeat();
    const shared = async () =>
      (await session.listLeftovers()).filter((l) => ['checkpoint', 'checkpoint-table', 'heartbeat-table'].includes(l.kind)).sort((a, b) => a.kind.localeCompare(b.kind));

    const holder = await openSession(url);
    await holder.acquireJobLock({ schema: 'public', name: 'lother' });
    expect(await shared()).toEqual([
      { kind: 'checkpoint', name: 'public.lcp', table: ref, inUse: false, resumable: true },
      { kind: 'heartbeat-table', name: '_shadowshift_heartbeat', schema: 'public', inUse: true },
    ]);
    await expect(session.removeLeftover((await shared())[1]!)).rejects.toThrow(/in use/);
    await holder.close();
    let free = await shared();
    for (let i = 0; i < 40 && free.some((l) => l.inUse); i++) {
      await new Promise((r) => setTimeout(r, 50));
      free = await shared();
    }
    for (const l of free) await session.removeLeftover(l);
    const left = async () => (await admin.query(`SELECT relname FROM pg_class WHERE relname IN ('_ss_checkpoints', '_shadowshift_heartbeat')`)).rows;
    expect(await left()).toEqual([]);

    // A checkpoint table without a checkpoint (its job ended between the delete and the drop).
    await session.checkpoints.save({ version: 1, jobId: 'lcp-job', table: ref, alter: 'ADD COLUMN z int', names, streamPosition: '0/0', watermark: null, ceiling: null, rowsCopied: 0, savedAt: new Date().toISOString() });
    await admin.query(`DELETE FROM _ss_checkpoints`);
    expect(await shared()).toEqual([{ kind: 'checkpoint-table', name: '_ss_checkpoints', schema: 'public', inUse: false }]);
    await session.removeLeftover((await shared())[0]!);
    expect(await left()).toEqual([]);
    expect(await session.listLeftovers()).toEqual([]);
  });
});
