// Change stream + applier, exact values: every type the issue lists travels from the
// original to the shadow through pgoutput and the applier with ::text equality.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import type { PostgresSession } from '../../src/dialects/postgres/postgres-dialect.js';
import type { ChangeStream, CopyPlan } from '../../src/dialects/dialect.js';
import { drain, freshDb, makePlan, syncTo, tableText } from './helpers.js';

let admin: pg.Client;
let session: PostgresSession;

beforeAll(async () => {
  ({ admin, session } = await freshDb('pgstream'));
});
afterAll(async () => {
  await session?.close();
  await admin?.end();
});

const BIG = `(SELECT string_agg(md5(g::text || 'salt'), '') FROM generate_series(1, 40000) g)`; // 1.28 MB

const VALUES = [
  // int2, int4, int8, numeric, float4, float8, text, bytea, bool, date, time, timetz, timestamp, timestamptz, interval, uuid, json, jsonb, int[], text[], enum, domain, inet, cidr, macaddr
  `(-32768, -2147483648, -9223372036854775808, '-1234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890.000000000000000000001', 'NaN', 'NaN', E'\\uFEFFBOM first, emoji 🙂👍🏽, quote '' and \\\\ backslash', '\\x000102030405ff', true, '1999-12-31', '23:59:59.999999', '10:11:12.123456+05:45', '2001-02-03 04:05:06.789012', '2023-03-12 02:30:00.000001-05', '1 year 2 mons 3 days 04:05:06.789', '123e4567-e89b-12d3-a456-426614174000', '{"a": 9007199254740993, "b" : [1,2]}', '{"big": 9007199254740993, "n": 1.000000000000000000001}', '{1,2,NULL,4}', '{"a,b","c\\"d",NULL,""}', 'happy', 5, '192.168.1.1/24', '10.0.0.0/8', '08:00:2b:01:02:03')`,
  `(32767, 2147483647, 9223372036854775807, '0.1', 'Infinity', '-Infinity', '', '\\x', false, 'infinity', '00:00:00', '00:00:00-12', '-infinity', 'infinity', '-178000000 years', '00000000-0000-0000-0000-000000000000', '[]', '[]', '{}', '{}', 'sad', 1, '::1', '2001:db8::/32', 'ff:ff:ff:ff:ff:ff')`,
  `(0, 0, 0, 'NaN', '-Infinity', 'Infinity', 'null', decode(repeat('00ff7f80', 64), 'hex'), NULL, '0001-01-01 BC', '24:00:00', '23:59:59.999999+14', '4713-01-01 00:00:00 BC', '1970-01-01 00:00:00+00', '-1 days +00:00:00.000001', NULL, 'null', 'null', '{{1,2},{3,4}}', '{"NULL"}', 'ok', 2147483647, '0.0.0.0/0', '0.0.0.0/0', '00:00:00:00:00:00')`,
  `(1, 2, 3, '3.14159265358979323846264338327950288419716939937510', '3.4028235e+38', '1.7976931348623157e+308', repeat('x', 10000), NULL, true, '2024-02-29', '12:00:00.5', '12:00:00.5-03:30', '2024-02-29 12:00:00.5', '2024-11-03 01:30:00-04', '0 seconds', 'ffffffff-ffff-ffff-ffff-ffffffffffff', '{"a":1,"a":2}', '{"a":1,"a":2}', NULL, NULL, NULL, NULL, NULL, NULL, NULL)`,
];
const COLS = 'i2, i4, i8, num, f4, f8, t, b, bo, d, tm, ttz, ts, tstz, iv, u, j, jb, arr, tarr, m, dom, ip, cid, mac';

async function setupTypes(): Promise<void> {
  await admin.query(`CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')`);
  await admin.query(`CREATE DOMAIN posint AS int CHECK (VALUE > 0)`);
  await admin.query(`CREATE TABLE ty (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    i2 int2, i4 int4, i8 int8, num numeric, f4 float4, f8 float8, t text, b bytea, bo bool,
    d date, tm time, ttz timetz, ts timestamp, tstz timestamptz, iv interval, u uuid, j json, jb jsonb,
    arr int[], tarr text[], m mood, dom posint, ip inet, cid cidr, mac macaddr,
    big text,
    gen text GENERATED ALWAYS AS (coalesce(i4::text, 'none') || '/' || coalesce(length(big), 0)::text) STORED
  )`);
}

