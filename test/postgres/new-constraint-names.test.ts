// Index names belong to the schema. An ALTER that adds a constraint under a name of its
// own (UNIQUE, PRIMARY KEY, EXCLUDE; table or column constraint) no longer creates it on
// the shadow under that name: while the job runs the name stays free (a shadow left
// behind used to keep it, and the next job failed with `relation "items_code_key"
// already exists`), the shadow's index carries a name unique to the job, and the
// cut-over gives it the name the ALTER asked for, with its timing. A name the schema
// already has is refused at preflight, as a native ALTER TABLE refuses it.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type pg from 'pg';
import { freshDb } from './helpers.js';
import { newJob, waitUntil } from '../support/alter.js';
import type { PostgresSession } from '../../src/dialects/postgres/postgres-dialect.js';

let admin: pg.Client;
let session: PostgresSession;
let url: string;
let dir: string;

beforeAll(async () => {
  ({ admin, session, url } = await freshDb('pgnames'));
  dir = mkdtempSync(join(tmpdir(), 'ss-pgnames-'));
});
afterAll(async () => {
  await session?.close();
  await admin?.end();
  rmSync(dir, { recursive: true, force: true });
});

const asked = (t: string) => [`${t}_code_key`, `${t} Tag Key`, `${t}_grp_excl`];
const alterFor = (t: string) =>
  `ADD CONSTRAINT ${t}_code_key UNIQUE (code) DEFERRABLE INITIALLY DEFERRED, ADD COLUMN tag int CONSTRAINT "${t} Tag Key" UNIQUE, ` +
  `ADD CONSTRAINT ${t}_grp_excl EXCLUDE USING btree (grp WITH =)`;

/** Relations of the schema under these names, and which table each indexes. */
async function holders(names: string[]): Promise<Array<{ name: string; table: string }>> {
  const r = await admin.query<{ name: string; table: string }>(
    `SELECT c.relname AS name, t.relname AS table FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid JOIN pg_class t ON t.oid = i.indrelid
      WHERE c.relnamespace = 'public'::regnamespace AND c.relname = ANY ($1) ORDER BY 1`,
    [names],
  );
  return r.rows;
}

describe('PostgreSQL: the names an ALTER gives new constraints', () => {
  it.each([
    ['deferred indexes', true],
    ['indexes built before the copy', false],
  ])('%s: job-unique on the shadow, free while the job runs, the asked names after the cut-over', async (_, deferIndexes) => {
    const t = deferIndexes ? 'ncd' : 'ncn';
    await admin.query(`CREATE TABLE ${t} (id int PRIMARY KEY, code text NOT NULL, grp int NOT NULL)`);
    await admin.query(`INSERT INTO ${t} SELECT g, 'c' || g, g FROM generate_series(1, 3000) g`);
    const flag = join(dir, t);
    writeFileSync(flag, '');
    const job = newJob(url, t, alterFor(t), { chunkSize: 500, deferIndexes, postponeCutoverFlagFile: flag });
    try {
      const report = await job.prepare();
      expect(report.ok).toBe(true);
      const running = job.execute(report);
      running.catch(() => undefined);
      await waitUntil(() => job.status().state === 'postponed' || job.status().state === 'failed', 'the job to postpone the cut-over');
      expect(job.status().error).toBeNull();
      // Every index built, none under a name the ALTER asked for: those are free.
      const shadow = job.status().shadowTable!;
      expect(await holders(asked(t))).toEqual([]);
      const onShadow = await admin.query<{ n: string }>(`SELECT conname AS n FROM pg_constraint WHERE conrelid = $1::regclass AND contype IN ('u', 'x') ORDER BY 1`, [`"${shadow}"`]);
      expect(onShadow.rows.map((r) => r.n)).toEqual(
        asked(t).map((name, i) => expect.stringMatching(new RegExp(`^_ss_[0-9a-f]{10}_k${i + 1}_${name}$`))),
      );
      rmSync(flag, { force: true });
      await running;
    } finally {
      await job.close();
    }
    const cons = await admin.query<{ n: string; k: string; d: boolean; i: boolean }>(
      `SELECT conname AS n, contype::text AS k, condeferrable AS d, condeferred AS i FROM pg_constraint WHERE conrelid = $1::regclass AND contype IN ('u', 'x') ORDER BY 1`,
      [t],
    );
    expect(cons.rows).toEqual([
      { n: `${t} Tag Key`, k: 'u', d: false, i: false },
      { n: `${t}_code_key`, k: 'u', d: true, i: true },
      { n: `${t}_grp_excl`, k: 'x', d: false, i: false },
    ]);
    expect((await holders(asked(t))).map((h) => h.table)).toEqual([t, t, t]);
    // The constraint works under its name.
    await expect(admin.query(`INSERT INTO ${t} (id, code, grp) VALUES (9001, 'c1', 9001)`)).rejects.toThrow(new RegExp(`${t}_code_key`));
  });

  it('refuses at preflight an ALTER naming a constraint after an index the schema already has', async () => {
    await admin.query(`CREATE TABLE nct (id int PRIMARY KEY, code text NOT NULL)`);
    await admin.query(`CREATE TABLE nco (id int PRIMARY KEY, code text NOT NULL)`);
    await admin.query(`CREATE INDEX nct_code_key ON nco (code)`);
    const ours = async () => (await admin.query(`SELECT relname FROM pg_class WHERE relname LIKE '\\_ss\\_%' ORDER BY 1`)).rows;
    const before = await ours();
    const job = newJob(url, 'nct', 'ADD CONSTRAINT nct_code_key UNIQUE (code)');
    try {
      const report = await job.prepare();
      expect(report.ok).toBe(false);
      expect(report.checks.find((c) => c.check === 'new-index-names')).toMatchObject({
        ok: false,
        message: expect.stringMatching(/already has: nct_code_key \(an index of nco\); a native ALTER TABLE would fail the same way/),
      });
    } finally {
      await job.close();
    }
    expect(await ours()).toEqual(before);
  });
});
