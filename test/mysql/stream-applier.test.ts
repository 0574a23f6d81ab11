// The change stream delivers every type exactly as the server wrote it (compared as
// HEX after applying through the applier), markers, resume-safe positions; the applier
// coalesces and handles key changes; stop() leaves no binlog dump thread.

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import type { Connection } from 'mysql2/promise';
import type { MysqlSession } from '../../src/dialects/mysql/mysql-dialect.js';
import type { ChangeEvent } from '../../src/dialects/dialect.js';
import { MysqlChangeStream, parsePosition } from '../../src/dialects/mysql/mysql-change-stream.js';
import { DataLossError } from '../../src/util/errors.js';
import { drain, freshDb, hexRows, prepareShadow } from './helpers.js';
import { mysqlSeq } from '../support/db.js';
import { waitUntil } from '../support/alter.js';

let session: MysqlSession;
let admin: Connection;
let schema: string;

beforeAll(async () => {
  ({ session, admin, name: schema } = await freshDb('stream'));
});
afterAll(async () => {
  await session?.close();
  await admin?.end();
});

const TYPES: Array<[string, string]> = [
  ['biu', 'BIGINT UNSIGNED'], ['bi', 'BIGINT'], ['i', 'INT'], ['iu', 'INT UNSIGNED'], ['ti', 'TINYINT'], ['mi', 'MEDIUMINT UNSIGNED'],
  ['dec65', 'DECIMAL(65,30)'], ['fl', 'FLOAT'], ['db', 'DOUBLE'],
  ['dt6', 'DATETIME(6)'], ['dt0', 'DATETIME'], ['ts6', 'TIMESTAMP(6) NULL'], ['ts0', 'TIMESTAMP NULL'], ['d', 'DATE'], ['t6', 'TIME(6)'], ['yr', 'YEAR'],
  ['en', "ENUM('small','medium','large')"], ['st', "SET('a','b','c','d')"],
  ['b1', 'BIT(1)'], ['b13', 'BIT(13)'], ['b64', 'BIT(64)'],
  ['js', 'JSON'], ['bl', 'BLOB'], ['bn', 'BINARY(8)'], ['vb', 'VARBINARY(20)'],
  ['l1', 'VARCHAR(50) CHARACTER SET latin1'], ['u8', 'VARCHAR(100) CHARACTER SET utf8mb4'], ['tx', 'TEXT CHARACTER SET utf8mb4'],
];
const COLS = TYPES.map(([n]) => n);

const ROWS = [
  `(1, 18446744073709551615, 9223372036854775807, 2147483647, 4294967295, 127, 16777215,
    '99999999999999999999999999999999999.999999999999999999999999999999', 3.40282e38, 1.7976931348623157e308,
    '9999-12-31 23:59:59.999999', '2020-02-29 12:34:56', '2038-01-19 08:44:07.999999', '2038-01-19 08:44:07', '9999-12-31', '838:59:59.000000', 2155,
    'large', 'a,c,d', b'1', b'1010101010101', b'1111111111111111111111111111111111111111111111111111111111111111',
    '{"big": 12345678901234567890, "f": 0.1, "s": "ü"}', X'000102FEFF000000', X'0102000000000000', X'00FF0000',
    'café ß ÿ', 'emoji 🚀👩‍👩‍👧 ✓', REPEAT('long 😀 ', 300))`,
  `(2, 0, -9223372036854775808, -2147483648, 0, -128, 0,
    '-0.000000000000000000000000000001', -1.17549e-38, 2.2250738585072014e-308,
    '1000-01-01 00:00:00.000000', '1000-01-01 00:00:00', '1970-01-01 05:30:01.000001', '1970-01-01 05:30:01', '1000-01-01', '-838:59:59.000000', 1901,
    'small', '', b'0', b'0', b'0',
    '[]', X'', X'0000000000000000', X'',
    '', '', '')`,
  `(3, 9007199254740993, -9007199254740993, 0, 1, 0, 1, '0.1', 0.1, 0.1, '2024-06-30 23:59:59.5', '2024-06-30 23:59:59', '2024-03-31 02:30:00.25', '2024-10-27 01:30:00', '2024-02-29', '-00:00:01.500000', 2000,
    'medium', 'b', b'1', b'1', b'1', '{"a": [1, null, true]}', X'00', X'FF', X'FF', 'x', 'y', 'z')`,
  `(4, ${COLS.map(() => 'NULL').join(', ')})`,
];

