// The engine builds the shadow's secondary indexes after the copy on PostgreSQL
// (--defer-indexes, the default): during the copy the shadow has only its primary
// key; after the cut-over the table has every index and constraint under its own
// name, working, DEFERRABLE / INITIALLY DEFERRED as the ALTER left them; a new
// UNIQUE over duplicate data still fails the job with the original untouched;
// --no-defer-indexes keeps them during the copy; a new table whose constraints differ
// from what the ALTER gives is never swapped in.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { freshDb } from './helpers.js';
import { newJob, waitUntil } from '../support/alter.js';
import type { PostgresSession } from '../../src/dialects/postgres/postgres-dialect.js';
import { DataLossError } from '../../src/util/errors.js';
import { pino } from 'pino';
import { endVacuumGuard } from '../support/pg-vacuum-guard.js';

let admin: pg.Client;
let session: PostgresSession;
let url: string;

beforeAll(async () => {
  ({ admin, session, url } = await freshDb('pgdefer'));
});
afterAll(async () => {
  await session?.close();
  await admin?.end();
});

async function indexNames(table: string): Promise<string[]> {
  const r = await admin.query<{ n: string }>(`SELECT indexrelid::regclass::text AS n FROM pg_index WHERE indrelid = $1::regclass ORDER BY 1`, [table]);
  return r.rows.map((x) => x.n);
}

async function seed(table: string, rows: number): Promise<void> {
  await admin.query(`CREATE TABLE ${table} (id int PRIMARY KEY, grp int NOT NULL, code text NOT NULL, CONSTRAINT ${table}_code_key UNIQUE (code))`);
  await admin.query(`CREATE INDEX ${table}_grp_idx ON ${table} (grp)`);
  await admin.query(`INSERT INTO ${table} SELECT g, g % 10, 'c' || g FROM generate_series(1, ${rows}) g`);
}

/** Runs the job; returns the shadow's indexes as seen while the first chunk was open. */
async function runWatchingShadow(table: string, alter: string, deferIndexes?: boolean): Promise<{ during: string[]; error: unknown }> {
  let during: string[] = [];
  const job = newJob(url, table, alter, {
    chunkSize: 500,
    ...(deferIndexes === undefined ? {} : { deferIndexes }),
    testHooks: {
      beforeChunkCommit: async () => {
        if (!during.length) during = await indexNames(job.status().shadowTable!);
      },
    },
  });
  try {
    const report = await job.prepare();
    expect(report.deferredIndexes).toBe(deferIndexes === false ? 'off' : 'on');
    const error = await job.execute(report).then(() => null, (e: unknown) => e);
    return { during, error };
  } finally {
    await job.close();
  }
}

