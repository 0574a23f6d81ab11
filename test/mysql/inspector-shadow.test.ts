// The inspector, previewShadow (leaves nothing, reports the server's message) and createShadow.

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import type { Connection } from 'mysql2/promise';
import type { MysqlSession } from '../../src/dialects/mysql/mysql-dialect.js';
import { ShadowshiftError } from '../../src/util/errors.js';
import { freshDb, tableNames } from './helpers.js';

let session: MysqlSession;
let admin: Connection;
let schema: string;

beforeAll(async () => {
  ({ session, admin, name: schema } = await freshDb('insp'));
  await admin.query(`CREATE TABLE parent (id INT PRIMARY KEY, code VARCHAR(10) NOT NULL, UNIQUE KEY u_code (code))`);
  await admin.query(`CREATE TABLE t (
      id BIGINT UNSIGNED NOT NULL,
      region CHAR(2) NOT NULL,
      amount DECIMAL(12,2) DEFAULT NULL,
      note VARCHAR(255) CHARACTER SET latin1,
      parent_id INT,
      v_gen BIGINT AS (id * 2) VIRTUAL,
      s_gen BIGINT AS (id + 1) STORED,
      PRIMARY KEY (id, region),
      UNIQUE KEY u_note (note(20)),
      KEY k_amount (amount, note),
      CONSTRAINT fk_parent FOREIGN KEY (parent_id) REFERENCES parent (id)
    )`);
  await admin.query(`CREATE TABLE child (id INT PRIMARY KEY, t_id BIGINT UNSIGNED, t_region CHAR(2), CONSTRAINT fk_t FOREIGN KEY (t_id, t_region) REFERENCES t (id, region))`);
  await admin.query(`CREATE TRIGGER trg_t BEFORE INSERT ON t FOR EACH ROW SET NEW.amount = COALESCE(NEW.amount, 0)`);
  await admin.query(`INSERT INTO t (id, region, amount, note) VALUES (1, 'eu', 1.5, 'a'), (2, 'us', NULL, 'b')`);
  await admin.query('ANALYZE TABLE t');
});
afterAll(async () => {
  await session?.close();
  await admin?.end();
});

describe('inspector', () => {
  it('returns null for a missing table', async () => {
    expect(await session.inspectTable({ schema, name: 'nope' })).toBeNull();
    expect(await session.inspectTable({ schema: 'no_such_db_x', name: 't' })).toBeNull();
  });

  it('describes columns, indexes, foreign keys on both sides, triggers and size', async () => {
    const info = (await session.inspectTable({ schema, name: 't' }))!;
    expect(info.columns).toEqual([
      { name: 'id', type: 'bigint(20) unsigned', nullable: false, generated: false, comparison: { rule: 'integer' } },
      { name: 'region', type: 'char(2)', nullable: false, generated: false, charset: 'utf8mb4', collation: 'utf8mb4_unicode_ci', comparison: { rule: 'collation utf8mb4_unicode_ci', family: 'utf8mb4, pad space' } },
      { name: 'amount', type: 'decimal(12,2)', nullable: true, generated: false, comparison: { rule: 'decimal', precision: 2 } },
      { name: 'note', type: 'varchar(255)', nullable: true, generated: false, charset: 'latin1', collation: 'latin1_swedish_ci', comparison: { rule: 'collation latin1_swedish_ci', family: 'latin1, pad space' } },
      { name: 'parent_id', type: 'int(11)', nullable: true, generated: false, comparison: { rule: 'integer' } },
      { name: 'v_gen', type: 'bigint(20)', nullable: true, generated: true, comparison: { rule: 'integer' } },
      { name: 's_gen', type: 'bigint(20)', nullable: true, generated: true, comparison: { rule: 'integer' } },
    ]);
    const byName = Object.fromEntries(info.indexes.map((i) => [i.name, i]));
    expect(byName.PRIMARY).toEqual({ name: 'PRIMARY', columns: ['id', 'region'], unique: true, primary: true, prefixLengths: [null, null] });
    expect(byName.u_note).toMatchObject({ columns: ['note'], unique: true, primary: false, prefixLengths: [20] });
    expect(byName.k_amount).toMatchObject({ columns: ['amount', 'note'], unique: false });
    expect(info.foreignKeys).toEqual(['fk_parent']);
    expect(info.referencedBy).toEqual(['child.fk_t']);
    expect(info.triggers).toEqual(['trg_t']);
    expect(info.estimatedRows).toBeGreaterThanOrEqual(1);
    expect(info.estimatedBytes).toBeGreaterThan(0);
    const parent = (await session.inspectTable({ schema, name: 'parent' }))!;
    expect(parent.referencedBy).toEqual(['t.fk_parent']);
    expect(parent.foreignKeys).toEqual([]);
  });
});

