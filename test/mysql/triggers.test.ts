// A MySQL/MariaDB table's triggers move to the new table at the cut-over
// (mysql-triggers.ts): with their names, definer, timing, order and body, and so that
// across the whole job every application write fires each of its triggers exactly once:
// never from the copy or the applier, never twice, never missed at the swap.
//
// The audit table each trigger writes to is the oracle: its rows per trigger must equal
// the application's own count of the writes that fire it. Two writers keep writing from
// before the job starts until after it ends, through the copy, the catch-up, the
// postponed cut-over, the swap and the renaming of the triggers.

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Connection, ResultSetHeader, RowDataPacket } from 'mysql2/promise';
import type { MysqlSession } from '../../src/dialects/mysql/mysql-dialect.js';
import { CutoverAttemptError } from '../../src/util/errors.js';
import { silentLogger } from '../../src/util/logger.js';
import { newJob, runAlter, runRevert, waitUntil } from '../support/alter.js';
import { startCli } from '../support/cli.js';
import { killFixtureAt } from '../support/kill-at.js';
import { mysqlSeq } from '../support/db.js';
import { drain, freshDb, prepareShadow } from './helpers.js';

let url: string;
let schema: string;
let admin: Connection;
let session: MysqlSession;

beforeAll(async () => {
  ({ url, name: schema, admin, session } = await freshDb('trg'));
  await admin.query('CREATE TABLE audit (seq BIGINT AUTO_INCREMENT PRIMARY KEY, trg VARCHAR(64) NOT NULL, row_id INT NOT NULL, KEY (trg, row_id))');
  await admin.query("CREATE USER IF NOT EXISTS 'ss_auditor'@'localhost'");
  await admin.query(`GRANT ALL ON \`${schema}\`.* TO 'ss_auditor'@'localhost'`);
});
afterAll(async () => {
  await session?.close();
  await admin?.query("DROP USER IF EXISTS 'ss_auditor'@'localhost'").catch(() => undefined);
  await admin?.end();
});

const audit = (trg: string, id: string) => `INSERT INTO audit (trg, row_id) VALUES ('${trg}', ${id})`;

async function triggerDefinitions(table: string): Promise<Array<Record<string, string>>> {
  const [rows] = await admin.query<RowDataPacket[]>(
    `SELECT TRIGGER_NAME, EVENT_MANIPULATION, ACTION_TIMING, ACTION_ORDER, ACTION_STATEMENT, DEFINER, SQL_MODE, COLLATION_CONNECTION
       FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ? AND EVENT_OBJECT_TABLE = ? ORDER BY TRIGGER_NAME`,
    [schema, table],
  );
  return rows.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, String(v)])));
}

async function triggersNamedLike(pattern: string): Promise<string[]> {
  const [rows] = await admin.query<RowDataPacket[]>('SELECT CONCAT(TRIGGER_NAME, \' on \', EVENT_OBJECT_TABLE) AS t FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ? AND TRIGGER_NAME LIKE ?', [schema, pattern]);
  return rows.map((r) => String(r.t));
}

async function auditCounts(prefix: string): Promise<Record<string, number>> {
  const [rows] = await admin.query<RowDataPacket[]>('SELECT trg, COUNT(*) AS n FROM audit WHERE trg LIKE ? GROUP BY trg', [`${prefix}%`]);
  return Object.fromEntries(rows.map((r) => [String(r.trg), Number(r.n)]));
}