describe('change stream + applier', () => {
  it('deliver every type exactly, as inserts, updates and deletes', async () => {
    await admin.query(`CREATE TABLE types (id INT PRIMARY KEY, ${TYPES.map(([n, t]) => `${n} ${t}`).join(', ')})`);
    const { plan, names } = await prepareShadow(session, schema, 'types', 'ADD COLUMN extra INT NOT NULL DEFAULT 1');
    const stream = session.openChangeStream(plan, names, 'job-types');
    const start = await stream.start();
    expect(parsePosition(start).position).toBeGreaterThan(0);

    await admin.query(`INSERT INTO types (id, ${COLS.join(', ')}) VALUES ${ROWS.join(', ')}`);
    // Updates that carry the extremes across rows, a key change, and a delete.
    await admin.query(`UPDATE types t JOIN types s ON s.id = 1 SET ${COLS.map((c) => `t.${c} = s.${c}`).join(', ')} WHERE t.id = 4`);
    await admin.query(`UPDATE types t JOIN types s ON s.id = 2 SET ${COLS.map((c) => `t.${c} = s.${c}`).join(', ')} WHERE t.id = 1`);
    await admin.query(`UPDATE types SET id = 30 WHERE id = 3`);
    await admin.query(`INSERT INTO types (id, ${COLS.join(', ')}) VALUES ${ROWS[0]!.replace('(1,', '(5,')}`);
    await admin.query(`DELETE FROM types WHERE id = 2`);
    await stream.writeMarker('m1');
    const got = await drain(session, stream, plan, (_e, m) => m.includes('m1'));
    expect(got.events.map((e) => e.kind)).toEqual(['insert', 'insert', 'insert', 'insert', 'update', 'update', 'update', 'insert', 'delete']);

    // Exact values: the shadow must equal the original byte for byte.
    expect(await hexRows(admin, names.shadow, COLS)).toEqual(await hexRows(admin, 'types', COLS));
    expect(Object.keys(await hexRows(admin, names.shadow, COLS))).toEqual(['1', '4', '5', '30']);

    // And against literals, so a conversion applied to both sides cannot hide.
    const [[r]] = (await admin.query(
      `SELECT CAST(biu AS CHAR) AS biu, CAST(dec65 AS CHAR) AS dec65, CAST(ts6 AS CHAR) AS ts6, CAST(dt6 AS CHAR) AS dt6, HEX(bn) AS bn, HEX(b64) AS b64, l1, u8, CONCAT('', js) AS js FROM \`${names.shadow}\` WHERE id = 5`,
    )) as unknown as [[Record<string, string>]];
    expect(r).toMatchObject({
      biu: '18446744073709551615',
      dec65: '99999999999999999999999999999999999.999999999999999999999999999999',
      ts6: '2038-01-19 08:44:07.999999', // read in the test server's +05:30 session, like the original
      dt6: '9999-12-31 23:59:59.999999',
      bn: '0102000000000000',
      b64: 'FFFFFFFFFFFFFFFF',
      l1: 'café ß ÿ',
      u8: 'emoji 🚀👩‍👩‍👧 ✓',
    });
    expect(String(r.js)).toContain('12345678901234567890');

    // Values arrive as strings/Buffers/exact numbers, never a Date.
    const first = got.events[0] as Extract<ChangeEvent, { kind: 'insert' }>;
    expect(first.after.biu).toBe('18446744073709551615');
    expect(first.after.bi).toBe('9223372036854775807');
    expect(first.after.dt6).toBe('9999-12-31 23:59:59.999999');
    expect(first.after.ts6).toBe('2038-01-19 03:14:07.999999'); // UTC
    expect(Buffer.isBuffer(first.after.bn)).toBe(true);
    expect(Object.values(first.after).some((v) => (v as unknown) instanceof Date)).toBe(false);
    await stream.stop();
    await session.dropArtefacts(names, { keepBackup: false });
  });

  it('positions are resume-safe: restarting from one replays nothing twice that matters and misses nothing', async () => {
    await admin.query('CREATE TABLE rs (id INT PRIMARY KEY, v INT)');
    const { plan, names } = await prepareShadow(session, schema, 'rs', 'ADD COLUMN w INT');
    const s1 = session.openChangeStream(plan, names, 'job-rs');
    await s1.start();
    await admin.query('INSERT INTO rs VALUES (1, 1), (2, 2)');
    await s1.writeMarker('a');
    const first = await drain(session, s1, plan, (_e, m) => m.includes('a'));
    const resumeAt = first.positions[first.positions.length - 1]!;
    await s1.stop();
    // While nothing reads the binlog:
    await admin.query('UPDATE rs SET v = 10 WHERE id = 1');
    await admin.query('INSERT INTO rs VALUES (3, 3)');
    await admin.query('DELETE FROM rs WHERE id = 2');
    const s2 = session.openChangeStream(plan, names, 'job-rs');
    expect(await s2.start(resumeAt)).toBe(resumeAt);
    await s2.writeMarker('b');
    const second = await drain(session, s2, plan, (_e, m) => m.includes('b'));
    expect(second.events.map((e) => e.kind)).toEqual(['update', 'insert', 'delete']);
    const [rows] = await admin.query(`SELECT id, v FROM \`${names.shadow}\` ORDER BY id`);
    expect(rows).toEqual([{ id: 1, v: 10 }, { id: 3, v: 3 }]);
    await s2.stop();
    await session.dropArtefacts(names, { keepBackup: false });
  });

  it('stop() returns promptly and leaves no binlog dump thread; a killed dump fails the stream', async () => {
    await admin.query('CREATE TABLE st (id INT PRIMARY KEY)');
    const { plan, names } = await prepareShadow(session, schema, 'st', 'ADD COLUMN w INT');
    const dumpThreads = async () => {
      const [r] = (await admin.query(`SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'`)) as unknown as [Array<{ ID: number | string }>];
      return r.map((x) => Number(x.ID));
    };
    const s = session.openChangeStream(plan, names, 'job-st') as MysqlChangeStream;
    await s.start();
    await waitUntil(async () => s.dumpThreadId !== undefined && s.dumpThreadId !== null && (await dumpThreads()).includes(s.dumpThreadId), 'the binlog dump thread to show', 20_000);
    const id = s.dumpThreadId!;
    const t0 = Date.now();
    await s.stop();
    expect(Date.now() - t0).toBeLessThan(3000);
    await waitUntil(async () => !(await dumpThreads()).includes(id), 'the dump thread to go', 20_000);

    const s2 = session.openChangeStream(plan, names, 'job-st2') as MysqlChangeStream;
    await s2.start();
    await new Promise((r) => setTimeout(r, 200));
    const id2 = s2.dumpThreadId!;
    expect(await dumpThreads()).toContain(id2);
    await admin.query(`KILL ${id2}`);
    await expect(Promise.race([s2.failed, new Promise((r) => setTimeout(() => r('not failed'), 5000))])).rejects.toThrow(/binlog reader failed/);
    await s2.stop();
    await session.dropArtefacts(names, { keepBackup: false });
  });

  it('bounds its queue: the binlog connection is paused while the backlog is full, and nothing is lost', async () => {
    await admin.query('CREATE TABLE bq (id INT PRIMARY KEY, pad VARCHAR(100))');
    const { plan, names } = await prepareShadow(session, schema, 'bq', 'ADD COLUMN w INT');
    const s = new MysqlChangeStream(session.ctx, plan, names.changelog, 'shadowshift:bq:', 500);
    await s.start();
    for (let i = 0; i < 10; i++) await admin.query(`INSERT INTO bq SELECT seq, REPEAT('x', 100) FROM ${mysqlSeq(i * 1000 + 1, (i + 1) * 1000)}`);
    let peak = 0;
    const deadline = Date.now() + 3000;
    while (Date.now() < deadline && !s.isPaused) await new Promise((r) => setTimeout(r, 20));
    expect(s.isPaused).toBe(true);
    await new Promise((r) => setTimeout(r, 300));
    peak = s.backlog();
    // Paused: it stops near the bound (what was already in the socket buffer still decodes).
    expect(peak).toBeLessThan(2000);
    const got = await drain(session, s, plan, (e) => e.length >= 10_000);
    expect(got.events).toHaveLength(10_000);
    const [[c]] = (await admin.query(`SELECT COUNT(*) AS n FROM \`${names.shadow}\``)) as unknown as [[{ n: string }]];
    expect(c.n).toBe('10000');
    await s.stop();
    await session.dropArtefacts(names, { keepBackup: false });
  });

  it('reports a server id clash (errno 4052) as a failure', async () => {
    await admin.query('CREATE TABLE sid (id INT PRIMARY KEY)');
    const { plan, names } = await prepareShadow(session, schema, 'sid', 'ADD COLUMN w INT');
    const a = session.openChangeStream(plan, names, 'job-a') as MysqlChangeStream;
    const b = session.openChangeStream(plan, names, 'job-b') as MysqlChangeStream;
    (b as unknown as { serverId: number }).serverId = a.serverId;
    await a.start();
    await b.start();
    const failure = await Promise.race([a.failed.catch((e: Error) => e), b.failed.catch((e: Error) => e), new Promise((r) => setTimeout(() => r(null), 5000))]);
    expect(String(failure)).toMatch(/4052|server id/);
    await a.stop();
    await b.stop();
    await session.dropArtefacts(names, { keepBackup: false });
  });
});

