// Writes the binlog stream cannot follow end the job before the cut-over, naming the
// cause; statements that only mention the table do not. The server logs ROW/FULL
// globally (as preflight demands); the offending sessions override it for themselves,
// as a pooled connection opened before a SET GLOBAL would.

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import type { Connection } from 'mysql2/promise';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMysqlDatabase, mysqlConnect } from '../support/databases.js';
import { newJob, waitUntil } from '../support/alter.js';
import { ShadowshiftError, TransientDatabaseError } from '../../src/util/errors.js';
import { tableNames } from './helpers.js';
import { mysqlSeq } from '../support/db.js';

let dir: string;
const open: Connection[] = [];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'shadowshift-refusals-'));
});
afterAll(async () => {
  for (const c of open) await c.end().catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
});

async function connect(url: string): Promise<Connection> {
  const c = await mysqlConnect(url);
  open.push(c);
  return c;
}

/** A fresh database with t (id, v, note) holding 200 rows. */
async function seeded(): Promise<{ url: string; admin: Connection; schema: string }> {
  const db = await createMysqlDatabase('refuse_stream');
  const admin = await connect(db.url);
  await admin.query("CREATE TABLE t (id INT PRIMARY KEY, v INT NOT NULL, note VARCHAR(20) NULL DEFAULT 'dflt')");
  await admin.query(`INSERT INTO t SELECT seq, seq, CONCAT('n', seq) FROM ${mysqlSeq(1, 200)}`);
  return { url: db.url, admin, schema: db.name };
}

async function fingerprint(conn: Connection) {
  const [create] = (await conn.query('SHOW CREATE TABLE t')) as unknown as [Array<Record<string, string>>];
  const [rows] = await conn.query('SELECT id, v, note FROM t ORDER BY id');
  return { create: create[0]!['Create Table'], rows };
}

/**
 * Runs `ADD COLUMN w INT` on t, postponed; while it waits, a separate session runs
 * `statements` and `meanwhile` looks at the tables; then the cut-over is released and
 * the job's outcome returned.
 */
async function jobAround(url: string, statements: string[], meanwhile: () => Promise<void> = async () => {}): Promise<{ err: Error | null; state: string }> {
  const flag = join(dir, `postpone-${Math.random().toString(16).slice(2)}`);
  writeFileSync(flag, '');
  const job = newJob(url, 't', 'ADD COLUMN w INT', { postponeCutoverFlagFile: flag });
  try {
    const running = job.prepare().then((r) => job.execute(r));
    running.catch(() => undefined);
    await waitUntil(() => ['postponed', 'failed'].includes(job.status().state), 'the job to postpone its cut-over');
    const session = await mysqlConnect(url);
    try {
      for (const sql of statements) await session.query(sql);
    } finally {
      await session.end();
    }
    await meanwhile();
    // Released at once: the statements committed before the cut-over writes its marker,
    // so the stream meets them before the marker comes back.
    rmSync(flag);
    const err = await running.then(
      () => null,
      (e: unknown) => e as Error,
    );
    return { err, state: job.status().state };
  } finally {
    rmSync(flag, { force: true });
    await job.close();
  }
}

describe('writes the binlog stream cannot follow', () => {
  it.each([
    {
      what: 'binlog_format=STATEMENT: the UPDATE reaches the binlog as text, with no row event',
      session: "SET SESSION binlog_format = 'STATEMENT'",
      write: 'UPDATE t SET v = v + 1000 WHERE id = 5',
      cause: /a session wrote \S+\.t with binlog_format=STATEMENT\/MIXED: 'UPDATE t SET v = v \+ 1000 WHERE id = 5'; the shadow cannot follow it\. Make every client use binlog_format=ROW/,
    },
    {
      what: 'binlog_format=MIXED: an INSERT of constants is logged as a statement',
      session: "SET SESSION binlog_format = 'MIXED'",
      write: 'INSERT INTO t (id, v) VALUES (500, 1)',
      cause: /a session wrote \S+\.t with binlog_format=STATEMENT\/MIXED: 'INSERT INTO t \(id, v\) VALUES \(500, 1\)'/,
    },
    {
      what: 'binlog_row_image=MINIMAL: an UPDATE of a non-key column logs the key before and the column after',
      session: "SET SESSION binlog_row_image = 'MINIMAL'",
      write: 'UPDATE t SET v = v + 1000 WHERE id = 5',
      cause: /a session wrote \S+\.t with binlog_row_image=MINIMAL\/NOBLOB: its row event leaves out id, v, note, which would reach the shadow as NULL; the shadow cannot follow it\. Make every client use binlog_row_image=FULL/,
    },
    {
      what: 'binlog_row_image=MINIMAL: an INSERT that leaves a column to its default',
      session: "SET SESSION binlog_row_image = 'MINIMAL'",
      write: 'INSERT INTO t (id, v) VALUES (500, 1)',
      cause: /a session wrote \S+\.t with binlog_row_image=MINIMAL\/NOBLOB: its row event leaves out note,/,
    },
  ])('$what: the job fails naming the cause, the original is untouched, nothing is left', async ({ session, write, cause }) => {
    const { url, admin } = await seeded();
    let before: Awaited<ReturnType<typeof fingerprint>> | null = null;
    const { err, state } = await jobAround(url, [session, write], async () => {
      before = await fingerprint(admin);
    });
    expect(err, 'the job should have failed').toBeInstanceOf(ShadowshiftError);
    // Final, not transient: the pump must not reconnect past it.
    expect(err).not.toBeInstanceOf(TransientDatabaseError);
    expect(err!.message).toMatch(cause);
    expect(err!.message).toMatch(/The original is untouched\.$/);
    expect(state).toBe('failed');
    expect(await fingerprint(admin)).toEqual(before);
    expect(await tableNames(admin)).toEqual(['t']);
  });
});

