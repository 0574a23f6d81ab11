// Revert after the cut-over, PostgreSQL: what it refuses (nothing changed, rows named), a
// misfit write during its catch-up (the revert fails naming the row, the table untouched,
// the way back still open), and what it keeps on the server: the slot and publication it
// reads hold WAL, so `cleanup` lists them with the revert point, keeps them while the
// window is open, and the next ALTER of the table closes the window and drops them.

import { describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type pg from 'pg';
import { createPgDatabase, pgConnect } from '../support/databases.js';
import { capturingLogger, newJob, runAlter, runRevert, waitUntil } from '../support/alter.js';
import { startCli } from '../support/cli.js';
import { makePlan, openSession } from './helpers.js';

const runCli = (args: string[]) => startCli(args).done;

const TABLE = 'CREATE TABLE t (id int PRIMARY KEY, email varchar(20) NOT NULL CONSTRAINT t_email_key UNIQUE, n integer NOT NULL CONSTRAINT n_positive CHECK (n > 0), note text)';

async function altered(alter: string, after: string[]): Promise<{ url: string; admin: pg.Client }> {
  const { url } = await createPgDatabase('revref');
  const admin = await pgConnect(url);
  await admin.query(TABLE);
  await admin.query("INSERT INTO t VALUES (1, 'a@x', 1, 'one'), (2, 'b@x', 2, NULL), (3, 'c@x', 3, 'three')");
  await runAlter(url, 't', alter, { revertible: true });
  for (const sql of after) await admin.query(sql);
  return { url, admin };
}

async function planRevert(url: string) {
  const job = newJob(url, 't', '', { revert: true });
  try {
    return await job.prepare();
  } finally {
    await job.close();
  }
}

async function state(admin: pg.Client) {
  const q = async (sql: string) => (await admin.query(sql)).rows;
  return {
    columns: await q("SELECT attname, format_type(atttypid, atttypmod) AS type, attnotnull FROM pg_attribute WHERE attrelid = 't'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum"),
    rows: await q('SELECT * FROM t ORDER BY id'),
    relations: await q("SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'r' ORDER BY 1"),
    slots: await q('SELECT slot_name FROM pg_replication_slots WHERE database = current_database() ORDER BY 1'),
  };
}

describe('postgres: what revert refuses', () => {
  const refusals = [
    { what: 'a value longer than the old column', alter: 'ALTER COLUMN email TYPE varchar(100)', after: ["INSERT INTO t VALUES (7, 'a-very-long-address@example.com', 7)"], says: /email: values the old column \(character varying\(20\) NOT NULL\) cannot hold \(id=7\)/ },
    { what: 'a number out of the old range', alter: 'ALTER COLUMN n TYPE bigint', after: ["INSERT INTO t VALUES (8, 'h@x', 5000000000)"], says: /n: values the old column \(integer NOT NULL\) cannot hold \(id=8\)/ },
    { what: 'NULL where the old column is NOT NULL', alter: 'ALTER COLUMN n DROP NOT NULL', after: ["INSERT INTO t VALUES (9, 'i@x', NULL)"], says: /n: values the old column \(integer NOT NULL\) cannot hold \(id=9\)/ },
    { what: 'a row that fails a CHECK constraint the ALTER dropped', alter: 'DROP CONSTRAINT n_positive', after: ["INSERT INTO t VALUES (13, 'm@x', -13)"], says: /check constraint n_positive of the old table \(\(n > 0\)\): rows that fail it \(id=13\)/ },
    { what: 'a column the ALTER dropped that has no default', alter: 'DROP COLUMN n', after: [], says: /column n of the old table is NOT NULL without a default/ },
  ];

  it.each(refusals)('refuses $what, naming the rows, and changes nothing', async ({ alter, after, says }) => {
    const { url, admin } = await altered(alter, after);
    try {
      const before = await state(admin);
      const report = await planRevert(url);
      if (report.ok) console.log(JSON.stringify(report, null, 1));
      expect(report.ok).toBe(false);
      const failed = report.checks.filter((c) => !c.ok);
      expect(failed.map((c) => c.check)).toEqual(['revert-losses']);
      expect(failed[0]!.message).toMatch(says);
      expect(await state(admin)).toEqual(before);
    } finally {
      await admin.end();
    }
  });

  // An ALTER cannot drop a unique constraint on PostgreSQL yet (the preview, made with
  // LIKE, names its copy otherwise: "constraint ... does not exist"), so the scan for this
  // refusal is checked on the two tables a revert would see.
  it('names the values the live table holds twice under a unique key only the old table has', async () => {
    const { url } = await createPgDatabase('revdup');
    const admin = await pgConnect(url);
    const session = await openSession(url);
    try {
      await admin.query('CREATE TABLE live (id int PRIMARY KEY, email text NOT NULL)');
      await admin.query('CREATE TABLE old (id int PRIMARY KEY, email text NOT NULL CONSTRAINT old_email_key UNIQUE)');
      await admin.query("INSERT INTO live VALUES (1, 'a@x'), (2, 'b@x'), (3, 'a@x')");
      const plan = makePlan((await session.inspectTable({ schema: 'public', name: 'live' }))!, (await session.inspectTable({ schema: 'public', name: 'old' }))!, { renamedColumns: new Map(), droppedColumns: new Set(), addedColumns: new Set(), renamesTable: false });
      expect(plan.newUniqueIndexes).toEqual(['old_email_key']);
      expect(await session.revert.losses(plan)).toEqual([{ problem: 'unique key old_email_key of the old table: values the new table holds more than once', keys: ['email=a@x (2 rows)'] }]);
    } finally {
      await session.close();
      await admin.end();
    }
  });

  it('names values equal under the old unique key\'s collation when the ALTER made it compare finer (case-insensitive → "C")', async (ctx) => {
    const { url } = await createPgDatabase('revcoll');
    const admin = await pgConnect(url);
    try {
      if ((await admin.query("SELECT count(*)::int AS n FROM pg_collation WHERE collprovider = 'i'")).rows[0].n === 0) ctx.skip('this PostgreSQL is built without ICU, so it has no nondeterministic collations');
      await admin.query("CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false)");
      await admin.query('CREATE TABLE t (id int PRIMARY KEY, email varchar(20) COLLATE ci NOT NULL CONSTRAINT t_email_key UNIQUE)');
      await admin.query("INSERT INTO t VALUES (1, 'a@x'), (2, 'b@x')");
      await runAlter(url, 't', 'ALTER COLUMN email TYPE varchar(20) COLLATE "C"', { revertible: true });
      await admin.query("INSERT INTO t VALUES (3, 'A@x')");
      const report = await planRevert(url);
      expect(report.checks.filter((c) => !c.ok).map((c) => c.check)).toEqual(['revert-losses']);
      expect(report.checks.find((c) => !c.ok)!.message).toMatch(/unique key t_email_key of the old table: values the new table holds more than once \(email=(a|A)@x \(2 rows\)\)/);
    } finally {
      await admin.end();
    }
  });

  it('fails a revert that meets such a write during its catch-up, naming the row; the way back stays open', async () => {
    const { url, admin } = await altered('ALTER COLUMN email TYPE varchar(100)', ["INSERT INTO t VALUES (4, 'd@x', 4)"]);
    const dir = mkdtempSync(join(tmpdir(), 'ss-pgrevert-'));
    const flag = join(dir, 'postpone');
    writeFileSync(flag, '');
    try {
      const job = newJob(url, 't', '', { revert: true, postponeCutoverFlagFile: flag });
      try {
        const report = await job.prepare();
        expect(report.ok, JSON.stringify(report.checks)).toBe(true);
        const running = job.execute(report);
        running.catch(() => undefined);
        await waitUntil(() => ['postponed', 'failed'].includes(job.status().state), 'the revert to catch up');
        await admin.query("INSERT INTO t VALUES (5, 'a-very-long-address@example.com', 5)");
        await expect(running).rejects.toThrow(/\(the row id=5\) does not fit .*value too long for type character varying\(20\)/);
      } finally {
        await job.close();
      }
      expect((await state(admin)).columns.find((c) => c.attname === 'email').type).toBe('character varying(100)');
      await admin.query("UPDATE t SET email = 'e@x' WHERE id = 5");
      await runRevert(url, 't');
      expect((await state(admin)).columns.find((c) => c.attname === 'email').type).toBe('character varying(20)');
      expect((await admin.query('SELECT email FROM t WHERE id = 5')).rows[0].email).toBe('e@x');
    } finally {
      await admin.end();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('takes back from the live table a row whose value since the swap did not fit, but was fixed since', async () => {
    // More changes between the two than one batch takes: the long value is applied on its own.
    const { url, admin } = await altered('ALTER COLUMN email TYPE varchar(100)', [
      "INSERT INTO t VALUES (6, 'a-very-long-address@example.com', 6)",
      "INSERT INTO t SELECT g, 'f' || g || '@x', g FROM generate_series(100, 2599) g",
      "UPDATE t SET email = 'f@x', n = 66 WHERE id = 6",
    ]);
    try {
      await runRevert(url, 't');
      expect((await admin.query('SELECT email, n FROM t WHERE id = 6')).rows[0]).toEqual({ email: 'f@x', n: 66 });
      expect((await admin.query('SELECT count(*)::int AS n FROM t')).rows[0].n).toBe(3 + 1 + 2500);
    } finally {
      await admin.end();
    }
  });

  it('takes back a row that the cut-over meets under its lock only once the lock is gone: the attempt is given up and retried', async () => {
    const { url, admin } = await altered('ALTER COLUMN email TYPE varchar(100)', []);
    let written = false;
    const { log, lines } = capturingLogger();
    try {
      const result = await runRevert(url, 't', {
        log,
        testHooks: {
          // Committed before the lock, so the drain under it meets them: a value the old email cannot
          // hold, fixed only in a later batch. Taking the row back reads the live table, which the lock blocks.
          afterSnapshotWait: async () => {
            if (written) return;
            written = true;
            await admin.query("INSERT INTO t VALUES (7, 'a-very-long-address@example.com', 7)");
            await admin.query("INSERT INTO t SELECT g, 'f' || g || '@x', g FROM generate_series(100, 2599) g");
            await admin.query("UPDATE t SET email = 'g@x' WHERE id = 7");
          },
        },
      });
      expect(result.cutoverAttempts).toBe(2);
      // Given up under the lock, not waited out there (the application's writes queue behind it).
      const failed = lines.filter((l) => l.msg === 'cut-over attempt failed; the original is as it was');
      expect(failed.map((l) => l.reason)).toEqual([expect.stringMatching(/must be taken back from the live table, which this lock blocks/)]);
      expect((await admin.query("SELECT format_type(atttypid, atttypmod) AS t FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'email'")).rows[0].t).toBe('character varying(20)');
      expect((await admin.query('SELECT email, n FROM t WHERE id = 7')).rows).toEqual([{ email: 'g@x', n: 7 }]);
      expect((await admin.query('SELECT count(*)::int AS n FROM t')).rows[0].n).toBe(3 + 1 + 2500);
    } finally {
      await admin.end();
    }
  });

  it('keeps the old values of a column the ALTER dropped: in rows changed since the swap, in a row taken back from the live table, and going forward again', async () => {
    // id 3 is written too long for the old email, then fixed: the revert takes it back from the live table (recopyKeys).
    const { url, admin } = await altered('DROP COLUMN note, ALTER COLUMN email TYPE varchar(100)', [
      'UPDATE t SET n = 11 WHERE id = 1',
      "UPDATE t SET email = 'a-very-long-address@example.com' WHERE id = 3",
      "INSERT INTO t SELECT g, 'f' || g || '@x', g FROM generate_series(100, 2599) g",
      "UPDATE t SET email = 'c2@x', n = 33 WHERE id = 3",
      "INSERT INTO t VALUES (4, 'd@x', 4)",
      'DELETE FROM t WHERE id = 2',
    ]);
    const rows = async () => (await admin.query('SELECT id, email, n, note FROM t WHERE id < 100 ORDER BY id')).rows;
    try {
      const result = await runRevert(url, 't');
      expect(result.repairedChunks).toBe(0);
      expect(await rows()).toEqual([
        { id: 1, email: 'a@x', n: 11, note: 'one' },
        { id: 3, email: 'c2@x', n: 33, note: 'three' },
        { id: 4, email: 'd@x', n: 4, note: null },
      ]);
      expect((await admin.query('SELECT count(*)::int AS n FROM t WHERE id >= 100 AND note IS NULL')).rows[0].n).toBe(2500);
      // Forward again (a revert of the revert) drops note again; then back once more.
      await admin.query("UPDATE t SET note = 'ONE' WHERE id = 1");
      await runRevert(url, 't');
      expect((await admin.query("SELECT count(*)::int AS n FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'note' AND NOT attisdropped")).rows[0].n).toBe(0);
      await admin.query('UPDATE t SET n = 111 WHERE id = 1');
      await runRevert(url, 't');
      // note's values are the ones the old table held at the second swap.
      expect(await rows()).toEqual([
        { id: 1, email: 'a@x', n: 111, note: 'ONE' },
        { id: 3, email: 'c2@x', n: 33, note: 'three' },
        { id: 4, email: 'd@x', n: 4, note: null },
      ]);
    } finally {
      await admin.end();
    }
  });

  it('says what creating the way back waits for: a transaction writing when the slot is made', async () => {
    const { url } = await createPgDatabase('revwait');
    const admin = await pgConnect(url);
    const writer = await pgConnect(url);
    const dir = mkdtempSync(join(tmpdir(), 'ss-revwait-'));
    const flag = join(dir, 'postpone');
    writeFileSync(flag, '');
    const job = newJob(url, 't', 'ALTER COLUMN email TYPE varchar(100)', { revertible: true, postponeCutoverFlagFile: flag });
    try {
      await admin.query(TABLE);
      await admin.query('CREATE TABLE other (id int)');
      await admin.query("INSERT INTO t VALUES (1, 'a@x', 1)");
      const report = await job.prepare();
      expect(report.ok, JSON.stringify(report.checks.filter((c) => !c.ok))).toBe(true);
      const running = job.execute(report);
      running.catch(() => undefined);
      await waitUntil(() => job.status().state === 'postponed', 'the job to be postponed');
      // A transaction with an id, open when the way back's slot is made: the slot waits for it.
      await writer.query('BEGIN');
      await writer.query('INSERT INTO other VALUES (1)');
      const pid = (await writer.query('SELECT pg_backend_pid() AS pid')).rows[0].pid;
      rmSync(flag);
      await waitUntil(() => job.status().waitingFor?.blockers.some((b) => b.session === pid) ?? false, 'the status to name the open transaction');
      expect(job.status().waitingFor).toMatchObject({ what: 'lock' });
      await writer.query('COMMIT');
      await running;
      expect((await admin.query("SELECT count(*)::int AS n FROM pg_replication_slots WHERE database = current_database()")).rows[0].n).toBe(1);
    } finally {
      await job.close();
      await writer.end();
      await admin.end();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reverts a table without a primary key whose replica identity is a unique index: the way back publishes the new table under the same identity', async () => {
    const { url } = await createPgDatabase('revri');
    const admin = await pgConnect(url);
    try {
      await admin.query('CREATE TABLE t (id int NOT NULL, v text)');
      await admin.query('CREATE UNIQUE INDEX t_id ON t (id)');
      await admin.query('ALTER TABLE t REPLICA IDENTITY USING INDEX t_id');
      await admin.query("INSERT INTO t SELECT g, 'x' FROM generate_series(1, 100) g");
      await runAlter(url, 't', 'ADD COLUMN w int', { revertible: true });
      // Published by the way back: the application's UPDATE and DELETE must still work.
      await admin.query("UPDATE t SET v = 'y', w = 1 WHERE id = 1");
      await admin.query('DELETE FROM t WHERE id = 2');
      await runRevert(url, 't');
      expect((await admin.query("SELECT attname FROM pg_attribute WHERE attrelid = 't'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum")).rows.map((r) => r.attname)).toEqual(['id', 'v']);
      expect((await admin.query('SELECT id, v FROM t WHERE id <= 3 ORDER BY id')).rows).toEqual([{ id: 1, v: 'y' }, { id: 3, v: 'x' }]);
      expect((await admin.query("SELECT relreplident FROM pg_class WHERE oid = 't'::regclass")).rows[0].relreplident).toBe('i');
      await admin.query("UPDATE t SET v = 'z' WHERE id = 3");
    } finally {
      await admin.end();
    }
  });

  it('counts the window closed once the kept slot holds more WAL than --max-slot-lag: refused, and cleanup drops the slot', async () => {
    const { url } = await createPgDatabase('revlag');
    const admin = await pgConnect(url);
    try {
      await admin.query(TABLE);
      await runAlter(url, 't', 'ADD COLUMN extra int', { revertible: true, maxSlotLagBytes: 1000 });
      // Any write holds WAL in the kept slot, which nothing reads until a revert.
      await admin.query("INSERT INTO t SELECT g, 'x' || g, g FROM generate_series(1, 200) g");
      const report = await planRevert(url);
      expect(report.checks.filter((c) => !c.ok).map((c) => c.check)).toEqual(['revert-window']);
      expect(report.checks.find((c) => c.check === 'revert-window')!.message).toMatch(/closed: the replication slot kept for it holds \d+ bytes of WAL, more than --max-slot-lag \(1000 bytes\)/);
      const cleaned = await runCli(['cleanup', '--url', url, '--execute']);
      expect(cleaned.code, cleaned.stderr).toBe(0);
      expect((await state(admin)).slots).toEqual([]);
    } finally {
      await admin.end();
    }
  });

  it('cleanup keeps the slot, publication and old table of an open window; the next ALTER closes it and drops them', async () => {
    const { url, admin } = await altered('ADD COLUMN extra int', []);
    try {
      const listed = await runCli(['cleanup', '--url', url, '--json']);
      const kinds = (JSON.parse(listed.stdout).leftovers as Array<{ kind: string; revertWindow?: { open: boolean } }>).map((l) => `${l.kind} ${l.revertWindow?.open ?? '-'}`).sort();
      expect(kinds).toEqual(['backup true', 'publication true', 'revert-point true', 'slot true']);
      const kept = await runCli(['cleanup', '--url', url, '--execute']);
      expect(kept.code, kept.stderr).toBe(0);
      expect((await state(admin)).slots).toHaveLength(1);
      await runAlter(url, 't', 'ADD COLUMN extra2 int');
      const after = await state(admin);
      expect(after.slots).toEqual([]);
      expect(after.relations.map((r) => r.relname)).not.toContain('_ss_reverts');
      expect((await admin.query("SELECT count(*)::int AS n FROM pg_publication WHERE pubname LIKE '\\_ss\\_%'")).rows[0].n).toBe(0);
    } finally {
      await admin.end();
    }
  });
});