describe('previewShadow', () => {
  it('applies the ALTER to a private copy and leaves nothing behind', async () => {
    const before = await tableNames(admin);
    const info = (await session.inspectTable({ schema, name: 'parent' }))!;
    const preview = await session.previewShadow(info, 'ADD COLUMN extra INT NOT NULL DEFAULT 3, DROP INDEX u_code, ADD UNIQUE KEY u2 (code, id)');
    expect(preview.columns.map((c) => c.name)).toEqual(['id', 'code', 'extra']);
    expect(preview.indexes.map((i) => i.name).sort()).toEqual(['PRIMARY', 'u2']);
    expect(await tableNames(admin)).toEqual(before);
    // Not even a temporary table survives on the pool's connections: run it twice.
    await session.previewShadow(info, 'ADD COLUMN extra INT');
    expect(await tableNames(admin)).toEqual(before);
  });

  it('reports a bad ALTER with the server message and leaves nothing', async () => {
    const before = await tableNames(admin);
    const info = (await session.inspectTable({ schema, name: 'parent' }))!;
    const err = await session.previewShadow(info, 'ADD COLUMN c INTEGR').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ShadowshiftError);
    expect((err as Error).message).toMatch(/Unknown data type: 'INTEGR'/);
    const err2 = await session.previewShadow(info, 'ADD COLUMN c INT,, DROP x').catch((e: unknown) => e);
    expect((err2 as Error).message).toMatch(/You have an error in your SQL syntax/);
    const err3 = await session.previewShadow(info, 'DROP COLUMN nope').catch((e: unknown) => e);
    expect((err3 as Error).message).toMatch(/nope/);
    expect(await tableNames(admin)).toEqual(before);
  });
});

describe('createShadow / dropArtefacts', () => {
  it('creates the shadow and the changelog, and a bad ALTER leaves nothing', async () => {
    const before = await tableNames(admin);
    const info = (await session.inspectTable({ schema, name: 'parent' }))!;
    const names = session.artefactNames(info.ref, 'job1');
    await expect(session.createShadow(info, 'ADD COLUMN c INTEGR', names)).rejects.toThrow(/INTEGR/);
    expect(await tableNames(admin)).toEqual(before);

    const shadow = await session.createShadow(info, 'ADD COLUMN c INT', names);
    expect(shadow.ref.name).toBe('parent_ssnew');
    expect(shadow.columns.map((c) => c.name)).toEqual(['id', 'code', 'c']);
    expect(await tableNames(admin)).toEqual([...before, 'parent_sslog', 'parent_ssnew'].sort());
    // A second job would collide on the shadow's name: refused with a pointer to cleanup.
    await expect(session.createShadow(info, 'ADD COLUMN c INT', session.artefactNames(info.ref, 'job2'))).rejects.toThrow(/already exists[\s\S]*cleanup/);
    await session.dropArtefacts(names, { keepBackup: true });
    expect(await tableNames(admin)).toEqual(before);
  });

  it('keeps the AUTO_INCREMENT counter', async () => {
    await admin.query('CREATE TABLE ai (id INT AUTO_INCREMENT PRIMARY KEY, v INT)');
    await admin.query('INSERT INTO ai (v) VALUES (1), (2), (3)');
    await admin.query('DELETE FROM ai WHERE id = 3');
    const info = (await session.inspectTable({ schema, name: 'ai' }))!;
    const names = session.artefactNames(info.ref, 'job3');
    await session.createShadow(info, 'ADD COLUMN w INT', names);
    const [[row]] = (await admin.query(`SELECT AUTO_INCREMENT AS ai FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'ai_ssnew'`)) as unknown as [[{ ai: string }]];
    expect(String(row.ai)).toBe('4');
    await session.dropArtefacts(names, { keepBackup: false });
  });
});
