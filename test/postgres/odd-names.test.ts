// A whole dialect-level job on a table and columns with hostile names.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import type { PostgresSession } from '../../src/dialects/postgres/postgres-dialect.js';
import { quoteIdent } from '../../src/dialects/postgres/postgres-quote.js';
import { freshDb, makePlan, syncTo } from './helpers.js';
import { silentLogger } from '../../src/util/logger.js';

let admin: pg.Client;
let session: PostgresSession;

beforeAll(async () => {
  ({ admin, session } = await freshDb('pgodd'));
});
afterAll(async () => {
  await session?.close();
  await admin?.end();
});

describe('odd identifiers end to end', () => {
  it('copies, streams, applies and swaps a table named We"ird Tab.le in schema "Sch ema"', async () => {
    const schema = 'Sch ema';
    const table = 'We"ird Tab.le';
    const q = (s: string) => quoteIdent(s);
    const t = `${q(schema)}.${q(table)}`;
    await admin.query(`CREATE SCHEMA ${q(schema)}`);
    await admin.query(`CREATE TABLE ${t} (${q('Id "1"')} int, ${q('select')} text, ${q('ü 表')} numeric, PRIMARY KEY (${q('Id "1"')}, ${q('select')}))`);
    await admin.query(`CREATE INDEX ${q('idx, "odd"')} ON ${t} (${q('ü 表')})`);
    await admin.query(`INSERT INTO ${t} SELECT g, 's' || g, g / 3.0 FROM generate_series(1, 200) g`);
    const ref = session.resolveTable(`"${schema}"."${table.replace(/"/g, '""')}"`);
    expect(ref).toEqual({ schema, name: table });
    const original = (await session.inspectTable(ref))!;
    const alter = `ADD COLUMN ${q('new, col')} text DEFAULT 'x', RENAME COLUMN ${q('ü 表')} TO ${q('ü 表 2')}`;
    const names = session.artefactNames(ref, 'odd-job');
    const shadow = await session.createShadow(original, alter, names);
    const plan = makePlan(original, shadow, session.analyzeAlter(alter));
    expect(plan.columns.find((c) => c.source === 'ü 表')!.target).toBe('ü 表 2');
    const stream = session.openChangeStream(plan, names, 'odd-job');
    await stream.start();
    try {
      const bounds = (await session.copier.keyBounds(plan))!;
      let after = null;
      for (;;) {
        const upTo = await session.copier.chunkEnd(plan, after, 33, bounds.max);
        await session.copier.copyChunk(plan, { after, upTo });
        after = upTo;
        if (upTo[0] === bounds.max[0] && upTo[1] === bounds.max[1]) break;
      }
      await admin.query(`UPDATE ${t} SET ${q('ü 表')} = -1 WHERE ${q('Id "1"')} = 5`);
      await admin.query(`UPDATE ${t} SET ${q('select')} = 'moved' WHERE ${q('Id "1"')} = 6`);
      await admin.query(`DELETE FROM ${t} WHERE ${q('Id "1"')} = 7`);
      await admin.query(`INSERT INTO ${t} VALUES (1000, 'new', 1)`);
      await session.cutover.swap(plan, names, { lockTimeoutMs: 1000, drainUnderLock: async () => { await syncTo(session, stream, plan, 'odd'); }, log: silentLogger() });
    } finally {
      await stream.stop();
    }
    const o = await admin.query(`SELECT (${q('Id "1"')}, ${q('select')}, ${q('ü 表')})::text AS r FROM ${q(schema)}.${q(names.backup)} ORDER BY 1`);
    const n = await admin.query(`SELECT (${q('Id "1"')}, ${q('select')}, ${q('ü 表 2')})::text AS r FROM ${t} ORDER BY 1`);
    expect(n.rows).toEqual(o.rows);
    expect(n.rows.length).toBe(200);
    const idx = await admin.query(`SELECT indexrelid::regclass::text AS n FROM pg_index WHERE indrelid = $1::regclass ORDER BY 1`, [t]);
    expect(idx.rows.map((r) => r.n)).toContain(`${q(schema)}.${q('idx, "odd"')}`);
    await session.dropArtefacts(names, { keepBackup: false });
  });
});
