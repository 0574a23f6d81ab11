// After a PostgreSQL cut-over the old table is kept as a backup. Its rows are a snapshot of
// the moment of the swap, and the application no longer writes them: the foreign keys it
// declares must not keep holding the parents it referenced. Otherwise a legal DELETE of a
// parent row, whose children the application has already deleted from the live table,
// fails on the stale copies in the backup (and ON DELETE CASCADE would delete from the
// backup instead). The new table carries the constraints under their names.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { freshDb } from './helpers.js';
import { capturingLogger, runAlter, runRevert } from '../support/alter.js';
import { pgConnect } from '../support/databases.js';
import type { PostgresSession } from '../../src/dialects/postgres/postgres-dialect.js';

let url: string;
let admin: pg.Client;
let session: PostgresSession;

beforeAll(async () => {
  ({ url, admin, session } = await freshDb('bkfk'));
});

afterAll(async () => {
  await session?.close();
  await admin?.end();
});

describe('postgres: the backup after the cut-over', () => {
  it("does not keep holding the parents of the table's foreign keys", async () => {
    await admin.query('CREATE TABLE parent (id bigint PRIMARY KEY)');
    await admin.query('CREATE TABLE orders (id bigint PRIMARY KEY, parent_id bigint NOT NULL CONSTRAINT orders_parent_fk REFERENCES parent (id))');
    await admin.query('INSERT INTO parent SELECT generate_series(1, 3)');
    await admin.query('INSERT INTO orders SELECT g, g FROM generate_series(1, 3) g');
    const result = await runAlter(url, 'orders', 'ADD COLUMN note text');
    // The application deletes a child and then its parent: legal on the live table.
    await admin.query('DELETE FROM orders WHERE parent_id = 1');
    await admin.query('DELETE FROM parent WHERE id = 1');
    // The live table still enforces its key, under its name.
    await expect(admin.query('INSERT INTO orders (id, parent_id) VALUES (9, 42)')).rejects.toThrow(/orders_parent_fk/);
    const fks = await admin.query<{ rel: string; con: string }>("SELECT conrelid::regclass::text AS rel, conname AS con FROM pg_constraint WHERE contype = 'f' ORDER BY 1");
    expect(fks.rows).toEqual([{ rel: 'orders', con: 'orders_parent_fk' }]);
    // The backup keeps its rows as of the swap.
    expect((await admin.query(`SELECT count(*)::int AS n FROM "${result.backupTable}"`)).rows[0].n).toBe(3);
  });

  it("gives them up after the swap's commit, so a long reader of the parent neither fails the cut-over nor queues behind it", async () => {
    await admin.query('CREATE TABLE parent2 (id bigint PRIMARY KEY)');
    await admin.query('CREATE TABLE orders2 (id bigint PRIMARY KEY, parent_id bigint NOT NULL CONSTRAINT orders2_parent_fk REFERENCES parent2 (id))');
    await admin.query('INSERT INTO parent2 SELECT generate_series(1, 3)');
    await admin.query('INSERT INTO orders2 SELECT g, g FROM generate_series(1, 3) g');
    // A report reading the parent for the whole job: dropping a foreign key locks its parent
    // ACCESS EXCLUSIVE, which this reader blocks; under the swap's lock every attempt would fail.
    const reader = await pgConnect(url);
    const { log, lines } = capturingLogger();
    try {
      await reader.query('BEGIN');
      await reader.query('SELECT count(*) FROM parent2');
      const result = await runAlter(url, 'orders2', 'ADD COLUMN note text', { log, cutoverLockTimeoutMs: 1000, cutoverRetries: 2, revertible: true });
      expect(result.cutoverAttempts).toBe(1);
      const warned = lines.filter((l) => String(l.msg).startsWith('after cut-over: the old table still declares a foreign key'));
      expect(warned.map((l) => l.msg)).toEqual([expect.stringContaining(`drop it: ALTER TABLE "public"."${result.backupTable}" DROP CONSTRAINT IF EXISTS "orders2_parent_fk"`)]);
      // Left undropped, the old table still declares the key when a revert makes it the table again, the
      // reader still there: the revert's swap renames it aside (no lock on the parent) and takes the name.
      const logged = lines.length;
      const reverted = await runRevert(url, 'orders2', { log, cutoverLockTimeoutMs: 1000, cutoverRetries: 2 });
      expect(reverted.cutoverAttempts).toBe(1);
      const fks = await admin.query<{ rel: string; con: string }>("SELECT conrelid::regclass::text AS rel, conname AS con FROM pg_constraint WHERE contype = 'f' AND conrelid = 'orders2'::regclass ORDER BY 2");
      expect(fks.rows.map((r) => r.con)).toEqual([expect.stringMatching(/^_ss_\w+_fk_orders2_parent_fk$/), 'orders2_parent_fk']);
      const left = lines.slice(logged).filter((l) => String(l.msg).startsWith('after cut-over: the old table still declares a foreign key')).map((l) => String(l.msg).replace(/^.*drop it: /, ''));
      expect(left).toHaveLength(2); // the revert's backup (the forward job's table) and the key renamed aside
      await reader.query('COMMIT');
      for (const statement of left) await admin.query(statement);
      expect((await admin.query("SELECT conrelid::regclass::text AS rel, conname FROM pg_constraint WHERE contype = 'f' AND conname LIKE '%orders2_parent_fk' ORDER BY 1")).rows).toEqual([{ rel: 'orders2', conname: 'orders2_parent_fk' }]);
      await admin.query('DELETE FROM orders2 WHERE parent_id = 1');
      await admin.query('DELETE FROM parent2 WHERE id = 1');
    } finally {
      await reader.end();
    }
  });
});