describe('change stream and applier', () => {
  let plan: CopyPlan;
  let stream: ChangeStream;

  it('delivers every type exactly, keeps unchanged TOAST, recomputes generated columns', async () => {
    await setupTypes();
    // Rows before the stream starts: brought by the copy.
    await admin.query(`INSERT INTO ty (${COLS}, big) VALUES ${VALUES[0]!.slice(0, -1)}, ${BIG})`);
    await admin.query(`INSERT INTO ty (${COLS}) VALUES ${VALUES[1]}`);
    const original = (await session.inspectTable({ schema: 'public', name: 'ty' }))!;
    const names = session.artefactNames(original.ref, 'types-job');
    const shadow = await session.createShadow(original, 'ADD COLUMN extra int', names);
    plan = makePlan(original, shadow, session.analyzeAlter('ADD COLUMN extra int'));
    stream = session.openChangeStream(plan, names, 'types-job');
    const start = await stream.start();
    expect(start).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);

    const bounds = (await session.copier.keyBounds(plan))!;
    expect(bounds.min).toEqual(['1']);
    const copied = await session.copier.copyChunk(plan, { after: null, upTo: bounds.max });
    expect(copied.rowsCopied).toBe(2);

    // Changes after the start: inserts of every value, an update that leaves the big value
    // untouched, a delete.
    for (const v of VALUES) await admin.query(`INSERT INTO ty (${COLS}) VALUES ${v}`);
    await admin.query(`INSERT INTO ty (${COLS}, big) VALUES ${VALUES[3]!.slice(0, -1)}, ${BIG})`);
    await admin.query(`UPDATE ty SET i4 = i4 + 1 WHERE id = 1`); // big is TOASTed and unchanged
    await admin.query(`UPDATE ty SET i4 = 42 WHERE id = 7`); // big TOASTed, unchanged, row inserted in the stream
    await admin.query(`DELETE FROM ty WHERE id = 2`);
    await admin.query(`UPDATE ty SET t = 'changed' WHERE id = 3`);

    await stream.writeMarker('m1');
    const { events, markers } = await drain(session, stream, plan, { until: (_e, m) => m.includes('m1') });
    expect(markers).toEqual(['m1']);
    const kinds = events.map((e) => e.kind);
    expect(kinds).toEqual(['insert', 'insert', 'insert', 'insert', 'insert', 'update', 'update', 'delete', 'update']);
    // Raw text, not parsed: int8, numeric, jsonb and timestamptz exactly as the server printed them.
    const first = events[0]!;
    expect(first.kind).toBe('insert');
    if (first.kind === 'insert') {
      expect(first.after.i8).toBe('-9223372036854775808');
      expect(first.after.jb).toBe('{"n": 1.000000000000000000001, "big": 9007199254740993}');
      expect(first.after.b).toBe('\\x000102030405ff');
      expect(first.after.tstz).toBe('2023-03-12 03:30:00.000001-04');
      expect((first.after.t as string).codePointAt(0)).toBe(0xfeff);
    }
    const toastUpdate = events[5]!;
    expect(toastUpdate.kind).toBe('update');
    if (toastUpdate.kind === 'update') {
      expect(toastUpdate.after.big).toBeUndefined();
      expect('big' in toastUpdate.after).toBe(true);
      expect(toastUpdate.after.i4).toBe('-2147483647');
    }

    const cols = `id, ${COLS}, big, gen`;
    const o = await admin.query(`SELECT (${cols})::text AS r FROM ty ORDER BY id`);
    const s = await admin.query(`SELECT (${cols})::text AS r FROM ${names.shadow} ORDER BY id`);
    expect(s.rows.length).toBe(o.rows.length);
    for (let i = 0; i < o.rows.length; i++) expect(s.rows[i].r).toBe(o.rows[i].r);
    const big = await admin.query(`SELECT id, length(big) AS l, md5(big) AS h FROM ${names.shadow} WHERE big IS NOT NULL ORDER BY id`);
    const bigO = await admin.query(`SELECT id, length(big) AS l, md5(big) AS h FROM ty WHERE big IS NOT NULL ORDER BY id`);
    expect(big.rows).toEqual(bigO.rows);
    expect(big.rows.map((r) => r.l)).toEqual([1280000, 1280000]);

    // Identity continues past the copied values when the shadow is used later (cut-over test);
    // here: the shadow's identity column accepted the original's values.
    const ids = await admin.query(`SELECT array_agg(id ORDER BY id)::text AS ids FROM ${names.shadow}`);
    expect(ids.rows[0].ids).toBe('{1,3,4,5,6,7}');
  });

  it('TRUNCATE arrives as a truncate event and the applier refuses it', async () => {
    await admin.query(`TRUNCATE ty`);
    await stream.writeMarker('t1');
    const events = [];
    const deadline = Date.now() + 10_000;
    for (;;) {
      const b = stream.take(100);
      if (b) {
        events.push(...b.events);
        if (b.markers.includes('t1')) break;
      } else await stream.waitForData(200);
      if (Date.now() > deadline) throw new Error('no marker');
    }
    expect(events).toEqual([{ kind: 'truncate' }]);
    await expect(session.applier.apply(plan, events)).rejects.toThrow(/TRUNCATE/);
  });

  it('stop() drops the slot and the publication', async () => {
    await stream.stop();
    const slots = await admin.query(`SELECT slot_name FROM pg_replication_slots WHERE database = current_database() AND slot_name LIKE '\\_ss\\_%'`);
    const pubs = await admin.query(`SELECT pubname FROM pg_publication WHERE pubname LIKE '\\_ss\\_%'`);
    expect(slots.rows).toEqual([]);
    expect(pubs.rows).toEqual([]);
  });
});

