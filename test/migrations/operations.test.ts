// The built-in expand/contract operations (renameColumn, changeColumnType) in a
// TS migration, on both dialects: between expand and contract an old-version
// writer (old column names and types) and a new-version writer (new names and
// types) run at the same time; each sees its writes in both columns; contract
// leaves the new schema with every row correct. Also: down undoes expand.

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { openDb, type Db, mysqlSeq } from '../support/db.js';
import { cli, columnInfo, json, newDatabase, ROOT, tempDir, write, type Dialect } from './helpers.js';

const DEFINE = join(ROOT, 'src/migrations/define-migration.js');

const migrationTs = `import { defineMigration, renameColumn, changeColumnType } from ${JSON.stringify(DEFINE)};

export default defineMigration({
  operations: [
    renameColumn({ table: 'accounts', from: 'name', to: 'full_name' }),
    changeColumnType({ table: 'accounts', column: 'balance', newColumn: 'balance_big', type: 'BIGINT' }),
  ],
});
`;

interface Expected {
  name: string;
  balance: string;
}

async function triggersOn(db: Db, table: string): Promise<string[]> {
  const rows =
    db.dialect === 'mysql'
      ? await db.query<{ n: string }>('SELECT TRIGGER_NAME AS n FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA = DATABASE() AND EVENT_OBJECT_TABLE = ?', [table])
      : await db.query<{ n: string }>('SELECT tgname AS n FROM pg_trigger WHERE tgrelid = to_regclass($1) AND NOT tgisinternal', [table]);
  return rows.map((r) => r.n);
}

/**
 * One application version writing for `ms`: inserts fresh ids and updates its share of
 * existing ids, reading each write back in both columns. Returns what it wrote.
 */
async function writer(url: string, version: 'old' | 'new', dialect: Dialect, ids: { fresh: number[]; existing: number[] }, ms: number): Promise<{ wrote: Map<number, Expected>; ops: number; problems: string[] }> {
  const db = await openDb(url);
  const p = (i: number) => (dialect === 'mysql' ? '?' : `$${i}`);
  const wrote = new Map<number, Expected>();
  const problems: string[] = [];
  const nameCol = version === 'old' ? 'name' : 'full_name';
  const balCol = version === 'old' ? 'balance' : 'balance_big';
  const deadline = Date.now() + ms;
  let ops = 0;
  let fresh = 0;
  let k = 0;
  try {
    while (Date.now() < deadline) {
      const n = ops++;
      let id: number;
      // Between expand and contract both columns hold every value, so the new version writes values
      // the old INT column can also hold (a larger one is refused by the old column: the write fails, nothing is lost).
      const value: Expected = { name: `${version}-${n}`, balance: String(version === 'old' ? n : 1_000_000 + n) };
      if (n % 2 === 0 && fresh < ids.fresh.length) {
        id = ids.fresh[fresh++]!;
        // The old version does not know the new columns; the new one no longer writes the old ones.
        await db.exec(`INSERT INTO accounts (id, ${nameCol}, ${balCol}) VALUES (${p(1)}, ${p(2)}, ${p(3)})`, [id, value.name, value.balance]);
      } else {
        id = ids.existing[k++ % ids.existing.length]!;
        await db.exec(`UPDATE accounts SET ${nameCol} = ${p(1)}, ${balCol} = ${p(2)} WHERE id = ${p(3)}`, [value.name, value.balance, id]);
      }
      wrote.set(id, value);
      const [row] = await db.query<{ name: string; full_name: string; balance: string | number; balance_big: string | number }>(
        `SELECT name, full_name, balance, balance_big FROM accounts WHERE id = ${p(1)}`,
        [id],
      );
      if (!row || row.name !== value.name || row.full_name !== value.name) problems.push(`${version} id ${id}: name ${row?.name} / full_name ${row?.full_name}, wrote ${value.name}`);
      if (!row || String(row.balance_big) !== value.balance) problems.push(`${version} id ${id}: balance_big ${row?.balance_big}, wrote ${value.balance}`);
      if (!row || String(row.balance) !== value.balance) problems.push(`${version} id ${id}: balance ${row?.balance}, wrote ${value.balance}`);
    }
  } finally {
    await db.close();
  }
  return { wrote, ops, problems };
}

