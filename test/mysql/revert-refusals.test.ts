// Revert after the cut-over, MariaDB: what it refuses, and what it must leave alone when it
// does. A revert that would lose data is refused before anything is written, naming the
// rows; one that meets such a write during its own catch-up fails with the live table
// untouched. Also: a renamed column goes back under its old name, a closed window is
// refused, `cleanup` keeps a revert point while its window is open, and the next ALTER
// of the table closes it.

import { describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMysqlDatabase } from '../support/databases.js';
import { openDb, type Db } from '../support/db.js';
import { capturingLogger, newJob, runAlter, runRevert, waitUntil } from '../support/alter.js';
import { startCli } from '../support/cli.js';

const runCli = (args: string[]) => startCli(args).done;

async function definition(db: Db, table = 't'): Promise<string> {
  const rows = await db.query<{ c: string }>(`SHOW CREATE TABLE ${table}`);
  return String((rows[0] as Record<string, unknown>)['Create Table']);
}

async function tableNames(db: Db): Promise<string[]> {
  return (await db.query<{ t: string }>('SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() ORDER BY 1')).map((r) => r.t);
}

async function planRevert(url: string) {
  const job = newJob(url, 't', '', { revert: true });
  try {
    return await job.prepare();
  } finally {
    await job.close();
  }
}

/** A revertible ALTER of a fresh table `t` (id, email, n, note), then `after` written to the new table. */
async function altered(createSql: string, alter: string, after: string[]): Promise<{ url: string; db: Db }> {
  const { url } = await createMysqlDatabase('revref');
  const db = await openDb(url);
  await db.exec(createSql);
  await db.exec("INSERT INTO t (id, email, n, note) VALUES (1, 'a@x', 1, 'one'), (2, 'b@x', 2, NULL), (3, 'c@x', 3, 'three')");
  await runAlter(url, 't', alter, { revertible: true });
  for (const sql of after) await db.exec(sql);
  return { url, db };
}

const TABLE =
  'CREATE TABLE t (id INT PRIMARY KEY, email VARCHAR(20) NOT NULL, n INT NOT NULL, ' +
  'note VARCHAR(50) CHARACTER SET latin1 NULL, UNIQUE KEY uk_email (email), CONSTRAINT n_positive CHECK (n > 0)) ENGINE=InnoDB';

