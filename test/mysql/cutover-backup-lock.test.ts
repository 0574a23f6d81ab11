// A backup that asks for the backup lock while the cut-over holds the table (a nightly
// mariabackup, mydumper or mysqldump --master-data) must not let the application's
// queued writes into the old table. On MariaDB the RENAME takes the table first and only
// then try-locks the backup lock; a FLUSH TABLES WITH READ LOCK or BACKUP STAGE waiting
// behind the cut-over is granted at the unlock, the RENAME gives the table back and the
// queued INSERT runs into the old table (mysql-backup-locks.ts). Before this, the job
// ended 'done', exit 0, with the write in the backup table only: every time behind
// FLUSH TABLES WITH READ LOCK, in about one run of three behind BACKUP STAGE START (which
// blocks DDL only for a moment, so the INSERT and the RENAME race for the table).
//
// Every interleaving is forced by waiting on processlist states, never on time. The
// tests take global locks, so they run on a server of their own.

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import type { Connection, ResultSetHeader, RowDataPacket } from 'mysql2/promise';
import type { MysqlSession } from '../../src/dialects/mysql/mysql-dialect.js';
import type { ArtefactNames, ChangeStream, CopyPlan, PreflightContext } from '../../src/dialects/dialect.js';
import { CutoverAttemptError, WritesAfterDrainError } from '../../src/util/errors.js';
import { silentLogger } from '../../src/util/logger.js';
import { mysqlConnect } from '../support/databases.js';
import { newJob, waitUntil } from '../support/alter.js';
import { startMariaDb, type RunningServer } from '../support/servers.js';
import { openSession, prepareShadow } from './helpers.js';
import { mysqlSeq } from '../support/db.js';

let server: RunningServer;
let url: string;
let admin: Connection;
let session: MysqlSession;
const schema = 'app';

beforeAll(async () => {
  server = await startMariaDb();
  const root = await mysqlConnect(server.adminUrl(''));
  await root.query(`CREATE DATABASE ${schema}`);
  await root.end();
  url = server.adminUrl(schema);
  admin = await mysqlConnect(url);
  session = await openSession(url);
}, 60_000);
afterAll(async () => {
  await session?.close();
  await admin?.end();
  await server?.stop();
});

async function idOf(conn: Connection): Promise<number> {
  const [r] = (await conn.query('SELECT CONNECTION_ID() AS id')) as unknown as [RowDataPacket[]];
  return Number(r[0]!.id);
}

async function stateOf(id: number): Promise<string> {
  const [r] = (await admin.query('SELECT STATE AS s FROM information_schema.PROCESSLIST WHERE ID = ?', [id])) as unknown as [RowDataPacket[]];
  return String(r[0]?.s ?? '');
}

function waitState(id: number, state: string): Promise<void> {
  return waitUntil(async () => (await stateOf(id)) === state, `session ${id} to be "${state}"`, 30_000, 5);
}

/** The cut-over's RENAME gave the table back and waits for the backup lock: the hole. */
async function renameWaitsForBackup(): Promise<boolean> {
  const [r] = (await admin.query(
    "SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE INFO LIKE 'RENAME TABLE%' AND STATE = 'Waiting for backup lock'",
  )) as unknown as [RowDataPacket[]];
  return Number(r[0]!.n) > 0;
}

async function rowCount(table: string, where: string): Promise<number> {
  const [r] = (await admin.query(`SELECT COUNT(*) AS n FROM \`${table}\` WHERE ${where}`)) as unknown as [RowDataPacket[]];
  return Number(r[0]!.n);
}

/** Shadow copied, stream open, and what the engine's pump does under the lock: drain to a marker. */
async function setUp(table: string): Promise<{ plan: CopyPlan; names: ArtefactNames; stream: ChangeStream; drainTo(id: string): Promise<void> }> {
  const { plan, names } = await prepareShadow(session, schema, table, 'ADD COLUMN extra INT NOT NULL DEFAULT 7');
  const stream = session.openChangeStream(plan, names, 'bljob');
  await stream.start();
  const bounds = await session.copier.keyBounds(plan);
  if (bounds) await session.copier.copyChunk(plan, { after: null, upTo: bounds.max });
  const seen = new Set<string>();
  return {
    plan,
    names,
    stream,
    async drainTo(id: string) {
      await stream.writeMarker(id);
      const deadline = Date.now() + 10_000;
      while (!seen.has(id)) {
        if (Date.now() > deadline) throw new CutoverAttemptError('marker did not come back');
        const b = stream.take(1000);
        if (!b) {
          await stream.waitForData(20);
          continue;
        }
        await session.applier.apply(plan, b.events);
        b.markers.forEach((m) => seen.add(m));
      }
    },
  };
}

