import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import type { PostgresSession } from '../../src/dialects/postgres/postgres-dialect.js';
import { drain, freshDb, makePlan, openSession, syncTo } from './helpers.js';

let admin: pg.Client;
let session: PostgresSession;
let url: string;

beforeAll(async () => {
  ({ admin, session, url } = await freshDb('pgresume'));
});
afterAll(async () => {
  await session?.close();
  await admin?.end();
});

describe('checksum', () => {
  it('finds a range that differs, recopy repairs it, writes wait only for the drain', async () => {
    await admin.query(`CREATE TABLE ck (id int PRIMARY KEY, v numeric(10,2), t text)`);
    await admin.query(`INSERT INTO ck SELECT g, g * 1.5, 't' || g FROM generate_series(1, 1000) g`);
    const original = (await session.inspectTable({ schema: 'public', name: 'ck' }))!;
    const alter = 'ALTER COLUMN v TYPE numeric(14,3)';
    const names = session.artefactNames(original.ref, 'ck-job');
    const shadow = await session.createShadow(original, alter, names);
    const plan = makePlan(original, shadow, session.analyzeAlter(alter));
    const stream = session.openChangeStream(plan, names, 'ck-job');
    await stream.start();
    try {
      await session.copier.copyChunk(plan, { after: null, upTo: ['1000'] });
      await admin.query(`UPDATE ck SET t = 'changed' WHERE id = 10`);
      // Corrupt the shadow behind the engine's back.
      await admin.query(`UPDATE ${names.shadow} SET t = 'wrong' WHERE id = 600`);
      let drains = 0;
      const view = await session.checksummer.open(plan, {
        lockTimeoutMs: 1000,
        drainUnderLock: async () => {
          drains++;
          await syncTo(session, stream, plan, 'ck-m');
        },
      });
      try {
        // The lock is gone: a write goes through while the view is open, and the view does not see it.
        await admin.query(`UPDATE ck SET t = 'after' WHERE id = 20`);
        expect(await view.compare({ after: null, upTo: ['500'] })).toEqual({ same: true, originalRows: 500, shadowRows: 500 });
        expect(await view.compare({ after: ['500'], upTo: ['1000'] })).toEqual({ same: false, originalRows: 500, shadowRows: 500 });
      } finally {
        await view.close();
      }
      expect(drains).toBe(1);
      await session.checksummer.recopy(plan, { after: ['500'], upTo: ['1000'] });
      await drain(session, stream, plan);
      const view2 = await session.checksummer.open(plan, { lockTimeoutMs: 1000, drainUnderLock: async () => { await syncTo(session, stream, plan, 'ck-m2'); } });
      try {
        expect((await view2.compare({ after: null, upTo: ['1000'] })).same).toBe(true);
      } finally {
        await view2.close();
      }
    } finally {
      await stream.stop();
      await session.dropArtefacts(names, { keepBackup: false });
    }
  });
});

