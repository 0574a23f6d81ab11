// Key changes whose image has an unchanged TOAST column ("moves"), combined with
// later changes of the same row in ONE batch: the applier must leave no row behind at
// an old key and must not mix two rows' values. Every scenario's writes are read from
// the real stream and handed to the applier in a single apply() call, over rows that
// are already in the shadow; then the shadow must equal the original.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import type { PostgresSession } from '../../src/dialects/postgres/postgres-dialect.js';
import type { ChangeEvent, ChangeStream, CopyPlan } from '../../src/dialects/dialect.js';
import type { ArtefactNames } from '../../src/dialects/dialect.js';
import { freshDb, makePlan, tableText } from './helpers.js';

let admin: pg.Client;
let session: PostgresSession;
let names: ArtefactNames;
let plan: CopyPlan;
let stream: ChangeStream;

/** Large and incompressible enough to be stored out of line: an UPDATE that leaves it alone sends it as "unchanged". */
const BODY = (id: string) => `(SELECT string_agg(md5(g::text || ':' || ${id}), '') FROM generate_series(1, 2000) g)`;

// Each scenario uses its own keys (100s, 200s, ...); the rows listed in `rows` exist and
// are copied before its writes.
const SCENARIOS: Array<{ name: string; rows: number[]; sql: string[] }> = [
  { name: 'move, then delete of the new key', rows: [101], sql: ['UPDATE mv SET id = 102 WHERE id = 101', 'DELETE FROM mv WHERE id = 102'] },
  { name: 'move, then a full image of the new key', rows: [201], sql: ['UPDATE mv SET id = 202 WHERE id = 201', `UPDATE mv SET body = body || 'x' WHERE id = 202`] },
  { name: 'move, partial update, then delete', rows: [301], sql: ['UPDATE mv SET id = 302 WHERE id = 301', 'UPDATE mv SET v = -1 WHERE id = 302', 'DELETE FROM mv WHERE id = 302'] },
  { name: 'chain 1→2→3, then delete', rows: [401], sql: ['UPDATE mv SET id = 402 WHERE id = 401', 'UPDATE mv SET id = 403, v = 7 WHERE id = 402', 'DELETE FROM mv WHERE id = 403'] },
  { name: 'chain 1→2→3, then a full image', rows: [501], sql: ['UPDATE mv SET id = 502 WHERE id = 501', 'UPDATE mv SET id = 503 WHERE id = 502', `UPDATE mv SET body = 'short' WHERE id = 503`] },
  { name: 'chain 1→2→3', rows: [601], sql: ['UPDATE mv SET id = 602 WHERE id = 601', 'UPDATE mv SET id = 603 WHERE id = 602'] },
  { name: '1→2, then 2→1', rows: [701], sql: ['UPDATE mv SET id = 702, v = 1 WHERE id = 701', 'UPDATE mv SET id = 701, v = 2 WHERE id = 702'] },
  { name: '1→2, then 2→1, then delete', rows: [801], sql: ['UPDATE mv SET id = 802 WHERE id = 801', 'UPDATE mv SET id = 801 WHERE id = 802', 'DELETE FROM mv WHERE id = 801'] },
  { name: 'move, then insert of the old key', rows: [901], sql: ['UPDATE mv SET id = 902 WHERE id = 901', `INSERT INTO mv VALUES (901, 0, 'new')`] },
  { name: 'move, then insert and delete of the old key', rows: [1001], sql: ['UPDATE mv SET id = 1002 WHERE id = 1001', `INSERT INTO mv VALUES (1001, 0, 'new')`, 'DELETE FROM mv WHERE id = 1001'] },
  { name: 'move onto a key freed in the same batch', rows: [1101, 1102], sql: ['DELETE FROM mv WHERE id = 1102', 'UPDATE mv SET id = 1102 WHERE id = 1101', 'UPDATE mv SET id = 1103 WHERE id = 1102'] },
  { name: 'swap two rows through a spare key', rows: [1201, 1202], sql: ['UPDATE mv SET id = 1200 WHERE id = 1201', 'UPDATE mv SET id = 1201 WHERE id = 1202', 'UPDATE mv SET id = 1202 WHERE id = 1200'] },
  { name: 'rotate three rows', rows: [1301, 1302, 1303], sql: ['UPDATE mv SET id = 1300 WHERE id = 1301', 'UPDATE mv SET id = 1301 WHERE id = 1302', 'UPDATE mv SET id = 1302 WHERE id = 1303', 'UPDATE mv SET id = 1303 WHERE id = 1300'] },
  { name: 'move, then a move of another row onto the old key, then delete', rows: [1401, 1403], sql: ['UPDATE mv SET id = 1402 WHERE id = 1401', 'UPDATE mv SET id = 1401 WHERE id = 1403', 'DELETE FROM mv WHERE id = 1402'] },
];