describe('applier', () => {
  it('coalesces by key and turns key-changing updates into delete + upsert', async () => {
    await admin.query('CREATE TABLE ap (id INT PRIMARY KEY, u VARCHAR(10) NOT NULL, v INT, UNIQUE KEY u_u (u))');
    await admin.query("INSERT INTO ap VALUES (1, 'a', 1), (2, 'b', 2), (3, 'c', 3)");
    const { plan, names } = await prepareShadow(session, schema, 'ap', 'ADD COLUMN w INT DEFAULT 9');
    await session.copier.copyChunk(plan, { after: null, upTo: [3] });
    const ev: ChangeEvent[] = [
      { kind: 'insert', after: { id: 4, u: 'd', v: 4 } },
      { kind: 'update', before: { id: 4, u: 'd', v: 4 }, after: { id: 4, u: 'd', v: 40 } },
      { kind: 'update', before: { id: 4, u: 'd', v: 40 }, after: { id: 5, u: 'd', v: 50 } }, // key change
      { kind: 'update', before: { id: 1, u: 'a', v: 1 }, after: { id: 1, u: 'tmp', v: 1 } }, // swap unique values via a temp
      { kind: 'update', before: { id: 2, u: 'b', v: 2 }, after: { id: 2, u: 'a', v: 2 } },
      { kind: 'update', before: { id: 1, u: 'tmp', v: 1 }, after: { id: 1, u: 'b', v: 1 } },
      { kind: 'delete', before: { id: 3, u: 'c', v: 3 } },
      { kind: 'insert', after: { id: 3, u: 'c2', v: 33 } },
      { kind: 'insert', after: { id: 6, u: 'f', v: 6 } },
      { kind: 'delete', before: { id: 6, u: 'f', v: 6 } },
    ];
    await session.applier.apply(plan, ev);
    const [rows] = await admin.query(`SELECT id, u, v, w FROM \`${names.shadow}\` ORDER BY id`);
    expect(rows).toEqual([
      { id: 1, u: 'b', v: 1, w: 9 },
      { id: 2, u: 'a', v: 2, w: 9 },
      { id: 3, u: 'c2', v: 33, w: 9 },
      { id: 5, u: 'd', v: 50, w: 9 },
    ]);
    // Applying the same batch again changes nothing (idempotent).
    await session.applier.apply(plan, ev);
    expect((await admin.query(`SELECT id, u, v, w FROM \`${names.shadow}\` ORDER BY id`))[0]).toEqual(rows);
    await session.dropArtefacts(names, { keepBackup: false });
  });

  it('a duplicate on a new unique key fails; one on a key the original enforces is replaced', async () => {
    await admin.query('CREATE TABLE nu (id INT PRIMARY KEY, code INT NOT NULL, b INT, UNIQUE KEY u_code (code))');
    await admin.query('INSERT INTO nu VALUES (1, 1, 1), (2, 2, 2)');
    const { plan, names } = await prepareShadow(session, schema, 'nu', 'ADD UNIQUE KEY u_b (b)');
    expect(plan.newUniqueIndexes).toEqual(['u_b']);
    await session.copier.copyChunk(plan, { after: null, upTo: [2] });
    // Old unique key: a stale row (id 2 still has code 2 in the shadow) is replaced.
    await session.applier.apply(plan, [{ kind: 'insert', after: { id: 3, code: 2, b: 3 } }]);
    const [rows] = await admin.query(`SELECT id, code, b FROM \`${names.shadow}\` ORDER BY id`);
    expect(rows).toEqual([{ id: 1, code: 1, b: 1 }, { id: 3, code: 2, b: 3 }]);
    // New unique key: a real conflict.
    const err = await session.applier.apply(plan, [{ kind: 'insert', after: { id: 4, code: 4, b: 1 } }]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DataLossError);
    expect((err as Error).message).toMatch(/u_b/);
    // The failed transaction left nothing.
    expect((await admin.query(`SELECT id FROM \`${names.shadow}\` ORDER BY id`))[0]).toEqual([{ id: 1 }, { id: 3 }]);
    await session.dropArtefacts(names, { keepBackup: false });
  });

  it('maps renamed columns and drops unmapped ones', async () => {
    await admin.query('CREATE TABLE rn (id INT PRIMARY KEY, a INT, gone INT, g INT AS (a + 1) VIRTUAL)');
    const { plan, names } = await prepareShadow(session, schema, 'rn', 'CHANGE a aa INT, DROP COLUMN gone');
    await session.applier.apply(plan, [{ kind: 'insert', after: { id: 1, a: 5, gone: 7, g: 6 } }]);
    const [rows] = await admin.query(`SELECT id, aa, g FROM \`${names.shadow}\``);
    expect(rows).toEqual([{ id: 1, aa: 5, g: 6 }]);
    await session.dropArtefacts(names, { keepBackup: false });
  });
});