describe('resume', () => {
  it('keeps slot and publication for a resume, continues from the checkpoint position exactly once', async () => {
    await admin.query(`CREATE TABLE rs (id int PRIMARY KEY, v int)`);
    await admin.query(`INSERT INTO rs SELECT g, 0 FROM generate_series(1, 100) g`);
    const original = (await session.inspectTable({ schema: 'public', name: 'rs' }))!;
    const names = session.artefactNames(original.ref, 'rs-job', { resumable: true });
    expect(names.extra.slot).toMatch(/_rslot$/);
    const shadow = await session.createShadow(original, 'ADD COLUMN w int', names);
    const plan = makePlan(original, shadow, session.analyzeAlter('ADD COLUMN w int'));
    const s1 = session.openChangeStream(plan, names, 'rs-job');
    await s1.start();
    await session.copier.copyChunk(plan, { after: null, upTo: ['50'] });
    await admin.query(`UPDATE rs SET v = v + 1 WHERE id <= 60`);
    await syncTo(session, s1, plan, 'r1');
    const b = s1.take(10);
    expect(b).toBeNull();
    // Checkpoint: the position of the last applied batch.
    await s1.writeMarker('cp');
    const cp = await drain(session, s1, plan, { until: (_e, m) => m.includes('cp') });
    void cp;
    const position = (await admin.query(`SELECT confirmed_flush_lsn::text AS l FROM pg_replication_slots WHERE slot_name = $1`, [names.extra.slot])).rows[0].l;
    await session.checkpoints.save({ version: 1, jobId: 'rs-job', table: original.ref, alter: 'ADD COLUMN w int', names, streamPosition: position, watermark: null, ceiling: null, rowsCopied: 50, savedAt: new Date().toISOString() });
    await s1.stop({ keepForResume: true });
    expect((await admin.query(`SELECT count(*)::int AS n FROM pg_replication_slots WHERE slot_name = $1`, [names.extra.slot])).rows[0].n).toBe(1);
    const left = await session.listLeftovers();
    expect(left.map((l) => [l.kind, l.name.endsWith('_rslot') || l.name.endsWith('_rpub') || l.kind === 'shadow'])).toEqual(
      expect.arrayContaining([['slot', true], ['publication', true], ['shadow', true]]),
    );

    // Writes while no job runs.
    await admin.query(`UPDATE rs SET v = v + 10 WHERE id > 40`);
    await admin.query(`DELETE FROM rs WHERE id = 99`);

    const s2session = await openSession(url);
    try {
      const loaded = (await s2session.checkpoints.load(original.ref))!;
      expect(loaded.names).toEqual(names);
      const s2 = s2session.openChangeStream(plan, loaded.names, 'rs-job');
      expect(await s2.start(loaded.streamPosition)).toBe(loaded.streamPosition.toUpperCase());
      await s2session.copier.copyChunk(plan, { after: ['50'], upTo: ['100'] });
      const { events } = await (async () => {
        await s2.writeMarker('r2');
        return drain(s2session, s2, plan, { until: (_e, m) => m.includes('r2') });
      })();
      expect(events.length).toBe(61); // 60 updates after id 40 + 1 delete, nothing replayed from before
      const diff = await admin.query(`SELECT count(*)::int AS n FROM rs k FULL JOIN ${names.shadow} s USING (id) WHERE k.v IS DISTINCT FROM s.v`);
      expect(diff.rows[0].n).toBe(0);
      await s2.stop();
      await s2session.checkpoints.remove(original.ref);
      expect(await s2session.checkpoints.load(original.ref)).toBeNull();
    } finally {
      await s2session.close();
    }
    await session.dropArtefacts(names, { keepBackup: false });
    expect((await admin.query(`SELECT count(*)::int AS n FROM pg_replication_slots WHERE database = current_database()`)).rows[0].n).toBe(0);
    expect((await admin.query(`SELECT count(*)::int AS n FROM pg_class WHERE relname LIKE '\\_ss\\_%'`)).rows[0].n).toBe(0);
  });
  it('resumes while the walsender of a run killed a moment ago still holds the slot', async () => {
    await admin.query(`CREATE TABLE rz (id int PRIMARY KEY, v int)`);
    await admin.query(`INSERT INTO rz SELECT g, 0 FROM generate_series(1, 10) g`);
    const original = (await session.inspectTable({ schema: 'public', name: 'rz' }))!;
    const names = session.artefactNames(original.ref, 'rz-job', { resumable: true });
    const shadow = await session.createShadow(original, 'ADD COLUMN w int', names);
    const plan = makePlan(original, shadow, session.analyzeAlter('ADD COLUMN w int'));
    // The "dead" run: its replication connection is still open and holds the slot.
    const s1 = session.openChangeStream(plan, names, 'rz-job');
    const position = await s1.start();
    const active = async () => (await admin.query(`SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1`, [names.extra.slot])).rows[0].active_pid;
    expect(await active()).not.toBeNull();
    const s2session = await openSession(url);
    try {
      const s2 = s2session.openChangeStream(plan, names, 'rz-job');
      expect(await s2.start(position)).toBe(position);
      await admin.query(`UPDATE rz SET v = 1 WHERE id = 3`);
      await s2.writeMarker('rz');
      const { events } = await drain(s2session, s2, plan, { until: (_e, m) => m.includes('rz') });
      expect(events.length).toBe(1);
      await s2.stop();
    } finally {
      await s2session.close();
      await s1.stop().catch(() => undefined);
    }
    await session.dropArtefacts(names, { keepBackup: false });
  });
});

