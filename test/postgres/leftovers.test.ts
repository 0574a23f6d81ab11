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