const backups = [
  { request: 'FLUSH TABLES WITH READ LOCK', release: 'UNLOCK TABLES' },
  { request: 'BACKUP STAGE START', release: 'BACKUP STAGE END' },
];

describe.each(backups)('cut-over while "$request" waits for the backup lock', ({ request, release }) => {
  it('is refused before the unlock, and the retried swap has the write queued on the table', async () => {
    const table = `bl${backups.findIndex((b) => b.request === request)}`;
    await admin.query(`CREATE TABLE ${table} (id INT PRIMARY KEY, v INT NOT NULL)`);
    await admin.query(`INSERT INTO ${table} SELECT seq, seq FROM ${mysqlSeq(1, 10)}`);
    const { plan, names, stream, drainTo } = await setUp(table);
    const backup = await mysqlConnect(url);
    const app = await mysqlConnect(url);
    const [backupId, appId] = [await idOf(backup), await idOf(app)];
    let backupRequest: Promise<unknown> | null = null;
    let insert: Promise<unknown> | null = null;
    try {
      let settled = false;
      const first = session.cutover
        .swap(plan, names, {
          lockTimeoutMs: 20_000,
          log: silentLogger(),
          drainUnderLock: async () => {
            await drainTo('m1');
            // After the drain, so the marker's own INSERT is not held up by the pending backup.
            backupRequest = backup.query(request);
            await waitState(backupId, 'Waiting for backup lock');
            insert = app.query(`INSERT INTO ${table} (id, v) VALUES (11, 11)`);
            await waitState(appId, 'Waiting for table metadata lock');
          },
        })
        .then(
          () => 'swapped' as const,
          (e: unknown) => e,
        )
        .finally(() => (settled = true));
      await waitUntil(() => backupRequest !== null, 'the backup request', 30_000, 5);
      await backupRequest; // granted once the cut-over let go of its lock
      // Refused: the attempt ends. Before the fix: the RENAME gave the table back and waits
      // for the backup lock while the INSERT holds the table (or, behind BACKUP STAGE START,
      // the INSERT simply ran), and the swap completes once the backup is released.
      await waitUntil(async () => settled || ((await renameWaitsForBackup()) && (await stateOf(appId)) === 'Waiting for backup lock'), 'the attempt to end or the RENAME to give the table back', 30_000, 5);
      await backup.query(release);
      await insert;
      const outcome = await first;
      if (outcome instanceof CutoverAttemptError) {
        expect(outcome.message).toContain(`session ${backupId} (root, `);
        expect(outcome.message).toContain(`waits for the backup lock: ${request}`);
        await session.cutover.swap(plan, names, { lockTimeoutMs: 20_000, log: silentLogger(), drainUnderLock: () => drainTo('m2') });
      }
      const inNew = await rowCount(table, 'id = 11 AND extra = 7');
      expect({ firstAttempt: outcome instanceof CutoverAttemptError ? 'refused' : outcome, inNew }).toEqual({ firstAttempt: 'refused', inNew: 1 });
      expect(await rowCount(table, '1')).toBe(11);
    } finally {
      await stream.stop();
      await Promise.allSettled([backupRequest, insert]);
      await backup.query(release).catch(() => undefined);
      await Promise.all([backup.end(), app.end()]);
      await session.dropArtefacts(names, { keepBackup: false });
    }
  });
});

/** A client inserting as fast as it can; remembers every acknowledged id. */
function startWriter(conn: Connection, table: string) {
  const acked: number[] = [];
  const errors: string[] = [];
  let stop = false;
  const done = (async () => {
    while (!stop) {
      try {
        const [r] = await conn.query<ResultSetHeader>(`INSERT INTO \`${table}\` (v) VALUES (1)`);
        acked.push(r.insertId);
      } catch (err) {
        errors.push((err as Error).message);
      }
    }
  })();
  return {
    acked,
    errors,
    async stop() {
      stop = true;
      await done;
    },
  };
}

