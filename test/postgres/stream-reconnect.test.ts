// The slot's confirmed position must be exactly what the engine acknowledged. The
// library reports `lsn + 1`; if that reached the slot, a restarted stream (which starts
// at the later of the requested position and confirmed_flush_lsn) would skip a
// transaction whose commit record begins exactly where the acknowledged one ended: a
// lost change after a dropped connection (seen in test/acceptance/connection-drops).

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import type { PostgresSession } from '../../src/dialects/postgres/postgres-dialect.js';
import { parseLsn } from '../../src/dialects/postgres/postgres-change-stream.js';
import type { ChangeEvent, ChangeStream } from '../../src/dialects/dialect.js';
import { freshDb, makePlan } from './helpers.js';
import { pgConnect } from '../support/databases.js';

let admin: pg.Client;
let other: pg.Client;
let session: PostgresSession;
let url: string;

beforeAll(async () => {
  ({ admin, session, url } = await freshDb('pgreconn'));
  other = await pgConnect(url);
});
afterAll(async () => {
  await session?.close();
  await admin?.end();
  await other?.end();
});

async function confirmed(slot: string): Promise<bigint> {
  const r = await admin.query<{ lsn: string }>(`SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = $1`, [slot]);
  return parseLsn(r.rows[0]!.lsn);
}

async function takeEvents(stream: ChangeStream, n: number, ms = 10_000): Promise<ChangeEvent[]> {
  const out: ChangeEvent[] = [];
  const deadline = Date.now() + ms;
  while (out.length < n && Date.now() < deadline) {
    const b = stream.take(1000);
    if (b) out.push(...b.events);
    else await stream.waitForData(50);
  }
  return out;
}

describe('change stream restart at an acknowledged position', () => {
  it('acknowledges exactly the applied position and loses no adjacent transaction across a restart', async () => {
    await admin.query(`CREATE TABLE r (id int PRIMARY KEY, v text)`);
    const original = (await session.inspectTable({ schema: 'public', name: 'r' }))!;
    const names = session.artefactNames(original.ref, 'reconnect-job', { resumable: true });
    const shadow = await session.createShadow(original, 'ADD COLUMN w int', names);
    const plan = makePlan(original, shadow, session.analyzeAlter('ADD COLUMN w int'));
    const slot = names.extra.slot!;
    const s1 = session.openChangeStream(plan, names, 'reconnect-job');
    await s1.start();

    // B writes first but commits right after A: B's commit record begins where A's ends.
    await other.query('BEGIN');
    await other.query(`INSERT INTO r VALUES (2, 'b')`);
    await admin.query(`INSERT INTO r VALUES (1, 'a')`);
    await other.query('COMMIT');

    // Take A alone (one event, then its commit; B's event stops the batch).
    let a = null;
    for (const deadline = Date.now() + 10_000; !a && Date.now() < deadline; ) {
      a = s1.take(1);
      if (!a) await s1.waitForData(50);
    }
    expect(a).not.toBeNull();
    expect(a!.events).toHaveLength(1);
    expect((a!.events[0] as unknown as { after: { id: string } }).after.id).toBe('1');
    await session.applier.apply(plan, a!.events);
    await s1.acknowledge(a!.position);
    const acked = parseLsn(a!.position);
    for (const deadline = Date.now() + 10_000; (await confirmed(slot)) < acked && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 50));
    // Exactly, not one byte more.
    expect((await confirmed(slot)).toString(16)).toBe(acked.toString(16));

    // What the engine's recoverStream() does: stop keeping the slot, start a new stream there.
    await s1.stop({ keepForResume: true });
    const s2 = session.openChangeStream(plan, names, 'reconnect-job');
    await s2.start(a!.position);
    try {
      const events = await takeEvents(s2, 1);
      expect(events.map((e) => (e as unknown as { after: { id: string } }).after.id)).toEqual(['2']);
    } finally {
      await s2.stop();
    }
  }, 60_000);
});

describe('pooled statements on a connection the server ended', () => {
  it('runs the statement again when the backend was ended (57P01), or a SELECT lost its socket; never otherwise', async () => {
    const { retryEndedConnections } = await import('../../src/dialects/postgres/postgres-context.js');
    const { silentLogger } = await import('../../src/util/logger.js');
    const make = (failures: Array<{ code?: string; message: string }>) => {
      const calls: string[] = [];
      const fake = {
        query: async (text: string) => {
          calls.push(text);
          const f = failures.shift();
          if (f) throw Object.assign(new Error(f.message), f.code ? { code: f.code } : {});
          return { rows: [{ ok: 1 }] };
        },
      };
      retryEndedConnections(fake as unknown as pg.Pool, silentLogger());
      return { pool: fake as unknown as pg.Pool, calls };
    };
    const a = make([{ code: '57P01', message: 'terminating connection due to administrator command' }]);
    await expect(a.pool.query('INSERT INTO x VALUES (1)')).resolves.toMatchObject({ rows: [{ ok: 1 }] });
    expect(a.calls).toHaveLength(2);
    const b = make([{ message: 'Connection terminated unexpectedly' }]);
    await expect(b.pool.query('SELECT 1')).resolves.toBeTruthy();
    expect(b.calls).toHaveLength(2);
    const c = make([{ message: 'Connection terminated unexpectedly' }]);
    await expect(c.pool.query('INSERT INTO x VALUES (1)')).rejects.toThrow(/terminated/);
    expect(c.calls).toHaveLength(1);
    const d = make([{ code: '55P03', message: 'lock timeout' }]);
    await expect(d.pool.query('SELECT 1')).rejects.toThrow(/lock timeout/);
    const e = make(Array.from({ length: 5 }, () => ({ code: '57P01', message: 'terminating' })));
    await expect(e.pool.query('SELECT 1')).rejects.toThrow(/terminating/);
    expect(e.calls).toHaveLength(4);
  });
});
