// The example histories in migrations-example/ apply, contract and roll back
// cleanly on the throwaway servers (the workflow docs/migrations.md shows).

import { describe, it, expect, afterAll } from 'vitest';
import { join } from 'node:path';
import type { Db } from '../support/db.js';
import { cli, columnInfo, indexExists, json, newDatabase, ROOT, tableExists, type Dialect } from './helpers.js';
import { mysqlSeq } from '../support/db.js';

const VERSIONS = ['20250101090000', '20250102090000', '20250103090000', '20250104090000', '20250105090000'];

describe.each(['mysql', 'postgres'] as const)('migrations-example/%s', (dialect: Dialect) => {
  const dir = join(ROOT, 'migrations-example', dialect);
  const opened: Db[] = [];
  afterAll(async () => {
    for (const d of opened) await d.close();
  });

  it('lints without errors', async () => {
    const r = await cli(['lint', dir]);
    expect(r.code, r.stdout).toBe(0);
    expect(r.stdout).toMatch(/0 error\(s\)/);
  });

  it('applies (up), takes data through the backfill, and contracts', async () => {
    const { url, db } = await newDatabase(dialect, 'mex');
    opened.push(db);
    const migrate = (...args: string[]) => cli(['migrate', ...args, '--dir', dir], { SHADOWSHIFT_URL: url });
    const first = await migrate('up', '--to', VERSIONS[0]!, '--execute');
    expect(first.code, first.stderr).toBe(0);
    await db.exec("INSERT INTO customers (id, name, email) VALUES (1, 'Ada Lovelace', 'ada@example.com'), (2, 'Alan Turing', 'alan@example.com')");
    await db.exec('INSERT INTO orders (id, customer_id, quantity, amount) VALUES (1, 1, 2, 10.50), (2, 2, 1, 99.99), (3, 1, 7, 1.00)');

    const plan = json(await migrate('plan', '--json'));
    expect(plan.up.map((m: any) => m.version)).toEqual(VERSIONS.slice(1));
    const up = await migrate('up', '--execute', '--json');
    expect(up.code, up.stderr).toBe(0);
    expect(json(up).ran.map((m: any) => m.version)).toEqual(VERSIONS.slice(1));
    expect((await db.query<{ status: string }>('SELECT status FROM orders ORDER BY id')).map((r) => r.status)).toEqual(['paid', 'paid', 'paid']);
    expect((await db.query<{ full_name: string }>('SELECT full_name FROM customers ORDER BY id')).map((r) => r.full_name)).toEqual(['Ada Lovelace', 'Alan Turing']);
    expect((await columnInfo(db, 'orders', 'quantity'))!.type).toMatch(/bigint/);
    expect(await indexExists(db, 'orders', 'orders_created_at_idx')).toBe(true);

    const contract = await migrate('contract', '--execute', '--json');
    expect(contract.code, contract.stderr).toBe(0);
    const st = json(await migrate('status', '--json'));
    expect(st.migrations.map((m: any) => m.state)).toEqual(VERSIONS.map(() => 'contracted'));
    expect((await columnInfo(db, 'orders', 'status'))!.nullable).toBe(false);
    expect(await columnInfo(db, 'customers', 'name')).toBeNull();
    expect((await columnInfo(db, 'customers', 'full_name'))!.nullable).toBe(false);
    await db.exec("INSERT INTO customers (id, full_name, email) VALUES (3, 'Grace Hopper', 'grace@example.com')");
  });

  it('rolls back (down) every expanded migration and applies again', async () => {
    const { url, db } = await newDatabase(dialect, 'mexd');
    opened.push(db);
    const migrate = (...args: string[]) => cli(['migrate', ...args, '--dir', dir], { SHADOWSHIFT_URL: url });
    expect((await migrate('up', '--execute')).code).toBe(0);
    await db.exec("INSERT INTO customers (id, full_name, email) VALUES (1, 'Ada Lovelace', 'ada@example.com')");
    const down = await migrate('down', '--to', '0', '--execute', '--json');
    expect(down.code, down.stderr).toBe(0);
    expect(json(down).ran.map((m: any) => m.version)).toEqual([...VERSIONS].reverse());
    expect(await tableExists(db, 'orders')).toBe(false);
    expect(await tableExists(db, 'customers')).toBe(false);
    const st = json(await migrate('status', '--json'));
    expect(st.migrations.map((m: any) => m.state)).toEqual(VERSIONS.map(() => 'rolled back'));
    const again = await migrate('up', '--execute');
    expect(again.code, again.stderr).toBe(0);
    expect(await tableExists(db, 'orders')).toBe(true);
  });

  it('plan says the type change of a big table goes through the online engine', async () => {
    const { url, db } = await newDatabase(dialect, 'mexp');
    opened.push(db);
    const migrate = (...args: string[]) => cli(['migrate', ...args, '--dir', dir], { SHADOWSHIFT_URL: url });
    expect((await migrate('up', '--to', VERSIONS[3]!, '--execute')).code).toBe(0);
    await db.exec(
      dialect === 'mysql'
        ? `INSERT INTO orders (id, customer_id, quantity, amount) SELECT seq, seq % 100, 1, 1.00 FROM ${mysqlSeq(1, 3000)}`
        : 'INSERT INTO orders (id, customer_id, quantity, amount) SELECT g, g % 100, 1, 1.00 FROM generate_series(1, 3000) g',
    );
    await db.exec(dialect === 'mysql' ? 'ANALYZE TABLE orders' : 'ANALYZE orders');
    const small = json(await migrate('plan', '--json'));
    const stSmall = small.up[0].phases[0].statements.find((s: any) => /quantity/.test(s.sql));
    expect(stSmall.class).toBe('blocking');
    const big = json(await migrate('plan', '--json', '--online-threshold', '1000'));
    const stBig = big.up[0].phases[0].statements.find((s: any) => /quantity/.test(s.sql));
    expect(stBig.class).toBe('online');
    expect(stBig.how).toMatch(/online engine/);
    expect(stBig.estimatedRows).toBeGreaterThanOrEqual(1000);
    const human = await migrate('plan', '--online-threshold', '1000');
    expect(human.stdout).toMatch(/20250105090000_widen_order_quantity\.sql[\s\S]*online\s+ALTER TABLE orders[\s\S]*through the online engine/);
  });
});
