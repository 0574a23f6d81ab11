// The demo's `tableMatches` is only worth printing if the comparison with the
// application's record catches what it claims to: a changed, lost or extra row,
// touched by the application or not. Both engines, on the suite's servers.

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { createMysqlDatabase, createPgDatabase } from '../support/databases.js';
import { openDemoDb, quoteName, type DemoDb } from '../../src/demo/demo-db.js';
import { seedRow, type OrdersModel } from '../../src/demo/orders-model.js';
import { checkAgainstModel, readRow, seedOrders, textColumns } from '../../src/demo/orders-table.js';
import { DemoWorkload } from '../../src/demo/demo-workload.js';

const ROWS = 2000;

describe.each([
  { engine: 'postgres', create: () => createPgDatabase('democheck') },
  { engine: 'mariadb', create: () => createMysqlDatabase('democheck') },
])('$engine: the demo checks the table against the application record', ({ create }) => {
  let url: string;
  let db: DemoDb;
  let model: OrdersModel;
  let t: string;
  const idq = () => quoteName(db.engine, 'id');
  const p = (i: number) => (db.engine === 'postgres' ? `$${i}` : '?');

  beforeAll(async () => {
    url = (await create()).url;
    db = await openDemoDb(url);
    t = quoteName(db.engine, 'orders');
    model = await seedOrders(db, ROWS);
  });
  afterAll(async () => {
    await db?.close();
  });

  it('the seeding SQL computes exactly the rows seedRow() describes', async () => {
    const rows = await db.query<Record<string, unknown>>(`SELECT ${textColumns(db.engine)} FROM ${t} WHERE ${idq()} <= 40 OR ${idq()} > ${ROWS - 5} ORDER BY ${idq()}`);
    expect(rows).toHaveLength(45);
    for (const r of rows) expect(readRow(r)).toEqual(seedRow(Number(r.id)));
  });

  it('a workload run keeps its record exact: the table matches it', async () => {
    const w = new DemoWorkload({ url, table: 'orders', model, rate: 400, connections: 4, verify: true, seed: 7 });
    await w.start('run');
    await new Promise((r) => setTimeout(r, 1500));
    const report = await w.stop();
    expect(report.acknowledgedWrites).toBeGreaterThan(100);
    expect(report.phases.run!.errors).toBe(0);
    expect(report.readMismatches).toBe(0);
    expect(report.lostRowWrites).toBe(0);
    const check = await checkAgainstModel(db, 'orders', model);
    expect(check, check.samples.join('\n')).toMatchObject({ matches: true, differences: 0 });
    expect(check.tableRows).toBe(check.expectedRows);
  });

  it('catches every kind of difference, in rows the application wrote and in rows it never touched', async () => {
    const touched = new Set(model.touchedIds());
    const untouched = Array.from({ length: ROWS }, (_, i) => i + 1).filter((id) => !touched.has(id)).slice(0, 4);
    const [a, b, c, d] = untouched as [number, number, number, number];
    // Untouched rows: a changed value, a lost row, a change only in letter case (MariaDB's collation would hide it).
    await db.exec(`UPDATE ${t} SET amount = amount + 1 WHERE ${idq()} = ${p(1)}`, [a]);
    await db.exec(`DELETE FROM ${t} WHERE ${idq()} = ${p(1)}`, [b]);
    await db.exec(`UPDATE ${t} SET status = UPPER(status) WHERE ${idq()} = ${p(1)}`, [c]);
    // A row nobody wrote, outside the seed range.
    const extra = { ...seedRow(1), id: String(10_000_000) };
    await db.exec(`INSERT INTO ${t} (id, customer_id, amount, status, note, created_at) VALUES (${[1, 2, 3, 4, 5, 6].map(p).join(', ')})`, Object.values(extra));
    // Rows the application wrote: an acknowledged update the table lost, an acknowledged delete the table ignored.
    model.setPresent({ ...seedRow(d), note: 'written by the application' });
    const e = [...touched].find((id) => model.kind(id) === 'present')!;
    model.setAbsent(e);
    const check = await checkAgainstModel(db, 'orders', model);
    expect(check.matches).toBe(false);
    expect(check.samples.join('\n')).toMatch(new RegExp(`id ${a}: changed, but the application never wrote it`));
    expect(check.samples.join('\n')).toMatch(new RegExp(`id ${c}: changed, but the application never wrote it`));
    expect(check.samples.join('\n')).toMatch(/1 seed row\(s\) the application never wrote are missing/);
    expect(check.samples.join('\n')).toMatch(/1 row\(s\) outside the seed range that the application never wrote/);
    expect(check.samples.join('\n')).toMatch(new RegExp(`id ${d}: note is .*the application wrote "written by the application"`));
    expect(check.samples.join('\n')).toMatch(new RegExp(`id ${e}: acknowledged delete, but the row is there`));
    expect(check.differences).toBe(6);
  });
});