describe('a job whose cut-over meets FLUSH TABLES WITH READ LOCK', () => {
  it('retries after the backup and ends with every acknowledged write in the new table', async () => {
    await admin.query('CREATE TABLE jb (id INT AUTO_INCREMENT PRIMARY KEY, v INT NOT NULL)');
    await admin.query(`INSERT INTO jb (v) SELECT seq FROM ${mysqlSeq(1, 2000)}`);
    const backup = await mysqlConnect(url);
    const app = await mysqlConnect(url);
    const writerConn = await mysqlConnect(url);
    const [backupId, appId] = [await idOf(backup), await idOf(app)];
    const attempts: string[] = [];
    let ftwrl: Promise<unknown> | null = null;
    let insert: Promise<unknown> | null = null;
    const job = newJob(url, 'jb', 'ADD COLUMN extra INT NOT NULL DEFAULT 7', {
      checksum: false,
      cutoverLockTimeoutMs: 20_000,
      cutoverRetries: 5,
      observer: { cutoverAttempt: (result) => void attempts.push(result) },
      testHooks: {
        afterCutoverDrain: async (attempt) => {
          if (attempt !== 1) return;
          ftwrl = backup.query('FLUSH TABLES WITH READ LOCK');
          await waitState(backupId, 'Waiting for backup lock');
          insert = app.query('INSERT INTO jb (id, v) VALUES (1000000, -1)');
          await waitState(appId, 'Waiting for table metadata lock');
        },
      },
    });
    const writer = startWriter(writerConn, 'jb');
    try {
      const report = await job.prepare();
      expect(report.ok, JSON.stringify(report.checks)).toBe(true);
      const running = job.execute(report);
      running.catch(() => undefined);
      await waitUntil(() => ftwrl !== null || job.status().state === 'failed', 'the first cut-over attempt', 120_000);
      await ftwrl;
      await waitUntil(async () => attempts.length > 0 || (await renameWaitsForBackup()), 'the first attempt to end', 30_000, 5);
      await backup.query('UNLOCK TABLES');
      await running;
      await insert;
      expect(attempts[0]).toBe('failed');
      expect(job.status()).toMatchObject({ state: 'done', error: null });
    } finally {
      await writer.stop();
      await job.close();
      await backup.query('UNLOCK TABLES').catch(() => undefined);
      await Promise.all([backup.end(), app.end(), writerConn.end()]);
    }
    expect(writer.errors).toEqual([]);
    expect(writer.acked.length).toBeGreaterThan(0);
    const [rows] = (await admin.query('SELECT id FROM jb WHERE extra = 7')) as unknown as [RowDataPacket[]];
    const have = new Set(rows.map((r) => Number(r.id)));
    expect([...writer.acked, 1000000].filter((id) => !have.has(id))).toEqual([]);
    expect(have.size).toBe(2000 + writer.acked.length + 1);
  }, 180_000);
});