describe('applier keeping the shadow\'s other columns (a revert)', () => {
  it('changes rows in place, and never overwrites a stale row that holds a unique value with another row', async () => {
    await admin.query("CREATE TABLE kept (id INT PRIMARY KEY, email VARCHAR(20) NOT NULL, n INT NOT NULL, UNIQUE KEY uk_email (email))");
    const { plan: built, names } = await prepareShadow(session, schema, 'kept', 'ADD COLUMN x INT NOT NULL DEFAULT 0');
    const plan = { ...built, keepsOtherColumns: true };
    // The shadow as a revert finds it: the old table's rows, with values of x the live table has no column for.
    await admin.query(`INSERT INTO \`${names.shadow}\` (id, email, n, x) VALUES (1, 'a', 1, 11), (2, 'b', 2, 22), (5, 'e', 5, 55)`);
    const row = (id: number, email: string, n: number) => ({ id, email, n });
    await session.applier.apply(plan, [
      { kind: 'update', before: row(2, 'b', 2), after: row(2, 'b', 20) },
      { kind: 'insert', after: row(6, 'f', 6) },
    ]);
    // id 1 gives up 'a', id 3 takes it, then id 1 changes again: id 3 comes first in the batch, while
    // the shadow's row 1 still holds 'a'. An in-place upsert of id 3 would update row 1 into row 3,
    // carrying row 1's x (11) over to a row it never belonged to.
    await session.applier.apply(plan, [
      { kind: 'update', before: row(1, 'a', 1), after: row(1, 'c', 1) },
      { kind: 'insert', after: row(3, 'a', 3) },
      { kind: 'update', before: row(1, 'c', 1), after: row(1, 'c', 10) },
      { kind: 'delete', before: row(5, 'e', 5) },
    ]);
    const [rows] = await admin.query(`SELECT id, email, n, x FROM \`${names.shadow}\` ORDER BY id`);
    expect(rows).toEqual([
      { id: 1, email: 'c', n: 10, x: 0 }, // replaced as stale by id 3 (the applier warns): its x is lost, not moved
      { id: 2, email: 'b', n: 20, x: 22 },
      { id: 3, email: 'a', n: 3, x: 0 },
      { id: 6, email: 'f', n: 6, x: 0 },
    ]);
  });

  it('gives a row new in the batch (re-inserted at a deleted key, or moved to a new key) the defaults, never a stale row\'s values', async () => {
    await admin.query('CREATE TABLE kept2 (id INT PRIMARY KEY, n INT NOT NULL)');
    const { plan: built, names } = await prepareShadow(session, schema, 'kept2', 'ADD COLUMN x INT NOT NULL DEFAULT 0');
    const plan = { ...built, keepsOtherColumns: true };
    await admin.query(`INSERT INTO \`${names.shadow}\` (id, n, x) VALUES (1, 1, 11), (2, 2, 22), (3, 3, 33), (4, 4, 44)`);
    await session.applier.apply(plan, [
      // Row 1 deleted and another row inserted at its key: the new row 1 is not the old one.
      { kind: 'delete', before: { id: 1, n: 1 } },
      { kind: 'insert', after: { id: 1, n: 100 } },
      // Row 2 deleted, row 3 moved to key 2: row 2's values must not stay with it.
      { kind: 'delete', before: { id: 2, n: 2 } },
      { kind: 'update', before: { id: 3, n: 3 }, after: { id: 2, n: 30 } },
      // Row 4 changed in place: it keeps its value.
      { kind: 'update', before: { id: 4, n: 4 }, after: { id: 4, n: 40 } },
    ]);
    const [rows] = await admin.query(`SELECT id, n, x FROM \`${names.shadow}\` ORDER BY id`);
    expect(rows).toEqual([
      { id: 1, n: 100, x: 0 },
      { id: 2, n: 30, x: 0 }, // moved: written whole (the applier warns)
      { id: 4, n: 40, x: 44 },
    ]);
  });
});