describe('mysql: what revert refuses', () => {
  const refusals = [
    {
      what: 'a value longer than the old column',
      alter: 'MODIFY email VARCHAR(100) NOT NULL',
      after: ["INSERT INTO t (id, email, n, note) VALUES (7, 'a-very-long-address@example.com', 7, 'x')"],
      says: /email: values the old column \(varchar\(20\) NOT NULL\) cannot hold \(id=7\)/,
    },
    {
      what: 'a number out of the old range',
      alter: 'MODIFY n BIGINT NOT NULL',
      after: ['INSERT INTO t (id, email, n) VALUES (8, \'h@x\', 5000000000)'],
      says: /n: values the old column \(int\(11\) NOT NULL\) cannot hold \(id=8\)/,
    },
    {
      what: 'NULL where the old column is NOT NULL',
      alter: 'MODIFY n INT NULL',
      after: ["INSERT INTO t (id, email, n) VALUES (9, 'i@x', NULL)"],
      says: /n: values the old column \(int\(11\) NOT NULL\) cannot hold \(id=9\)/,
    },
    {
      what: 'a duplicate under a unique key the ALTER dropped',
      alter: 'DROP INDEX uk_email',
      after: ["INSERT INTO t (id, email, n) VALUES (10, 'a@x', 10)"],
      says: /unique key uk_email of the old table: values the new table holds more than once \(email=a@x \(2 rows\)\)/,
    },
    {
      what: 'a character the old character set lacks (the character set changed alone)',
      alter: 'MODIFY note VARCHAR(50) CHARACTER SET utf8mb4 NULL',
      after: ["INSERT INTO t (id, email, n, note) VALUES (11, 'k@x', 11, 'rocket 🚀')"],
      says: /note: values the old column \(varchar\(50\)\) cannot hold \(id=11\)/,
    },
    {
      what: 'values equal under the old key\'s collation (a unique key the ALTER made case-sensitive)',
      alter: 'MODIFY email VARCHAR(20) COLLATE utf8mb4_bin NOT NULL',
      after: ["INSERT INTO t (id, email, n) VALUES (12, 'A@x', 12)"],
      says: /unique key uk_email of the old table: values the new table holds more than once \(email=(A|a)@x \(2 rows\)\)/,
    },
    {
      what: 'a row that fails a CHECK constraint the ALTER dropped',
      alter: 'DROP CONSTRAINT n_positive',
      after: ['INSERT INTO t (id, email, n) VALUES (13, \'m@x\', -13)'],
      says: /check constraint n_positive of the old table \(`n` > 0\): rows that fail it \(id=13\)/,
    },
    {
      what: 'a column the ALTER dropped that has no default',
      alter: 'DROP COLUMN n',
      after: [],
      says: /column n of the old table is NOT NULL without a default, and the new table has no column for it/,
    },
  ];

  it.each(refusals)('refuses $what, naming the rows, and changes nothing', async ({ alter, after, says }) => {
    const { url, db } = await altered(TABLE, alter, after);
    try {
      const definitionBefore = await definition(db);
      const tablesBefore = await tableNames(db);
      const rowsBefore = await db.query('SELECT * FROM t ORDER BY id');
      const report = await planRevert(url);
      expect(report.ok).toBe(false);
      const failed = report.checks.filter((c) => !c.ok);
      expect(failed.map((c) => c.check)).toEqual(['revert-losses']);
      expect(failed[0]!.message).toMatch(says);
      expect(await definition(db)).toBe(definitionBefore);
      expect(await tableNames(db)).toEqual(tablesBefore);
      expect(await db.query('SELECT * FROM t ORDER BY id')).toEqual(rowsBefore);
    } finally {
      await db.close();
    }
  });

  it('fails a revert that meets such a write during its catch-up, with the table untouched and the way back still open', async () => {
    const { url, db } = await altered(TABLE, 'MODIFY email VARCHAR(100) NOT NULL', ["INSERT INTO t (id, email, n) VALUES (4, 'd@x', 4)"]);
    const dir = mkdtempSync(join(tmpdir(), 'ss-revert-'));
    const flag = join(dir, 'postpone');
    writeFileSync(flag, '');
    const job = newJob(url, 't', '', { revert: true, postponeCutoverFlagFile: flag });
    try {
      const report = await job.prepare();
      expect(report.ok, JSON.stringify(report.checks)).toBe(true);
      const running = job.execute(report);
      running.catch(() => undefined);
      await waitUntil(() => ['postponed', 'failed'].includes(job.status().state), 'the revert to catch up');
      const definitionBefore = await definition(db);
      await db.exec("INSERT INTO t (id, email, n) VALUES (5, 'a-very-long-address@example.com', 5)");
      await expect(running).rejects.toThrow(/value of column email of t in the row id=5 \(Data too long for column 'email'/);
      expect(await definition(db)).toBe(definitionBefore);
      expect(Number((await db.query<{ n: number }>('SELECT COUNT(*) AS n FROM t'))[0]!.n)).toBe(5);
      expect(await tableNames(db)).toEqual(expect.arrayContaining(['_shadowshift_reverts']));
      expect((await tableNames(db)).filter((t) => t.includes('_ss'))).toHaveLength(1);
      // The way back is still open: with the row fixed, the revert goes through.
      await db.exec("UPDATE t SET email = 'e@x' WHERE id = 5");
      await runRevert(url, 't');
      expect(await definition(db)).toMatch(/`email` varchar\(20\) NOT NULL/);
      expect((await db.query<{ email: string }>('SELECT email FROM t WHERE id = 5'))[0]!.email).toBe('e@x');
    } finally {
      await job.close();
      await db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('takes back from the live table a row whose value since the swap did not fit, but was fixed since', async () => {
    // More changes between the two than one batch takes: the long value is applied on its own.
    const { url, db } = await altered(TABLE, 'MODIFY email VARCHAR(100) NOT NULL', [
      "INSERT INTO t (id, email, n) VALUES (6, 'a-very-long-address@example.com', 6)",
      ...Array.from({ length: 5 }, (_, b) => `INSERT INTO t (id, email, n) VALUES ${Array.from({ length: 500 }, (_, i) => `(${100 + b * 500 + i}, 'f${100 + b * 500 + i}@x', 1)`).join(', ')}`),
      "UPDATE t SET email = 'f@x', n = 66 WHERE id = 6",
    ]);
    try {
      await runRevert(url, 't');
      expect(await db.query('SELECT email, n FROM t WHERE id = 6')).toEqual([{ email: 'f@x', n: 66 }]);
      expect(Number((await db.query<{ n: number }>('SELECT COUNT(*) AS n FROM t'))[0]!.n)).toBe(3 + 1 + 2500);
    } finally {
      await db.close();
    }
  });

  it('takes back a row that the cut-over meets under its lock only once the lock is gone: the attempt is given up and retried', async () => {
    const { url, db } = await altered(TABLE, 'MODIFY email VARCHAR(100) NOT NULL', []);
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
            await db.exec("INSERT INTO t (id, email, n) VALUES (7, 'a-very-long-address@example.com', 7)");
            await db.exec(`INSERT INTO t (id, email, n) VALUES ${Array.from({ length: 2500 }, (_, i) => `(${100 + i}, 'f${100 + i}@x', 1)`).join(', ')}`);
            await db.exec("UPDATE t SET email = 'g@x' WHERE id = 7");
          },
        },
      });
      expect(result.cutoverAttempts).toBe(2);
      // Given up under the lock, not waited out there (the application's writes queue behind it).
      const failed = lines.filter((l) => l.msg === 'cut-over attempt failed; the original is as it was');
      expect(failed.map((l) => l.reason)).toEqual([expect.stringMatching(/must be taken back from the live table, which this lock blocks/)]);
      expect(await definition(db)).toMatch(/`email` varchar\(20\) NOT NULL/);
      expect(await db.query('SELECT email, n FROM t WHERE id = 7')).toEqual([{ email: 'g@x', n: 7 }]);
      expect(Number((await db.query<{ n: number }>('SELECT COUNT(*) AS n FROM t'))[0]!.n)).toBe(3 + 1 + 2500);
    } finally {
      await db.close();
    }
  });

  it('does not refuse what the old character set holds: an ENUM of accented values moved to utf8mb4 and back', async () => {
    const { url, db } = await altered(TABLE.replace('note VARCHAR(50) CHARACTER SET latin1 NULL', "note ENUM('one', 'three', 'café') CHARACTER SET latin1 NULL"), "MODIFY note ENUM('one', 'three', 'café') CHARACTER SET utf8mb4 NULL", [
      "INSERT INTO t (id, email, n, note) VALUES (14, 'n@x', 14, 'café')",
    ]);
    try {
      const report = await planRevert(url);
      expect(report.checks.filter((c) => !c.ok)).toEqual([]);
      await runRevert(url, 't');
      expect(await db.query('SELECT note FROM t WHERE id = 14')).toEqual([{ note: 'café' }]);
    } finally {
      await db.close();
    }
  });

  it('a revert point that cannot be saved fails nothing: the swap stands, and the log says revert cannot undo it', async () => {
    const { url, db } = await altered(TABLE, 'MODIFY n BIGINT NOT NULL', []);
    // The store exists now; make its next write fail.
    await db.exec("CREATE TRIGGER no_points BEFORE INSERT ON _shadowshift_reverts FOR EACH ROW SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'points are read-only'");
    await db.exec('DELETE FROM _shadowshift_reverts');
    const { log, lines } = capturingLogger();
    try {
      const result = await runAlter(url, 't', 'MODIFY note VARCHAR(80) NULL', { revertible: true, log });
      expect(result.backupTable).toBeTruthy();
      expect(await definition(db)).toMatch(/`note` varchar\(80\)/);
      expect(lines.filter((l) => l.level === 40).map((l) => l.msg)).toContain('the swap is done, but its revert point could not be saved: `shadowshift revert` cannot undo this job');
      expect(await db.query('SELECT * FROM _shadowshift_reverts')).toEqual([]);
    } finally {
      await db.close();
    }
  });

  it('keeps the old values of a column the ALTER dropped: in rows changed since the swap, in a row taken back from the live table, and going forward again', async () => {
    // id 3 is written too long for the old email, then fixed: the revert takes it back from the live table (recopyKeys).
    const { url, db } = await altered(TABLE, 'DROP COLUMN note, MODIFY email VARCHAR(100) NOT NULL', [
      'UPDATE t SET n = 11 WHERE id = 1',
      "UPDATE t SET email = 'a-very-long-address@example.com' WHERE id = 3",
      ...Array.from({ length: 5 }, (_, b) => `INSERT INTO t (id, email, n) VALUES ${Array.from({ length: 500 }, (_, i) => `(${100 + b * 500 + i}, 'f${100 + b * 500 + i}@x', 1)`).join(', ')}`),
      "UPDATE t SET email = 'c2@x', n = 33 WHERE id = 3",
      "INSERT INTO t (id, email, n) VALUES (4, 'd@x', 4)",
      'DELETE FROM t WHERE id = 2',
    ]);
    try {
      const result = await runRevert(url, 't');
      expect(result.repairedChunks).toBe(0);
      expect(await db.query('SELECT id, email, n, note FROM t WHERE id < 100 ORDER BY id')).toEqual([
        { id: 1, email: 'a@x', n: 11, note: 'one' },
        { id: 3, email: 'c2@x', n: 33, note: 'three' },
        { id: 4, email: 'd@x', n: 4, note: null },
      ]);
      expect(Number((await db.query<{ n: number }>('SELECT COUNT(*) AS n FROM t WHERE id >= 100 AND note IS NULL'))[0]!.n)).toBe(2500);
      // Forward again (a revert of the revert) drops note again; then back once more.
      await db.exec("UPDATE t SET note = 'ONE' WHERE id = 1");
      await runRevert(url, 't');
      expect(await definition(db)).not.toMatch(/`note`/);
      // note's values are the ones the old table held at the second swap.
      await db.exec('UPDATE t SET n = 111 WHERE id = 1');
      await runRevert(url, 't');
      expect(await db.query('SELECT id, n, note FROM t WHERE id < 100 ORDER BY id')).toEqual([
        { id: 1, n: 111, note: 'ONE' },
        { id: 3, n: 33, note: 'three' },
        { id: 4, n: 4, note: null },
      ]);
    } finally {
      await db.close();
    }
  });

  it('puts a renamed column back under its old name, with the values written since', async () => {
    const { url, db } = await altered(TABLE, 'RENAME COLUMN note TO memo, ADD COLUMN extra INT NULL', [
      "INSERT INTO t (id, email, n, memo, extra) VALUES (4, 'd@x', 4, 'four', 44)",
      "UPDATE t SET memo = 'ONE' WHERE id = 1",
      'DELETE FROM t WHERE id = 2',
    ]);
    try {
      const plan = await planRevert(url);
      expect(plan.ok, JSON.stringify(plan.checks)).toBe(true);
      expect(plan.columns).toContainEqual({ source: 'memo', target: 'note' });
      expect(plan.columnsNotCopied).toEqual(['extra']);
      const printed = await runCli(['revert', '--url', url, '--table', 't']);
      expect(printed.code, printed.stderr).toBe(0);
      expect(printed.stdout).toMatch(/^shadowshift revert plan for \S+\.t /m);
      expect(printed.stdout).toMatch(/undoes: +RENAME COLUMN note TO memo, ADD COLUMN extra INT NULL/);
      expect(printed.stdout).toMatch(/carried back: +id, email, n, memo -> note/);
      expect(printed.stdout).toMatch(/dropped: +extra \(columns the ALTER added/);
      expect(printed.stdout).toMatch(/Nothing was changed. Run again with --execute/);
      await runRevert(url, 't');
      expect(await db.query('SELECT id, note FROM t ORDER BY id')).toEqual([
        { id: 1, note: 'ONE' },
        { id: 3, note: 'three' },
        { id: 4, note: 'four' },
      ]);
    } finally {
      await db.close();
    }
  });

  it('refuses once the window has closed, and cleanup keeps an open window unless told to close it', async () => {
    const { url } = await createMysqlDatabase('revwin');
    const db = await openDb(url);
    try {
      await db.exec(TABLE);
      await db.exec("INSERT INTO t (id, email, n) VALUES (1, 'a@x', 1)");
      const plan = await runCli(['alter', '--url', url, '--table', 't', '--alter', 'ADD COLUMN extra INT NULL', '--revertible', '--revert-window', '1']);
      expect(plan.stdout).toMatch(/revertible: +yes: `shadowshift revert` can undo it for 1 s after the swap/);
      await runAlter(url, 't', 'ADD COLUMN extra INT NULL', { revertible: true, revertWindowSeconds: 3600 });
      const listed = await runCli(['cleanup', '--url', url]);
      expect(listed.stdout).toMatch(/revert-point\s+\S+\.t\s+\(kept for `shadowshift revert`/);
      expect(listed.stdout).toMatch(/backup\s+t_ssold_\w+\s+\(kept for `shadowshift revert`/);
      // Two hours pass: the swap's recorded time moves back (no test waits for a clock).
      await db.exec("UPDATE _shadowshift_reverts SET checkpoint = JSON_SET(checkpoint, '$.swappedAt', DATE_FORMAT(UTC_TIMESTAMP(3) - INTERVAL 2 HOUR, '%Y-%m-%dT%H:%i:%s.%fZ'))");
      const report = await planRevert(url);
      expect(report.checks.filter((c) => !c.ok).map((c) => c.check)).toEqual(['revert-window']);
      expect(report.checks.find((c) => c.check === 'revert-window')!.message).toMatch(/the revert window of \S+\.t closed 60 min ago \(the ALTER swapped 2 h ago; --revert-window was 60 min\)/);
      // Closed: plain debris now, removed by --execute with the old table it kept.
      const cleaned = await runCli(['cleanup', '--url', url, '--execute']);
      expect(cleaned.code, cleaned.stderr).toBe(0);
      expect((await tableNames(db)).filter((t) => t !== 't')).toEqual([]);
    } finally {
      await db.close();
    }
  });

  it('cleanup --execute keeps an open window; --close-reverts closes it; the next ALTER closes it and says so', async () => {
    const { url, db } = await altered(TABLE, 'ADD COLUMN extra INT NULL', []);
    try {
      const kept = await runCli(['cleanup', '--url', url, '--execute']);
      expect(kept.code, kept.stderr).toBe(0);
      expect(await tableNames(db)).toEqual(expect.arrayContaining(['_shadowshift_reverts']));
      const next = newJob(url, 't', 'ADD COLUMN extra2 INT NULL');
      try {
        const report = await next.prepare();
        expect(report.ok).toBe(true);
        expect(report.checks.find((c) => c.check === 'revert-window')).toMatchObject({ ok: true, warning: true });
        await next.execute(report);
      } finally {
        await next.close();
      }
      expect(await tableNames(db)).not.toContain('_shadowshift_reverts');
      await expect(planRevert(url)).rejects.toThrow(/has no revert point/);

      await runAlter(url, 't', 'ADD COLUMN extra3 INT NULL', { revertible: true });
      const closed = await runCli(['cleanup', '--url', url, '--execute', '--close-reverts']);
      expect(closed.code, closed.stderr).toBe(0);
      expect((await tableNames(db)).filter((t) => t !== 't')).toEqual([]);
    } finally {
      await db.close();
    }
  });
});
