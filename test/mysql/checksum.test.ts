// The checksummer: equal tables compare equal on one snapshot, a changed shadow row is
// found, recopy() repairs it; writes wait only for the drain.

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import type { Connection } from 'mysql2/promise';
import type { MysqlSession } from '../../src/dialects/mysql/mysql-dialect.js';
import { comparedColumns } from '../../src/dialects/mysql/mysql-checksum.js';
import { freshDb, prepareShadow } from './helpers.js';

let session: MysqlSession;
let admin: Connection;
let schema: string;

beforeAll(async () => {
  ({ session, admin, name: schema } = await freshDb('cks'));
});
afterAll(async () => {
  await session?.close();
  await admin?.end();
});

describe('checksummer', () => {
  it('finds a differing row and recopy repairs it', async () => {
    await admin.query("CREATE TABLE ck (id INT PRIMARY KEY, s VARCHAR(20) CHARACTER SET latin1, b VARBINARY(8), d DECIMAL(10,2), n INT)");
    await admin.query("INSERT INTO ck SELECT seq, CONCAT('é', seq), UNHEX(HEX(seq)), seq / 7, IF(seq % 3 = 0, NULL, seq) FROM seq_1_to_300");
    const { plan, names } = await prepareShadow(session, schema, 'ck', 'MODIFY d DECIMAL(12,4), CONVERT TO CHARACTER SET utf8mb4');
    // d changed type: not hashed (its text differs while the value is the same); the rest is.
    expect(comparedColumns(plan).map((c) => c.source)).toEqual(['id', 's', 'b', 'n']);
    await session.copier.copyChunk(plan, { after: null, upTo: [300] });
    let drained = 0;
    const view = await session.checksummer.open(plan, { lockTimeoutMs: 2000, drainUnderLock: async () => void drained++ });
    expect(drained).toBe(1);
    expect(await view.compare({ after: null, upTo: [300] })).toEqual({ same: true, originalRows: 300, shadowRows: 300 });
    await view.close();

    await admin.query(`UPDATE \`${names.shadow}\` SET n = NULL WHERE id = 100`); // NULL vs value
    await admin.query(`UPDATE \`${names.shadow}\` SET b = CONCAT(b, X'00') WHERE id = 200`); // a trailing zero byte
    await admin.query(`DELETE FROM \`${names.shadow}\` WHERE id = 250`);
    const v2 = await session.checksummer.open(plan, { lockTimeoutMs: 2000, drainUnderLock: async () => undefined });
    expect((await v2.compare({ after: null, upTo: [50] })).same).toBe(true);
    expect(await v2.compare({ after: [50], upTo: [150] })).toMatchObject({ same: false, originalRows: 100, shadowRows: 100 });
    expect((await v2.compare({ after: [150], upTo: [220] })).same).toBe(false);
    expect(await v2.compare({ after: [220], upTo: [300] })).toMatchObject({ same: false, originalRows: 80, shadowRows: 79 });
    await v2.close();
    await session.checksummer.recopy(plan, { after: null, upTo: [300] });
    const v3 = await session.checksummer.open(plan, { lockTimeoutMs: 2000, drainUnderLock: async () => undefined });
    expect((await v3.compare({ after: null, upTo: [300] })).same).toBe(true);
    await v3.close();
    await session.dropArtefacts(names, { keepBackup: false });
  });

  it('the snapshot is the moment of the lock: later writes to the original do not show', async () => {
    await admin.query('CREATE TABLE ck2 (id INT PRIMARY KEY, v INT)');
    await admin.query('INSERT INTO ck2 VALUES (1, 1), (2, 2)');
    const { plan, names } = await prepareShadow(session, schema, 'ck2', 'ADD COLUMN w INT');
    await session.copier.copyChunk(plan, { after: null, upTo: [2] });
    const view = await session.checksummer.open(plan, { lockTimeoutMs: 2000, drainUnderLock: async () => undefined });
    await admin.query('UPDATE ck2 SET v = 5 WHERE id = 1'); // not blocked any more, and not seen by the view
    expect((await view.compare({ after: null, upTo: [2] })).same).toBe(true);
    await view.close();
    await session.dropArtefacts(names, { keepBackup: false });
  });
});