describe('a job whose cut-over cannot see the backup (a user without PROCESS)', () => {
  it('fails after the swap naming the write that reached the old table; the new table is live and the old one kept', async () => {
    await admin.query('CREATE TABLE lp (id INT PRIMARY KEY, v INT NOT NULL)');
    await admin.query(`INSERT INTO lp SELECT seq, seq FROM ${mysqlSeq(1, 100)}`);
    await admin.query("CREATE USER 'blind'@'%' IDENTIFIED BY 'pw'");
    await admin.query(`GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, ALTER, INDEX, LOCK TABLES, CREATE TEMPORARY TABLES ON \`${schema}\`.* TO 'blind'@'%'`);
    await admin.query("GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO 'blind'@'%'");
    const jobUrl = new URL(url);
    jobUrl.username = 'blind';
    jobUrl.password = 'pw';
    const backup = await mysqlConnect(url);
    const app = await mysqlConnect(url);
    const [backupId, appId] = [await idOf(backup), await idOf(app)];
    let ftwrl: Promise<unknown> | null = null;
    let insert: Promise<unknown> | null = null;
    const job = newJob(jobUrl.toString(), 'lp', 'ADD COLUMN extra INT NOT NULL DEFAULT 7', {
      checksum: false,
      cutoverLockTimeoutMs: 20_000,
      cutoverRetries: 3,
      testHooks: {
        afterCutoverDrain: async (attempt) => {
          if (attempt !== 1) return;
          ftwrl = backup.query('FLUSH TABLES WITH READ LOCK');
          await waitState(backupId, 'Waiting for backup lock');
          insert = app.query('INSERT INTO lp (id, v) VALUES (500, -1)');
          await waitState(appId, 'Waiting for table metadata lock');
        },
      },
    });
    let outcome: unknown;
    try {
      const report = await job.prepare();
      expect(report.ok, JSON.stringify(report.checks)).toBe(true);
      expect(report.checks.find((c) => c.check === 'cutover-backup-visibility')).toMatchObject({ ok: true, warning: true });
      const running = job.execute(report).then(
        () => 'done',
        (e: unknown) => e,
      );
      await waitUntil(() => ftwrl !== null || job.status().state === 'failed', 'the first cut-over attempt', 120_000);
      await ftwrl;
      // The hole: the RENAME gave the table back to the INSERT and waits for the backup lock.
      await waitUntil(async () => (await renameWaitsForBackup()) && (await stateOf(appId)) === 'Waiting for backup lock', 'the RENAME to give the table back', 30_000, 5);
      await backup.query('UNLOCK TABLES');
      await insert;
      outcome = await running;
    } finally {
      await job.close();
      await backup.query('UNLOCK TABLES').catch(() => undefined);
      await Promise.all([backup.end(), app.end()]);
      await admin.query("DROP USER 'blind'@'%'");
    }
    const status = job.status();
    const backupTable = status.backupTable!;
    expect(outcome).toBeInstanceOf(WritesAfterDrainError);
    const err = outcome as WritesAfterDrainError;
    expect(err.exitCode).toBe(4);
    expect(err.message).toContain('1 write reached the old table');
    expect(err.message).toContain('insert id=500');
    expect(err.message).toContain(`kept as ${schema}.${backupTable}`);
    expect(status).toMatchObject({ state: 'failed', swapped: true, error: err.message });
    // The new table is live and lacks the write; the old one is kept and holds it.
    const [cols] = (await admin.query("SELECT COLUMN_NAME AS c FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'lp' ORDER BY ORDINAL_POSITION")) as unknown as [RowDataPacket[]];
    expect(cols.map((c) => c.c)).toEqual(['id', 'v', 'extra']);
    expect({ inNew: await rowCount('lp', 'id = 500'), inOld: await rowCount(backupTable, 'id = 500'), newRows: await rowCount('lp', '1') }).toEqual({ inNew: 0, inOld: 1, newRows: 100 });
    const [shadow] = (await admin.query("SELECT COUNT(*) AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'lp_ssnew'")) as unknown as [RowDataPacket[]];
    expect(Number(shadow[0]!.n)).toBe(0);
  }, 180_000);
});

describe('preflight: cutover-backup-visibility', () => {
  const ctx = (): PreflightContext => ({ table: { schema, name: 't' }, info: null, alter: null, plan: null });
  const check = (s: MysqlSession) => s.preflightChecks().find((c) => c.name === 'cutover-backup-visibility')!;

  it('passes quietly with PROCESS, and warns (passing) without it', async () => {
    const withProcess = await check(session).run(ctx());
    expect(withProcess).toMatchObject({ ok: true, message: expect.stringMatching(/PROCESS[\s\S]*metadata_lock_info/) });
    expect(withProcess.warning).toBeFalsy();

    await admin.query("CREATE USER 'noproc'@'%' IDENTIFIED BY 'pw'");
    await admin.query(`GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, ALTER, INDEX, LOCK TABLES, CREATE TEMPORARY TABLES ON \`${schema}\`.* TO 'noproc'@'%'`);
    await admin.query("GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO 'noproc'@'%'");
    const u = new URL(url);
    u.username = 'noproc';
    u.password = 'pw';
    const limited = await openSession(u.toString());
    try {
      const without = await check(limited).run(ctx());
      expect(without).toMatchObject({ ok: true, warning: true, message: expect.stringMatching(/without the PROCESS privilege[\s\S]*FLUSH TABLES WITH READ LOCK[\s\S]*GRANT PROCESS/) });
    } finally {
      await limited.close();
      await admin.query("DROP USER 'noproc'@'%'");
    }
  });
});