describe.each(['mysql', 'postgres'] as const)('expand/contract operations on %s', (dialect) => {
  let url: string;
  let db: Db;
  let dir: string;
  const ROWS = 2000;
  const migrate = (...args: string[]) => cli(['migrate', ...args, '--dir', dir, '--backfill-batch', '300'], { SHADOWSHIFT_URL: url });

  beforeAll(async () => {
    ({ url, db } = await newDatabase(dialect, 'mops'));
    dir = tempDir();
    await db.exec(
      dialect === 'mysql'
        ? 'CREATE TABLE accounts (id BIGINT NOT NULL PRIMARY KEY, name VARCHAR(100) NOT NULL, balance INT NOT NULL DEFAULT 0)'
        : 'CREATE TABLE accounts (id bigint NOT NULL PRIMARY KEY, name varchar(100) NOT NULL, balance integer NOT NULL DEFAULT 0)',
    );
    await db.exec(
      dialect === 'mysql'
        ? `INSERT INTO accounts SELECT seq, CONCAT('seed-', seq), seq FROM ${mysqlSeq(1, ROWS)}`
        : `INSERT INTO accounts SELECT g, 'seed-' || g, g FROM generate_series(1, ${ROWS}) g`,
    );
    write(dir, '100_rename_and_retype.ts', migrationTs);
  });
  afterAll(async () => {
    await db?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('expand adds the new columns with sync triggers and backfills them', async () => {
    const plan = await migrate('plan');
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stdout).toMatch(/TS migration: code runs here \(operations: rename column accounts\.name to full_name; change type of accounts\.balance into balance_big BIGINT\)/);
    const r = await migrate('up', '--execute', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(json(r).ran[0].phases).toEqual(['expand', 'backfill']);
    expect((await triggersOn(db, 'accounts')).length).toBeGreaterThan(0);
    const bad = await db.query<{ n: string | number }>(
      `SELECT COUNT(*) AS n FROM accounts WHERE full_name IS NULL OR full_name <> name OR balance_big IS NULL OR balance_big <> balance`,
    );
    expect(Number(bad[0]!.n)).toBe(0);
    expect((await columnInfo(db, 'accounts', 'balance_big'))!.type).toMatch(/bigint/);
  });

  it('old and new application versions write at the same time and both see their writes in both columns', async () => {
    const oldIds = { fresh: Array.from({ length: 5000 }, (_, i) => 100_000 + i), existing: Array.from({ length: ROWS / 2 }, (_, i) => 2 * i + 1) };
    const newIds = { fresh: Array.from({ length: 5000 }, (_, i) => 200_000 + i), existing: Array.from({ length: ROWS / 2 }, (_, i) => 2 * i + 2) };
    const [o, n] = await Promise.all([writer(url, 'old', dialect, oldIds, 2500), writer(url, 'new', dialect, newIds, 2500)]);
    expect(o.problems.slice(0, 5)).toEqual([]);
    expect(n.problems.slice(0, 5)).toEqual([]);
    expect(o.ops).toBeGreaterThan(50);
    expect(n.ops).toBeGreaterThan(50);
    const expected = new Map<number, Expected>([...o.wrote, ...n.wrote]);
    (globalThis as Record<string, unknown>)[`expected_${dialect}`] = expected;
    const rows = await db.query<{ id: string | number; name: string; full_name: string; balance: string | number; balance_big: string | number }>('SELECT id, name, full_name, balance, balance_big FROM accounts');
    expect(rows.filter((r) => r.name !== r.full_name || String(r.balance) !== String(r.balance_big))).toEqual([]);
  });

  it('contract drops triggers and old columns and leaves every row correct', async () => {
    const expected = (globalThis as Record<string, unknown>)[`expected_${dialect}`] as Map<number, Expected>;
    const r = await migrate('contract', '--execute', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(await triggersOn(db, 'accounts')).toEqual([]);
    expect(await columnInfo(db, 'accounts', 'name')).toBeNull();
    expect(await columnInfo(db, 'accounts', 'balance')).toBeNull();
    expect((await columnInfo(db, 'accounts', 'full_name'))!.nullable).toBe(false);
    expect((await columnInfo(db, 'accounts', 'balance_big'))!.nullable).toBe(false);
    const rows = await db.query<{ id: string | number; full_name: string; balance_big: string | number }>('SELECT id, full_name, balance_big FROM accounts ORDER BY id');
    const wrong: string[] = [];
    for (const row of rows) {
      const id = Number(row.id);
      const want = expected.get(id) ?? (id <= ROWS ? { name: `seed-${id}`, balance: String(id) } : null);
      if (!want) wrong.push(`unexpected row ${id}`);
      else if (row.full_name !== want.name || String(row.balance_big) !== want.balance) wrong.push(`${id}: ${row.full_name}/${row.balance_big}, want ${want.name}/${want.balance}`);
    }
    expect(wrong.slice(0, 5)).toEqual([]);
    expect(rows.length).toBe(ROWS + [...expected.keys()].filter((id) => id > ROWS).length);
    // The new application keeps working on the new schema.
    await db.exec(`INSERT INTO accounts (id, full_name, balance_big) VALUES (${dialect === 'mysql' ? '?, ?, ?' : '$1, $2, $3'})`, [999_999, 'after', '7']);
  });

  it('down after expand removes the new columns and triggers; the old version keeps working', async () => {
    const { url: url2, db: db2 } = await newDatabase(dialect, 'mopsdown');
    const dir2 = tempDir();
    try {
      await db2.exec('CREATE TABLE accounts (id BIGINT NOT NULL PRIMARY KEY, name VARCHAR(100) NOT NULL, balance INT NOT NULL DEFAULT 0)');
      await db2.exec("INSERT INTO accounts (id, name, balance) VALUES (1, 'a', 1), (2, 'b', 2)");
      write(dir2, '100_rename_and_retype.ts', migrationTs);
      const run = (...args: string[]) => cli(['migrate', ...args, '--dir', dir2], { SHADOWSHIFT_URL: url2 });
      expect((await run('up', '--execute')).code).toBe(0);
      const down = await run('down', '--execute', '--json');
      expect(down.code, down.stderr).toBe(0);
      expect(json(down).ran[0].phases).toEqual(['down']);
      expect(await columnInfo(db2, 'accounts', 'full_name')).toBeNull();
      expect(await columnInfo(db2, 'accounts', 'balance_big')).toBeNull();
      expect(await triggersOn(db2, 'accounts')).toEqual([]);
      await db2.exec("INSERT INTO accounts (id, name, balance) VALUES (3, 'c', 3)");
      const st = json(await run('status', '--json'));
      expect(st.migrations[0].state).toBe('rolled back');
    } finally {
      await db2.close();
      rmSync(dir2, { recursive: true, force: true });
    }
  });
});