// XA transactions reach the binlog at XA PREPARE, before they commit or roll back
// (mysql-stream-guard.ts, XaGuard). Without the refusal, the chunk that reads id 5
// without row locks while the transaction is prepared copies the old row, and the
// XA COMMIT that follows brings no row event: the update would be lost.
describe('XA transactions', () => {
  it('one that writes the table during the job fails it, naming the cause; the original is untouched, nothing is left', async () => {
    const { url, admin } = await seeded();
    let before: Awaited<ReturnType<typeof fingerprint>> | null = null;
    const { err, state } = await jobAround(url, ["XA START 'ss1'", 'UPDATE t SET v = v + 1000 WHERE id = 5', "XA END 'ss1'", "XA PREPARE 'ss1'", "XA COMMIT 'ss1'"], async () => {
      before = await fingerprint(admin);
    });
    expect(err, 'the job should have failed').toBeInstanceOf(ShadowshiftError);
    expect(err).not.toBeInstanceOf(TransientDatabaseError);
    expect(err!.message).toMatch(/the change stream failed: an XA transaction wrote \S+\.t \(XA END [^)]*\): its changes reach the binary log at XA PREPARE, before it commits or rolls back/);
    expect(err!.message).toMatch(/The original is untouched\.$/);
    expect(state).toBe('failed');
    expect(await fingerprint(admin)).toEqual(before);
    expect(await tableNames(admin)).toEqual(['t']);
  });

  it('one prepared before the job and committed during it fails the job', async () => {
    const { url, admin } = await seeded();
    const preparer = await mysqlConnect(url);
    await preparer.query("XA START 'ss2'");
    await preparer.query('UPDATE t SET v = v + 2000 WHERE id = 7');
    await preparer.query("XA END 'ss2'");
    await preparer.query("XA PREPARE 'ss2'");
    await preparer.end(); // the prepared transaction stays, for another session to commit
    let before: Awaited<ReturnType<typeof fingerprint>> | null = null;
    const { err, state } = await jobAround(url, ["XA COMMIT 'ss2'"], async () => {
      before = await fingerprint(admin);
    });
    expect(err, 'the job should have failed').toBeInstanceOf(ShadowshiftError);
    expect(err!.message).toMatch(/the change stream failed: an XA transaction prepared before the job started committed during it \(XA COMMIT/);
    expect(state).toBe('failed');
    expect(await fingerprint(admin)).toEqual(before);
    expect((await admin.query('SELECT v FROM t WHERE id = 7'))[0]).toEqual([{ v: 2007 }]);
    expect(await tableNames(admin)).toEqual(['t']);
  });
});

describe('DDL seen by the stream', () => {
  it('statements that only mention the table leave the job alone', async () => {
    const { url, admin } = await seeded();
    const { err, state } = await jobAround(url, [
      'CREATE TABLE other (id INT PRIMARY KEY, t INT)',
      'ALTER TABLE other ADD INDEX t (t)',
      'CREATE EVENT t ON SCHEDULE EVERY 1 DAY DO DELETE FROM t WHERE id < 0',
      'ALTER EVENT t DISABLE',
      'CREATE VIEW t_v AS SELECT * FROM t',
      'DROP VIEW t_v',
      // Rebuilds t in place (ALTER ... FORCE on InnoDB): same rows, same definition.
      'OPTIMIZE TABLE t',
      // And the stream still follows t after the rebuild.
      'UPDATE t SET v = -7 WHERE id = 7',
    ]);
    expect(err).toBeNull();
    expect(state).toBe('done');
    const [[backup]] = (await admin.query("SHOW TABLES LIKE 't\\_ssold\\_%'")) as unknown as [[Record<string, string>]];
    const [now] = await admin.query('SELECT id, v, note FROM t ORDER BY id');
    const [old] = await admin.query(`SELECT id, v, note FROM \`${Object.values(backup)[0]}\` ORDER BY id`);
    expect(now).toEqual(old);
    expect((now as Array<{ id: number; v: number }>).find((r) => r.id === 7)?.v).toBe(-7);
    const [[w]] = (await admin.query("SHOW COLUMNS FROM t LIKE 'w'")) as unknown as [[unknown]];
    expect(w).toBeDefined();
  });

  it('a change to the table itself fails the job', async () => {
    const { url, admin } = await seeded();
    const { err, state } = await jobAround(url, ['ALTER TABLE t ADD COLUMN z INT']);
    expect(err?.message).toMatch(/someone else changed \S+\.t while the job ran \("ALTER TABLE t ADD COLUMN z INT"\)/);
    expect(state).toBe('failed');
    expect(await tableNames(admin)).toEqual(['t']);
  });
});
