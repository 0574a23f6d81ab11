// Copy and apply interleaved as the engine does (events first, then a chunk), under a
// concurrent random workload with inserts, updates (some changing the key, some leaving
// a TOASTed value untouched) and deletes: the shadow converges to the original exactly.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import type { PostgresSession } from '../../src/dialects/postgres/postgres-dialect.js';
import type { Value } from '../../src/dialects/dialect.js';
import { freshDb, makePlan, syncTo } from './helpers.js';
import { pgConnect } from '../support/databases.js';
import { silentLogger } from '../../src/util/logger.js';

let admin: pg.Client;
let session: PostgresSession;
let url: string;

beforeAll(async () => {
  ({ admin, session, url } = await freshDb('pgsoak'));
});
afterAll(async () => {
  await session?.close();
  await admin?.end();
});

describe('soak', () => {
  it('converges under a random workload, then cuts over', async () => {
    const N = 30000;
    await admin.query(`CREATE TABLE soak (id bigint PRIMARY KEY, grp int NOT NULL, amount numeric(14,4), note text, big text)`);
    await admin.query(`INSERT INTO soak SELECT g, g % 97, g * 1.0001, 'n' || g, CASE WHEN g % 500 = 0 THEN (SELECT string_agg(md5(x::text), '') FROM generate_series(1, 4000) x) END FROM generate_series(1, ${N}) g`);
    await admin.query(`CREATE INDEX soak_grp ON soak (grp)`);
    const original = (await session.inspectTable({ schema: 'public', name: 'soak' }))!;
    const alter = 'ADD COLUMN flag boolean NOT NULL DEFAULT false, ALTER COLUMN amount TYPE numeric(18,4)';
    const names = session.artefactNames(original.ref, 'soak-job');
    const shadow = await session.createShadow(original, alter, names, { deferIndexes: true });
    const plan = makePlan(original, shadow, session.analyzeAlter(alter));
    const stream = session.openChangeStream(plan, names, 'soak-job');
    await stream.start();

    let stop = false;
    let writes = 0;
    const errors: string[] = [];
    const writers = await Promise.all([pgConnect(url), pgConnect(url)]);
    let nextId = N + 1;
    const loops = writers.map(async (w, wi) => {
      let i = 0;
      while (!stop) {
        const r = Math.random();
        const id = 1 + Math.floor(Math.random() * (N + 2000));
        try {
          if (r < 0.3) await w.query(`INSERT INTO soak (id, grp, amount, note) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING`, [nextId++, i % 97, `${i}.5`, `w${wi}-${i}`]);
          else if (r < 0.7) await w.query(`UPDATE soak SET amount = amount + 1, note = note || '+' WHERE id = $1`, [id]);
          else if (r < 0.8) await w.query(`UPDATE soak SET id = id + 1000000 WHERE id = $1 AND id < 1000000`, [id]);
          else if (r < 0.9) await w.query(`DELETE FROM soak WHERE id = $1`, [id]);
          else {
            // Two rows in one statement, one of them leaving its TOASTed value alone.
            await w.query(
              `UPDATE soak SET grp = CASE WHEN id = $1 THEN grp + 1 ELSE grp END, note = CASE WHEN id = $2 THEN 'tx' ELSE note END WHERE id IN ($1, $2)`,
              [id, 500 * (1 + (i % 60))],
            );
          }
        } catch (err) {
          errors.push((err as Error).message);
        }
        i++;
        writes++;
      }
    });

    // The engine's loop: apply what arrived, then copy a chunk.
    const applyAll = async () => {
      for (;;) {
        const b = stream.take(2000);
        if (!b) return;
        await session.applier.apply(plan, b.events);
        await stream.acknowledge(b.position);
      }
    };
    const bounds = (await session.copier.keyBounds(plan))!;
    let after: Value[] | null = null;
    for (;;) {
      await applyAll();
      const upTo = await session.copier.chunkEnd(plan, after, 2500, bounds.max);
      for (let attempt = 0; ; attempt++) {
        try {
          await session.copier.copyChunk(plan, { after, upTo });
          break;
        } catch (err) {
          if ((err as Error).name !== 'TransientDatabaseError' || attempt > 20) throw err;
        }
      }
      after = upTo;
      if (upTo[0] === bounds.max[0]) break;
    }
    await new Promise((r) => setTimeout(r, 300));
    stop = true;
    await Promise.all(loops);
    await Promise.all(writers.map((w) => w.end()));
    expect(errors).toEqual([]);
    expect(writes).toBeGreaterThan(500);
    await syncTo(session, stream, plan, 'soak-end');
    await session.finishShadow(shadow.ref);

    const cols = 'id, grp, amount, note, md5(big)';
    const o = await admin.query(`SELECT md5(string_agg((${cols})::text, ',' ORDER BY id)) AS h, count(*)::int AS n FROM soak`);
    const s = await admin.query(`SELECT md5(string_agg((${cols})::text, ',' ORDER BY id)) AS h, count(*)::int AS n FROM ${names.shadow}`);
    expect(s.rows[0]).toEqual(o.rows[0]);
    expect((await admin.query(`SELECT count(big)::int AS n FROM ${names.shadow}`)).rows[0].n).toBe((await admin.query(`SELECT count(big)::int AS n FROM soak`)).rows[0].n);

    await session.cutover.swap(plan, names, { lockTimeoutMs: 1000, drainUnderLock: async () => { await syncTo(session, stream, plan, 'soak-cut'); }, log: silentLogger() });
    await stream.stop();
    const idx = await admin.query(`SELECT indexrelid::regclass::text AS n FROM pg_index WHERE indrelid = 'soak'::regclass ORDER BY 1`);
    expect(idx.rows.map((r) => r.n)).toEqual(['soak_grp', 'soak_pkey']);
    const after2 = await admin.query(`SELECT md5(string_agg((${cols})::text, ',' ORDER BY id)) AS h, count(*)::int AS n FROM soak`);
    expect(after2.rows[0]).toEqual(o.rows[0]);
    await session.dropArtefacts(names, { keepBackup: false });
  });
});
