// The engine builds the shadow's secondary indexes after the copy on PostgreSQL
// (--defer-indexes, the default): during the copy the shadow has only its primary
// key; after the cut-over the table has every index and constraint under its own
// name, working; a new UNIQUE over duplicate data still fails the job with the
// original untouched; --no-defer-indexes keeps them during the copy.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { freshDb } from './helpers.js';
import { newJob } from '../support/alter.js';
import type { PostgresSession } from '../../src/dialects/postgres/postgres-dialect.js';
import { DataLossError } from '../../src/util/errors.js';

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
    const con = await admin.query(`SELECT conname, contype::text AS t FROM pg_constraint WHERE conrelid = 'dfa'::regclass ORDER BY 1`);
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
});