describe('deferred secondary indexes', () => {
  it('copies into a shadow with only its key, then builds every index under its own name', async () => {
    await seed('dfa', 3000);
    const before = await indexNames('dfa');
    const { during, error } = await runWatchingShadow('dfa', 'ADD COLUMN note text');
    expect(error).toBeNull();
    expect(during).toHaveLength(1);
    expect(during[0]).toMatch(/_pkey$/);
    expect(await indexNames('dfa')).toEqual(before);
    const con = await admin.query(`SELECT conname, contype::text AS t FROM pg_constraint WHERE conrelid = 'dfa'::regclass AND contype <> 'n' ORDER BY 1`);
    expect(con.rows).toEqual([
      { conname: 'dfa_code_key', t: 'u' },
      { conname: 'dfa_pkey', t: 'p' },
    ]);
    await expect(admin.query(`INSERT INTO dfa (id, grp, code) VALUES (999999, 1, 'c7')`)).rejects.toThrow(/dfa_code_key/);
    const invalid = await admin.query(`SELECT count(*)::int AS n FROM pg_index WHERE indrelid = 'dfa'::regclass AND NOT indisvalid`);
    expect(invalid.rows[0].n).toBe(0);
    expect((await admin.query(`SELECT obj_description('dfa'::regclass, 'pg_class') AS d`)).rows[0].d).toBeNull();
  });

  it('--no-defer-indexes keeps them on the shadow during the copy', async () => {
    await seed('dfb', 3000);
    const { during, error } = await runWatchingShadow('dfb', 'ADD COLUMN note text', false);
    expect(error).toBeNull();
    expect(during).toHaveLength(3);
  });

  it('a new UNIQUE over duplicate data fails the job after the copy, original untouched, nothing left', async () => {
    await seed('dfc', 3000);
    const tables = async () => (await admin.query<{ t: string }>(`SELECT tablename AS t FROM pg_tables WHERE schemaname = 'public' ORDER BY 1`)).rows.map((r) => r.t);
    const before = { tables: await tables(), sum: (await admin.query(`SELECT count(*)::int AS n, sum(grp)::int AS s FROM dfc`)).rows[0] };
    const { error } = await runWatchingShadow('dfc', 'ADD CONSTRAINT dfc_grp_uniq UNIQUE (grp)');
    expect(error).toBeInstanceOf(DataLossError);
    expect((error as Error).message).toMatch(/dfc_grp_uniq/);
    expect(await tables()).toEqual(before.tables);
    expect((await admin.query(`SELECT count(*)::int AS n, sum(grp)::int AS s FROM dfc`)).rows[0]).toEqual(before.sum);
    const slots = await admin.query(`SELECT count(*)::int AS n FROM pg_replication_slots WHERE database = current_database() AND slot_name LIKE '\\_ss\\_%'`);
    expect(slots.rows[0].n).toBe(0);
  });

  // What a user sees of the table's constraints and indexes, names relative to the table.
  async function definitions(table: string): Promise<unknown[]> {
    const con = await admin.query(
      `SELECT replace(conname, $2, 'T') AS name, contype::text AS type, condeferrable AS deferrable, condeferred AS deferred, pg_get_constraintdef(oid) AS def
         FROM pg_constraint WHERE conrelid = $1::regclass ORDER BY 1`,
      [table, table],
    );
    const idx = await admin.query(
      `SELECT replace(ic.relname, $2, 'T') AS name, i.indimmediate AS immediate, i.indisvalid AS valid
         FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid WHERE i.indrelid = $1::regclass ORDER BY 1`,
      [table, table],
    );
    return [...con.rows, ...idx.rows];
  }

  async function seedDeferrable(table: string, rows: number): Promise<void> {
    await admin.query(`CREATE TABLE ${table} (id int PRIMARY KEY, code text NOT NULL, slot int4range NOT NULL,
      CONSTRAINT ${table}_code_key UNIQUE (code) DEFERRABLE INITIALLY DEFERRED,
      CONSTRAINT ${table}_slot_excl EXCLUDE USING gist (slot WITH &&) DEFERRABLE)`);
    await admin.query(`INSERT INTO ${table} SELECT g, 'c' || g, int4range(g * 10, g * 10 + 5) FROM generate_series(1, ${rows}) g`);
  }

  it('keeps DEFERRABLE / INITIALLY DEFERRED of UNIQUE and EXCLUDE constraints exactly as a native ALTER does', async () => {
    // The gist opclass of ranges is built in: no extension needed.
    await seedDeferrable('dfd', 2000);
    await seedDeferrable('dfd_native', 2000);
    const alter = 'ADD COLUMN note text, ADD UNIQUE (note) DEFERRABLE';
    await admin.query(`ALTER TABLE dfd_native ${alter}`);
    const { during, error } = await runWatchingShadow('dfd', alter);
    expect(error).toBeNull();
    expect(during).toHaveLength(1);
    const got = await definitions('dfd');
    expect(got).toEqual(await definitions('dfd_native'));
    expect(got).toContainEqual({ name: 'T_code_key', type: 'u', deferrable: true, deferred: true, def: 'UNIQUE (code) DEFERRABLE INITIALLY DEFERRED' });
    // An application transaction that relies on the deferral: swap two unique values, one row at a time.
    await admin.query(`BEGIN; UPDATE dfd SET code = 'c2' WHERE id = 1; UPDATE dfd SET code = 'c1' WHERE id = 2; COMMIT`);
    await admin.query(`BEGIN; SET CONSTRAINTS dfd_slot_excl DEFERRED; UPDATE dfd SET slot = '[20,25)' WHERE id = 1; UPDATE dfd SET slot = '[10,15)' WHERE id = 2; COMMIT`);
    const swapped = await admin.query(`SELECT id, code, slot::text FROM dfd WHERE id IN (1, 2) ORDER BY id`);
    expect(swapped.rows).toEqual([
      { id: 1, code: 'c2', slot: '[20,25)' },
      { id: 2, code: 'c1', slot: '[10,15)' },
    ]);
    // Still enforced at commit.
    await expect(admin.query(`BEGIN; UPDATE dfd SET code = 'c3' WHERE id = 1; COMMIT`)).rejects.toThrow(/dfd_code_key/);
    await admin.query('ROLLBACK').catch(() => undefined);
  });

  it("refuses the swap, before any lock, when the new table's constraints differ from what the ALTER gives", async () => {
    await seedDeferrable('dfe', 2000);
    const tables = async () => (await admin.query<{ t: string }>(`SELECT tablename AS t FROM pg_tables WHERE schemaname = 'public' ORDER BY 1`)).rows.map((r) => r.t);
    const before = { tables: await tables(), defs: await definitions('dfe'), oid: (await admin.query(`SELECT 'dfe'::regclass::oid::text AS o`)).rows[0].o };
    const lines: Array<Record<string, unknown>> = [];
    const log = pino({ level: 'debug' }, { write: (x: string) => void lines.push(JSON.parse(x) as Record<string, unknown>) });
    const job = newJob(url, 'dfe', 'ADD COLUMN note text', { log });
    job.controls.postponedByCommand = true;
    try {
      const report = await job.prepare();
      const running = job.execute(report).then(() => null, (e: unknown) => e);
      await waitUntil(() => job.status().state === 'postponed' || job.status().state === 'failed', 'the job to hold its cut-over');
      // The shape of the regression: the deferrable UNIQUE comes back immediate.
      const shadow = job.status().shadowTable!;
      const con = await admin.query<{ conname: string }>(`SELECT conname FROM pg_constraint WHERE conrelid = $1::regclass AND contype = 'u'`, [shadow]);
      await endVacuumGuard(admin);
      await admin.query(`ALTER TABLE ${shadow} DROP CONSTRAINT ${con.rows[0]!.conname}, ADD CONSTRAINT ${con.rows[0]!.conname} UNIQUE (code)`);
      const lockers = await admin.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'shadowshift cut-over' AND datname = current_database()`);
      expect(lockers.rows[0].n).toBe(0);
      job.controls.postponedByCommand = false;
      job.controls.wake();
      const error = await running;
      expect(error).toBeInstanceOf(Error);
      expect((error as Error).message).toMatch(/UNIQUE \(code\) DEFERRABLE INITIALLY DEFERRED/);
      expect(job.status().cutoverAttempts).toBe(1);
      expect(lines.filter((l) => /locked/.test(String(l.msg)))).toEqual([]);
    } finally {
      await job.close();
    }
    expect(await tables()).toEqual(before.tables);
    expect(await definitions('dfe')).toEqual(before.defs);
    expect((await admin.query(`SELECT 'dfe'::regclass::oid::text AS o`)).rows[0].o).toBe(before.oid);
    const slots = await admin.query(`SELECT count(*)::int AS n FROM pg_replication_slots WHERE database = current_database() AND slot_name LIKE '\\_ss\\_%'`);
    expect(slots.rows[0].n).toBe(0);
  });
});