describe('key changes, TOAST and reconnects', () => {
  it('moves rows whose key changed, keeping unchanged TOAST, across a dropped connection', async () => {
    await admin.query(`CREATE TABLE kc (id int PRIMARY KEY, v int, email text UNIQUE, big text)`);
    await admin.query(`INSERT INTO kc SELECT g, g, 'e' || g, CASE WHEN g % 10 = 0 THEN ${BIG} END FROM generate_series(1, 100) g`);
    const original = (await session.inspectTable({ schema: 'public', name: 'kc' }))!;
    const names = session.artefactNames(original.ref, 'kc-job');
    const shadow = await session.createShadow(original, 'ADD COLUMN note text', names);
    const plan = makePlan(original, shadow, session.analyzeAlter('ADD COLUMN note text'));
    const stream = session.openChangeStream(plan, names, 'kc-job');
    await stream.start();
    try {
      // Copy only the first half now.
      await session.copier.copyChunk(plan, { after: null, upTo: ['50'] });
      // Key change with unchanged TOAST: from a copied chunk into an uncopied one and back.
      await admin.query(`UPDATE kc SET id = 1010 WHERE id = 10`); // copied row -> moves
      await admin.query(`UPDATE kc SET id = 20000 WHERE id = 90`); // uncopied row -> beyond the copy
      await admin.query(`UPDATE kc SET id = 5 + 1000 WHERE id = 5`);
      await admin.query(`INSERT INTO kc (id, v, email) VALUES (5, -5, 'new5')`); // reuse a freed key
      // Swap a unique value between two rows in one transaction (coalescing would collide).
      await admin.query(`BEGIN; UPDATE kc SET email = 'tmp' WHERE id = 1; UPDATE kc SET email = 'e1' WHERE id = 2; UPDATE kc SET email = 'e2' WHERE id = 1; COMMIT`);
      await syncTo(session, stream, plan, 'k1');

      // Drop the replication connection: the stream reconnects with a new service object.
      const pid = await admin.query(`SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1`, [names.extra.slot]);
      await admin.query(`SELECT pg_terminate_backend($1)`, [pid.rows[0].active_pid]);
      await admin.query(`UPDATE kc SET v = v * 10 WHERE id BETWEEN 30 AND 40`);
      await admin.query(`DELETE FROM kc WHERE id = 33`);
      await admin.query(`UPDATE kc SET id = 3000 WHERE id = 30`); // TOAST unchanged, copied row
      await syncTo(session, stream, plan, 'k2');

      await session.copier.copyChunk(plan, { after: ['50'], upTo: ['30000'] });
      await syncTo(session, stream, plan, 'k3');
      const o = await tableText(admin, `(SELECT id, v, email, md5(big) FROM kc)`);
      const s = await tableText(admin, `(SELECT id, v, email, md5(big) FROM ${names.shadow})`);
      expect(s).toEqual(o);
      const bigCount = await admin.query(`SELECT count(big)::int AS n FROM ${names.shadow}`);
      expect(bigCount.rows[0].n).toBe(10);
    } finally {
      await stream.stop();
    }
    const slots = await admin.query(`SELECT slot_name FROM pg_replication_slots WHERE database = current_database()`);
    expect(slots.rows).toEqual([]);
  });
});