describe('a table with triggers', () => {
  it('keeps firing each trigger once per application write across the whole job, and ends with the same triggers on the new table', async () => {
    await admin.query('CREATE TABLE t (id INT PRIMARY KEY, v INT NOT NULL, note VARCHAR(40) NULL)');
    await admin.query(`INSERT INTO t (id, v) SELECT seq, seq FROM ${mysqlSeq(1, 20_000)}`);
    await admin.query('CREATE TABLE other (id INT AUTO_INCREMENT PRIMARY KEY, t_id INT NOT NULL)');
    await admin.query(`CREATE TRIGGER t_bi BEFORE INSERT ON t FOR EACH ROW BEGIN SET NEW.note = CONCAT('bi:', NEW.v); ${audit('t_bi', 'NEW.id')}; END`);
    await admin.query(`CREATE TRIGGER t_ai AFTER INSERT ON t FOR EACH ROW ${audit('t_ai', 'NEW.id')}`);
    await admin.query(`CREATE DEFINER='ss_auditor'@'localhost' TRIGGER t_ai2 AFTER INSERT ON t FOR EACH ROW FOLLOWS t_ai ${audit('t_ai2', 'NEW.id')}`);
    await admin.query(`CREATE TRIGGER t_ai0 AFTER INSERT ON t FOR EACH ROW PRECEDES t_ai ${audit('t_ai0', 'NEW.id')}`);
    await admin.query(`CREATE TRIGGER t_bu BEFORE UPDATE ON t FOR EACH ROW ${audit('t_bu', 'NEW.id')}`);
    await admin.query(`CREATE TRIGGER t_au AFTER UPDATE ON t FOR EACH ROW ${audit('t_au', 'NEW.id')}`);
    await admin.query(`CREATE TRIGGER t_bd BEFORE DELETE ON t FOR EACH ROW ${audit('t_bd', 'OLD.id')}`);
    await admin.query(`CREATE TRIGGER t_ad AFTER DELETE ON t FOR EACH ROW ${audit('t_ad', 'OLD.id')}`);
    // A trigger on another table that names this one: it must reach the new table after the swap.
    await admin.query('CREATE TRIGGER other_ai AFTER INSERT ON other FOR EACH ROW UPDATE t SET v = v + 1 WHERE id = NEW.t_id');
    const before = await triggerDefinitions('t');
    expect(before.map((t) => t.TRIGGER_NAME)).toEqual(['t_ad', 't_ai', 't_ai0', 't_ai2', 't_au', 't_bd', 't_bi', 't_bu']);

    // The model: every write the application was told succeeded, per writer (each writer
    // owns the ids of its parity, so each row's story is one writer's, in order).
    const rows = new Map<number, { v: number; note: string | null }>();
    for (let id = 1; id <= 20_000; id++) rows.set(id, { v: id, note: null });
    const fired = { insert: 0, update: 0, delete: 0 };
    const insertedIds: number[] = [];
    let stop = false;
    let writes = 0;
    const writer = async (w: number) => {
      const conn = await session.ctx.pool.getConnection();
      let next = 1_000_000 + w;
      try {
        for (let i = 0; !stop; i++) {
          const existing = 2 * (1 + Math.floor(Math.random() * 9_999)) - w; // w = 0: even ids, 1: odd
          const kind = i % 4;
          if (kind === 0) {
            const id = (next += 2);
            await conn.query('INSERT INTO t (id, v) VALUES (?, ?)', [id, i]);
            rows.set(id, { v: i, note: `bi:${i}` });
            insertedIds.push(id);
            fired.insert++;
          } else if (kind === 1) {
            // Row triggers fire once per matched row; whether it exists is this writer's knowledge.
            await conn.query('UPDATE t SET v = ? WHERE id = ?', [-i, existing]);
            if (rows.has(existing)) {
              rows.get(existing)!.v = -i;
              fired.update++;
            }
          } else if (kind === 2 && existing > 200) {
            const [r] = await conn.query<ResultSetHeader>('DELETE FROM t WHERE id = ?', [existing]);
            if (r.affectedRows > 0) {
              rows.delete(existing);
              fired.delete++;
            }
          } else {
            // Ids up to 200 are never deleted: other_ai's UPDATE always finds its row.
            const target = 2 * (1 + (i % 100)) - w;
            await conn.query('INSERT INTO other (t_id) VALUES (?)', [target]);
            rows.get(target)!.v += 1;
            fired.update++;
          }
          writes++;
        }
      } finally {
        conn.release();
      }
    };
    const writers = [writer(0), writer(1)];
    const dir = mkdtempSync(join(tmpdir(), 'ss-trg-'));
    const flag = join(dir, 'postpone');
    writeFileSync(flag, '');
    const job = newJob(url, 't', 'ADD COLUMN extra INT NOT NULL DEFAULT 7', { postponeCutoverFlagFile: flag, chunkSize: 1000 });
    try {
      const report = await job.prepare();
      expect(report.checks.find((c) => c.check === 'triggers')).toMatchObject({ ok: true, message: expect.stringMatching(/t_ai2 \(AFTER INSERT, definer ss_auditor@localhost\)[\s\S]*move to the new table/) });
      const running = job.execute(report);
      running.catch(() => undefined);
      await waitUntil(() => job.status().state === 'copying', 'the copy', 30_000);
      const atCopy = writes;
      await waitUntil(() => job.status().state === 'postponed' || job.status().state === 'failed', 'the postponed cut-over', 120_000);
      const atPostponed = writes;
      await waitUntil(() => writes >= atPostponed + 100, 'writes while postponed', 60_000);
      rmSync(flag);
      const result = await running;
      expect(result.repairedChunks).toBe(0);
      const atDone = writes;
      await waitUntil(() => writes >= atDone + 100, 'writes after the swap', 60_000);
      expect(atPostponed).toBeGreaterThan(atCopy);
    } finally {
      stop = true;
      await Promise.allSettled(writers);
      await job.close();
      rmSync(dir, { recursive: true, force: true });
    }
    await Promise.all(writers); // a failed write fails the test

    // The same triggers, under their own names, on the new table; none left on the old one.
    expect(await triggerDefinitions('t')).toEqual(before);
    expect(await triggersNamedLike('%\\_ssnew')).toEqual([]);
    const [old] = await admin.query<RowDataPacket[]>("SELECT TABLE_NAME AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME LIKE 't\\_ssold%'", [schema]);
    expect(old.length).toBe(1);
    expect(await triggerDefinitions(String(old[0]!.n))).toEqual([]);

    // Exactly one audit row per write, per trigger, in the triggers' order.
    expect(await auditCounts('t_')).toEqual({
      t_bi: fired.insert, t_ai0: fired.insert, t_ai: fired.insert, t_ai2: fired.insert,
      t_bu: fired.update, t_au: fired.update,
      t_bd: fired.delete, t_ad: fired.delete,
    });
    expect(fired.insert).toBeGreaterThan(50);
    const [outOfOrder] = await admin.query<RowDataPacket[]>(
      `SELECT COUNT(*) AS n FROM audit a0 JOIN audit a ON a.row_id = a0.row_id AND a.trg = 't_ai' JOIN audit a2 ON a2.row_id = a0.row_id AND a2.trg = 't_ai2'
        WHERE a0.trg = 't_ai0' AND NOT (a0.seq < a.seq AND a.seq < a2.seq)`,
    );
    expect(Number(outOfOrder[0]!.n)).toBe(0);

    // The new table holds what the application wrote, BEFORE INSERT's note included.
    const [live] = await admin.query<RowDataPacket[]>('SELECT id, v, note, extra FROM t ORDER BY id');
    expect(live.length).toBe(rows.size);
    const wrong = live.filter((r) => {
      const m = rows.get(Number(r.id));
      return !m || Number(r.v) !== m.v || (r.note === null ? null : String(r.note)) !== m.note || Number(r.extra) !== 7;
    });
    expect(wrong.slice(0, 5)).toEqual([]);
  });

  it('a failed cut-over attempt drops the triggers it put on the shadow before the stream is applied again', async () => {
    await admin.query('CREATE TABLE f (id INT PRIMARY KEY, v INT NOT NULL)');
    await admin.query(`INSERT INTO f SELECT seq, seq FROM ${mysqlSeq(1, 100)}`);
    await admin.query(`CREATE TRIGGER f_ai AFTER INSERT ON f FOR EACH ROW ${audit('f_ai', 'NEW.id')}`);
    // information_schema shows this body with '?' for the emoji: the move must not.
    await admin.query("CREATE TRIGGER f_bu BEFORE UPDATE ON f FOR EACH ROW SET NEW.v = NEW.v + CHAR_LENGTH('😀')");
    const bodyOf = async (trigger: string) => {
      const [[shown]] = await admin.query<RowDataPacket[]>(`SHOW CREATE TRIGGER ${trigger}`);
      return String(shown!['SQL Original Statement']).replace(/^.*FOR EACH ROW\s+/s, '');
    };
    const emojiBody = await bodyOf('f_bu');
    const { plan, names } = await prepareShadow(session, schema, 'f', 'ADD COLUMN extra INT NOT NULL DEFAULT 7');
    const stream = session.openChangeStream(plan, names, 'trgjob');
    await stream.start();
    try {
      const bounds = await session.copier.keyBounds(plan);
      await session.copier.copyChunk(plan, { after: null, upTo: bounds!.max });
      let marker = 0;
      const drainUnderLock = async () => {
        const id = `m${++marker}`;
        await stream.writeMarker(id);
        await drain(session, stream, plan, (_e, markers) => markers.includes(id));
      };
      let onShadow: string[] = [];
      const failed = await session.cutover
        .swap(plan, names, {
          lockTimeoutMs: 10_000,
          log: silentLogger(),
          drainUnderLock,
          beforeSwapForTests: async () => {
            onShadow = (await triggerDefinitions(names.shadow)).map((t) => t.TRIGGER_NAME);
            throw new CutoverAttemptError('forced by the test after the shadow got its triggers');
          },
        })
        .catch((e: unknown) => e);
      expect(failed).toBeInstanceOf(CutoverAttemptError);
      expect(onShadow).toEqual(['f_ai_ssnew', 'f_bu_ssnew']);
      expect(await triggerDefinitions(names.shadow)).toEqual([]);

      // The application writes; the applier copies the row to the shadow and fires nothing.
      await admin.query('INSERT INTO f VALUES (101, 101)');
      await drainUnderLock();
      const [[inShadow]] = await admin.query<RowDataPacket[]>(`SELECT COUNT(*) AS n FROM \`${names.shadow}\` WHERE id = 101`);
      expect(Number(inShadow!.n)).toBe(1);
      expect(await auditCounts('f_')).toEqual({ f_ai: 1 });

      await session.cutover.swap(plan, names, { lockTimeoutMs: 10_000, log: silentLogger(), drainUnderLock });
      expect((await triggerDefinitions('f')).map((t) => t.TRIGGER_NAME)).toEqual(['f_ai', 'f_bu']);
      expect(await bodyOf('f_bu')).toBe(emojiBody);
      expect(emojiBody).toContain('😀');
      expect(await triggerDefinitions(names.backup)).toEqual([]);
      await admin.query('INSERT INTO f (id, v) VALUES (102, 102)');
      expect(await auditCounts('f_')).toEqual({ f_ai: 2 });
    } finally {
      await stream.stop();
      await session.dropArtefacts(names, { keepBackup: false });
    }
  });

  // The fault matrix's "killed between the swap and the trigger DDL", and just before the
  // swap once the shadow has its triggers: a SIGKILL there, writes meanwhile, then --resume.
  it.each(['shadow-triggers', 'before-own-names'] as const)('killed at %s: writes meanwhile fire each trigger once, and --resume finishes the move', async (stopAt) => {
    const table = stopAt === 'shadow-triggers' ? 'k1' : 'k2';
    await admin.query(`CREATE TABLE ${table} (id INT PRIMARY KEY, v INT NOT NULL)`);
    await admin.query(`INSERT INTO ${table} SELECT seq, seq FROM ${mysqlSeq(1, 2000)}`);
    await admin.query(`CREATE TRIGGER ${table}_ai AFTER INSERT ON ${table} FOR EACH ROW ${audit(`${table}_ai`, 'NEW.id')}`);
    await admin.query(`CREATE TRIGGER ${table}_au AFTER UPDATE ON ${table} FOR EACH ROW ${audit(`${table}_au`, 'NEW.id')}`);
    const before = await triggerDefinitions(table);
    const alter = 'ADD COLUMN extra INT NOT NULL DEFAULT 7';
    const dir = mkdtempSync(join(tmpdir(), 'ss-trg-kill-'));
    try {
      await killFixtureAt({ url, table, alter, stopAt, flagFile: join(dir, 'stopped') }, `the job to stop at ${stopAt}`);
      // Where the run died: the shadow holds the temporary triggers, or the new table does.
      const temporary = await triggersNamedLike(`${table}\_a%\_ssnew`);
      expect(temporary.map((t) => t.replace(/ on .*/, ''))).toEqual([`${table}_ai_ssnew`, `${table}_au_ssnew`]);
      for (let i = 1; i <= 10; i++) {
        await admin.query(`INSERT INTO ${table} (id, v) VALUES (${5000 + i}, ${i})`);
        await admin.query(`UPDATE ${table} SET v = -v WHERE id = ${i}`);
      }
      const resumed = await startCli(['alter', '--table', table, '--alter', alter, '--execute', '--json', '--resume', '--control-socket', join(dir, 'r.sock')], { SHADOWSHIFT_URL: url }).done;
      expect(resumed.code, resumed.stderr.slice(-3000)).toBe(0);
      expect(JSON.parse(resumed.stdout).result.repairedChunks).toBe(0);
      for (let i = 11; i <= 20; i++) await admin.query(`INSERT INTO ${table} (id, v) VALUES (${5000 + i}, ${i})`);

      expect(await triggerDefinitions(table)).toEqual(before);
      expect(await triggersNamedLike(`${table}%`)).toEqual([`${table}_ai on ${table}`, `${table}_au on ${table}`]);
      expect(await auditCounts(`${table}_`)).toEqual({ [`${table}_ai`]: 20, [`${table}_au`]: 10 });
      const [[extra]] = await admin.query<RowDataPacket[]>(`SELECT COUNT(*) AS n FROM ${table} WHERE extra = 7`);
      expect(Number(extra!.n)).toBe(2020);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 180_000);

  it('an ALTER that drops a column a trigger uses fails before the copy, naming the trigger, with the table untouched', async () => {
    await admin.query('CREATE TABLE d (id INT PRIMARY KEY, v INT NOT NULL, gone INT NULL)');
    await admin.query(`INSERT INTO d SELECT seq, seq, seq FROM ${mysqlSeq(1, 50)}`);
    await admin.query(`CREATE TRIGGER d_ai AFTER INSERT ON d FOR EACH ROW ${audit('d_ai', 'NEW.gone')}`);
    await expect(runAlter(url, 'd', 'DROP COLUMN gone')).rejects.toThrow(/trigger d_ai of d does not fit the new table \(Unknown column 'gone' in 'NEW'\)/);
    const [cols] = await admin.query<RowDataPacket[]>("SELECT COUNT(*) AS n FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'd'", [schema]);
    expect(Number(cols[0]!.n)).toBe(3);
    const [left] = await admin.query<RowDataPacket[]>("SELECT TABLE_NAME AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME LIKE 'd\\_ss%'", [schema]);
    expect(left).toEqual([]);
    expect(await triggersNamedLike('d\\_%')).toEqual(['d_ai on d']);
  });

  it('a revertible ALTER and its revert: the triggers come back on the old table and fire once per write throughout', async () => {
    await admin.query('CREATE TABLE r (id INT PRIMARY KEY, v INT NOT NULL)');
    await admin.query(`INSERT INTO r SELECT seq, seq FROM ${mysqlSeq(1, 500)}`);
    await admin.query(`CREATE TRIGGER r_ai AFTER INSERT ON r FOR EACH ROW ${audit('r_ai', 'NEW.id')}`);
    const before = await triggerDefinitions('r');
    await runAlter(url, 'r', 'ADD COLUMN extra INT NOT NULL DEFAULT 7', { revertible: true });
    for (let i = 1; i <= 10; i++) await admin.query(`INSERT INTO r (id, v) VALUES (${1000 + i}, ${i})`);
    // The cut-over's own renaming of the triggers is in the binlog the revert reads.
    await runRevert(url, 'r');
    for (let i = 11; i <= 20; i++) await admin.query(`INSERT INTO r (id, v) VALUES (${1000 + i}, ${i})`);
    expect(await triggerDefinitions('r')).toEqual(before);
    expect(await triggersNamedLike('r\\_%')).toEqual(['r_ai on r']);
    expect(await auditCounts('r_')).toEqual({ r_ai: 20 });
    const [[n]] = await admin.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM r');
    expect(Number(n!.n)).toBe(520);
  });

  it('a --resume after a stop inside the renaming drops a temporary trigger whose own one exists (it would fire twice)', async () => {
    await admin.query('CREATE TABLE s (id INT PRIMARY KEY, v INT NOT NULL)');
    await admin.query(`CREATE TRIGGER s_ai AFTER INSERT ON s FOR EACH ROW ${audit('s_ai', 'NEW.id')}`);
    await admin.query(`CREATE TRIGGER s_ai_ssnew AFTER INSERT ON s FOR EACH ROW ${audit('s_ai', 'NEW.id')}`);
    const names = session.artefactNames({ schema, name: 's' }, 'deadbeef');
    await session.cutover.settleStoppedCutover!({ schema, name: 's' }, names, true, silentLogger());
    expect(await triggersNamedLike('s\\_%')).toEqual(['s_ai on s']);
    await admin.query('INSERT INTO s VALUES (1, 1)');
    expect(await auditCounts('s_')).toEqual({ s_ai: 1 });
  });

  it('refuses a table whose triggers still carry the temporary names of an interrupted cut-over', async () => {
    await admin.query('CREATE TABLE g (id INT PRIMARY KEY, v INT NOT NULL)');
    await admin.query(`CREATE TRIGGER g_ai_ssnew AFTER INSERT ON g FOR EACH ROW ${audit('g_ai', 'NEW.id')}`);
    const job = newJob(url, 'g', 'ADD COLUMN extra INT');
    try {
      const report = await job.prepare();
      expect(report.checks.find((c) => c.check === 'triggers')).toMatchObject({
        ok: false,
        message: expect.stringMatching(/g_ai_ssnew[\s\S]*temporary name[\s\S]*--resume[\s\S]*LOCK TABLES `[^`]+`\.`g` WRITE; DROP TRIGGER IF EXISTS `[^`]+`\.`g_ai`;[\s\S]*CREATE DEFINER=[\s\S]*TRIGGER `[^`]+`\.`g_ai` AFTER INSERT ON[\s\S]*PRECEDES `g_ai_ssnew`/),
      });
    } finally {
      await job.close();
    }
  });
});