beforeAll(async () => {
  ({ admin, session } = await freshDb('pgmoves'));
  await admin.query(`CREATE TABLE mv (id int PRIMARY KEY, v int, body text)`);
  const ids = SCENARIOS.flatMap((s) => s.rows);
  await admin.query(`INSERT INTO mv SELECT id, id, ${BODY('id')} FROM unnest($1::int[]) AS id`, [ids]);
  const original = (await session.inspectTable({ schema: 'public', name: 'mv' }))!;
  names = session.artefactNames(original.ref, 'moves-job');
  const shadow = await session.createShadow(original, 'ADD COLUMN note text', names);
  plan = makePlan(original, shadow, session.analyzeAlter('ADD COLUMN note text'));
  stream = session.openChangeStream(plan, names, 'moves-job');
  await stream.start();
  // Every row is copied before the scenarios write.
  await session.copier.copyChunk(plan, { after: null, upTo: ['100000'] });
});
afterAll(async () => {
  await stream?.stop();
  await session?.close();
  await admin?.end();
});

/** Every event up to the marker, taken from the stream without applying any of them. */
async function eventsUntil(marker: string): Promise<{ events: ChangeEvent[]; position: string }> {
  await stream.writeMarker(marker);
  const events: ChangeEvent[] = [];
  const deadline = Date.now() + 20_000;
  for (;;) {
    const b = stream.take(100_000);
    if (b) {
      events.push(...b.events);
      if (b.markers.includes(marker)) return { events, position: b.position };
    } else await stream.waitForData(200);
    if (Date.now() > deadline) throw new Error(`marker ${marker} did not arrive`);
  }
}

/** The scenario's own key range, so that one scenario's failure does not show in the others. */
const snapshot = (table: string, base: number) => tableText(admin, `(SELECT id, v, md5(body) FROM ${table} WHERE id BETWEEN ${base} AND ${base + 99})`);

describe('moves (key change with unchanged TOAST) replaced later in the same batch', () => {
  for (const [i, s] of SCENARIOS.entries()) {
    it(s.name, async () => {
      for (const sql of s.sql) await admin.query(sql);
      const { events, position } = await eventsUntil(`moves-${i}`);
      expect(events.length).toBe(s.sql.length);
      // The premise: key changes arrive without the unchanged TOAST value.
      expect(events.some((e) => e.kind === 'update' && e.before !== null && e.after.body === undefined)).toBe(true);
      // One batch: coalesced and applied together.
      await session.applier.apply(plan, events);
      await stream.acknowledge(position);
      const base = Math.floor(s.rows[0]! / 100) * 100;
      expect(await snapshot(names.shadow, base)).toEqual(await snapshot('mv', base));
    });
  }
});

describe('keeping the shadow\'s other columns (a revert)', () => {
  it('gives a row new in the batch (re-inserted at a deleted key, or moved to a new key) the defaults, never a stale row\'s values', async () => {
    await admin.query('CREATE TABLE kept (id int PRIMARY KEY, n int NOT NULL)');
    const original = (await session.inspectTable({ schema: 'public', name: 'kept' }))!;
    const keptNames = session.artefactNames(original.ref, 'kept-job');
    const shadow = await session.createShadow(original, 'ADD COLUMN x int NOT NULL DEFAULT 0', keptNames);
    const keptPlan = { ...makePlan(original, shadow, session.analyzeAlter('ADD COLUMN x int NOT NULL DEFAULT 0')), keepsOtherColumns: true };
    await admin.query(`INSERT INTO "${keptNames.shadow}" (id, n, x) VALUES (1, 1, 11), (2, 2, 22), (3, 3, 33), (4, 4, 44), (5, 5, 55), (6, 6, 66)`);
    // Values as the stream gives them: text.
    const row = (id: number, n: number) => ({ id: String(id), n: String(n) });
    await session.applier.apply(keptPlan, [
      // Row 1 deleted and another row inserted at its key: the new row 1 is not the old one.
      { kind: 'delete', before: row(1, 1) },
      { kind: 'insert', after: row(1, 100) },
      // Row 2 deleted, row 3 moved to key 2: row 2's values must not stay with it.
      { kind: 'delete', before: row(2, 2) },
      { kind: 'update', before: row(3, 3), after: row(2, 30) },
      // Row 4 changed in place: it keeps its value.
      { kind: 'update', before: row(4, 4), after: row(4, 40) },
      // Row 6 deleted, row 5 moved to key 6 with a value left unchanged (a partial image), then a full image of it.
      { kind: 'delete', before: row(6, 6) },
      { kind: 'update', before: row(5, 5), after: { id: '6', n: undefined } },
      { kind: 'update', before: row(6, 5), after: row(6, 50) },
    ]);
    expect((await admin.query(`SELECT id, n, x FROM "${keptNames.shadow}" ORDER BY id`)).rows).toEqual([
      { id: 1, n: 100, x: 0 },
      { id: 2, n: 30, x: 0 }, // moved: written whole (the applier warns)
      { id: 4, n: 40, x: 44 },
      { id: 6, n: 50, x: 0 }, // moved, then written whole: never row 6's old value
    ]);
  });
});
