// Keepalives and the bounded queue, on a server with a short wal_sender_timeout.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { startPostgres, type RunningServer } from '../support/servers.js';
import { PostgresChangeStream } from '../../src/dialects/postgres/postgres-change-stream.js';
import type { PostgresSession } from '../../src/dialects/postgres/postgres-dialect.js';
import { makePlan, openSession } from './helpers.js';

let server: RunningServer;
let admin: pg.Client;
let session: PostgresSession;

beforeAll(async () => {
  server = await startPostgres({ extraArgs: ['-c', 'wal_sender_timeout=1500ms', '-c', 'max_connections=30'] });
  admin = new pg.Client({ connectionString: server.adminUrl('postgres') });
  await admin.connect();
  session = await openSession(server.adminUrl('postgres'));
});
afterAll(async () => {
  await session?.close();
  await admin?.end();
  await server?.stop();
});

async function activePid(slot: string): Promise<number | null> {
  const r = await admin.query(`SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1`, [slot]);
  return r.rows[0]?.active_pid ?? null;
}

describe('keepalives and backpressure', () => {
  it('survives idle periods and a full, paused queue without being timed out; bounded backlog; exactly once', async () => {
    await admin.query(`CREATE TABLE ka (id int PRIMARY KEY, v text)`);
    const original = (await session.inspectTable({ schema: 'public', name: 'ka' }))!;
    const names = session.artefactNames(original.ref, 'ka-job');
    const shadow = await session.createShadow(original, 'ADD COLUMN w int', names);
    const plan = makePlan(original, shadow, session.analyzeAlter('ADD COLUMN w int'));
    const stream = new PostgresChangeStream(session.ctx, plan, { slot: names.extra.slot!, publication: names.changelog, markerPrefix: 'ka', maxQueuedEvents: 200 });
    let failed: unknown = null;
    stream.failed.catch((e) => (failed = e));
    await stream.start();
    try {
      const pid = await activePid(names.extra.slot!);
      expect(pid).not.toBeNull();
      // Idle for longer than wal_sender_timeout: keepalives are answered.
      await new Promise((r) => setTimeout(r, 4000));
      expect(await activePid(names.extra.slot!)).toBe(pid);

      // 3000 single-row transactions while nobody takes: the queue fills and reading pauses.
      await admin.query(`INSERT INTO ka SELECT g, 'x' FROM generate_series(1, 3000) g`);
      for (let i = 1; i <= 3000; i += 100) await admin.query(`UPDATE ka SET v = 'y' WHERE id BETWEEN $1 AND $1 + 99`, [i]);
      await stream.writeMarker('end');
      await new Promise((r) => setTimeout(r, 4000));
      // Reading paused at 200 queued events; what the socket had already buffered (one
      // read, ~64 KB) still arrives, so the bound overshoots a little: 1300 here, of 6000.
      expect(stream.backlog()).toBeLessThan(2000);
      expect(await activePid(names.extra.slot!)).toBe(pid);
      let total = 0;
      let maxBacklog = 0;
      const seen = new Set<string>();
      for (let done = false; !done; ) {
        const b = stream.take(150);
        if (!b) {
          await stream.waitForData(500);
          continue;
        }
        for (const e of b.events) if (e.kind === 'insert') seen.add(e.after.id as string);
        total += b.events.length;
        await session.applier.apply(plan, b.events);
        await stream.acknowledge(b.position);
        maxBacklog = Math.max(maxBacklog, stream.backlog());
        if (b.markers.includes('end')) done = true;
      }
      expect(total).toBe(6000);
      expect(seen.size).toBe(3000);
      expect(failed).toBeNull();
      expect(await activePid(names.extra.slot!)).toBe(pid);
      const diff = await admin.query(`SELECT count(*)::int AS n FROM ka k FULL JOIN ${names.shadow} s USING (id) WHERE k.v IS DISTINCT FROM s.v`);
      expect(diff.rows[0].n).toBe(0);
      // Acknowledged: the slot's confirmed position moved.
      await new Promise((r) => setTimeout(r, 1000));
      const conf = await admin.query(`SELECT confirmed_flush_lsn >= pg_current_wal_lsn() - 100000 AS ok FROM pg_replication_slots WHERE slot_name = $1`, [names.extra.slot]);
      expect(conf.rows[0].ok).toBe(true);
    } finally {
      await stream.stop();
      await session.dropArtefacts(names, { keepBackup: false });
    }
    expect((await admin.query(`SELECT count(*)::int AS n FROM pg_replication_slots`)).rows[0].n).toBe(0);
  });

  it('failed rejects when someone else alters the original during the job', async () => {
    await admin.query(`CREATE TABLE kd (id int PRIMARY KEY, v int)`);
    const original = (await session.inspectTable({ schema: 'public', name: 'kd' }))!;
    const names = session.artefactNames(original.ref, 'kd-job');
    const shadow = await session.createShadow(original, 'ADD COLUMN w int', names);
    const plan = makePlan(original, shadow, session.analyzeAlter('ADD COLUMN w int'));
    const stream = session.openChangeStream(plan, names, 'kd-job');
    await stream.start();
    try {
      await admin.query(`INSERT INTO kd VALUES (1, 1)`);
      await admin.query(`ALTER TABLE kd ADD COLUMN sneaky text`);
      await admin.query(`INSERT INTO kd VALUES (2, 2, 'x')`);
      await expect(Promise.race([stream.failed, new Promise((r) => setTimeout(() => r('timeout'), 10000))])).rejects.toThrow(/columns of kd changed.*sneaky/);
    } finally {
      await stream.stop();
      await session.dropArtefacts(names, { keepBackup: false });
    }
  });

  it('failed rejects when the slot disappears for good', async () => {
    await admin.query(`CREATE TABLE kb (id int PRIMARY KEY)`);
    const original = (await session.inspectTable({ schema: 'public', name: 'kb' }))!;
    const names = session.artefactNames(original.ref, 'kb-job');
    const shadow = await session.createShadow(original, 'ADD COLUMN w int', names);
    const plan = makePlan(original, shadow, session.analyzeAlter('ADD COLUMN w int'));
    const stream = new PostgresChangeStream(session.ctx, plan, { slot: names.extra.slot!, publication: names.changelog, markerPrefix: 'kb', maxReconnects: 3 });
    await stream.start();
    try {
      const pid = await activePid(names.extra.slot!);
      await admin.query(`SELECT pg_terminate_backend($1)`, [pid]);
      // Drop the slot while the stream is between connections.
      for (let i = 0; i < 50; i++) {
        const ok = await admin.query(`SELECT pg_drop_replication_slot($1)`, [names.extra.slot]).then(() => true, () => false);
        if (ok) break;
        await admin.query(`SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL`, [names.extra.slot]);
        await new Promise((r) => setTimeout(r, 20));
      }
      await expect(Promise.race([stream.failed, new Promise((r) => setTimeout(() => r('timeout'), 20000))])).rejects.toThrow(/slot/);
    } finally {
      await stream.stop();
      await session.dropArtefacts(names, { keepBackup: false });
    }
  });
});
