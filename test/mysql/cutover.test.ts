// The swap: atomic under a concurrent writer, and a failed attempt restores everything.

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import type { Connection, ResultSetHeader } from 'mysql2/promise';
import type { MysqlSession } from '../../src/dialects/mysql/mysql-dialect.js';
import type { ArtefactNames, ChangeStream, CopyPlan } from '../../src/dialects/dialect.js';
import { CutoverAttemptError, DataLossError } from '../../src/util/errors.js';
import { silentLogger } from '../../src/util/logger.js';
import { mysqlConnect } from '../support/databases.js';
import { freshDb, prepareShadow, tableNames } from './helpers.js';
import { mysqlSeq } from '../support/db.js';
import { BlockerKiller } from '../../src/engine/blocker-killer.js';
import { pino } from 'pino';

function capture() {
  const lines: Array<Record<string, unknown>> = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  return { log, lines, ended: () => lines.filter((l) => String(l.msg).includes('ended a session that blocked the cut-over')) };
}

/** Asked of another connection: a statement on the session itself would reset the idle time its age is read from. */
async function alive(id: number): Promise<boolean> {
  const [rows] = (await admin.query('SELECT 1 FROM information_schema.PROCESSLIST WHERE ID = ?', [id])) as unknown as [unknown[]];
  return rows.length > 0;
}

async function connectionId(conn: Connection): Promise<number> {
  const [[r]] = (await conn.query('SELECT CONNECTION_ID() AS id')) as unknown as [[{ id: number }]];
  return Number(r.id);
}

let session: MysqlSession;
let admin: Connection;
let schema: string;
let url: string;

beforeAll(async () => {
  ({ session, admin, name: schema, url } = await freshDb('cut'));
});
afterAll(async () => {
  await session?.close();
  await admin?.end();
});

/** What the engine does: copy everything, then keep applying the stream until told to stop. */
async function setUp(table: string): Promise<{ plan: CopyPlan; names: ArtefactNames; stream: ChangeStream; pump: { pause(): void; resume(): void; stop(): Promise<void>; drainTo(id: string): Promise<void> } }> {
  const { plan, names } = await prepareShadow(session, schema, table, 'ADD COLUMN extra INT NOT NULL DEFAULT 7');
  const stream = session.openChangeStream(plan, names, 'cutjob');
  await stream.start();
  const bounds = await session.copier.keyBounds(plan);
  if (bounds) await session.copier.copyChunk(plan, { after: null, upTo: bounds.max });
  let paused = false;
  let stopped = false;
  const seen = new Set<string>();
  let busy: Promise<void> = Promise.resolve();
  const step = async () => {
    const b = stream.take(1000);
    if (!b) return false;
    await session.applier.apply(plan, b.events);
    b.markers.forEach((m) => seen.add(m));
    return true;
  };
  const loop = (async () => {
    while (!stopped) {
      if (!paused) {
        busy = step().then(() => undefined);
        await busy;
        await stream.waitForData(20);
      } else await new Promise((r) => setTimeout(r, 20));
    }
  })();
  return {
    plan,
    names,
    stream,
    pump: {
      pause() {
        paused = true;
      },
      resume() {
        paused = false;
      },
      async stop() {
        stopped = true;
        await loop;
      },
      async drainTo(id: string) {
        await busy;
        await stream.writeMarker(id);
        const deadline = Date.now() + 5000;
        while (!seen.has(id)) {
          if (Date.now() > deadline) throw new CutoverAttemptError('marker did not come back');
          if (!(await step())) await stream.waitForData(20);
        }
      },
    },
  };
}

/** A client inserting as fast as it can; remembers every acknowledged id and every error. */
function startWriter(conn: Connection, table: string) {
  const acked: number[] = [];
  const errors: string[] = [];
  let stop = false;
  const done = (async () => {
    let i = 0;
    while (!stop) {
      try {
        const [r] = await conn.query<ResultSetHeader>(`INSERT INTO \`${table}\` (v) VALUES (?)`, [++i]);
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

describe('cutover', () => {
  it('swaps atomically under a concurrent writer: no error, no missing table, every acknowledged insert in the new table', async () => {
    await admin.query('CREATE TABLE cw (id INT AUTO_INCREMENT PRIMARY KEY, v INT NOT NULL)');
    await admin.query(`INSERT INTO cw (v) SELECT seq FROM ${mysqlSeq(1, 500)}`);
    const { plan, names, pump, stream } = await setUp('cw');
    const writerConn = await mysqlConnect(url);
    const writer = startWriter(writerConn, 'cw');
    await new Promise((r) => setTimeout(r, 300));
    const ackedBeforeSwap = writer.acked.length;
    pump.pause();
    await session.cutover.swap(plan, names, { lockTimeoutMs: 2000, drainUnderLock: () => pump.drainTo('cut-1'), log: silentLogger() });
    await pump.stop(); // after the swap nothing more is applied: the shadow is now the table
    await new Promise((r) => setTimeout(r, 300));
    await writer.stop();
    await writerConn.end();
    await stream.stop();

    expect(writer.errors).toEqual([]);
    expect(ackedBeforeSwap).toBeGreaterThan(0);
    expect(writer.acked.length).toBeGreaterThan(ackedBeforeSwap);
    // The name now holds the new table (it has the added column) ...
    const [cols] = (await admin.query("SELECT COLUMN_NAME AS c FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'cw' ORDER BY ORDINAL_POSITION")) as unknown as [Array<{ c: string }>];
    expect(cols.map((c) => c.c)).toEqual(['id', 'v', 'extra']);
    // ... with every acknowledged write: those before the lock through the drain, those after directly.
    const [rows] = (await admin.query('SELECT id FROM cw WHERE id > 500')) as unknown as [Array<{ id: number }>];
    const have = new Set(rows.map((r) => r.id));
    expect(writer.acked.filter((id) => !have.has(id))).toEqual([]);
    expect(have.size).toBe(writer.acked.length);
    // The old table holds exactly the writes committed before the lock, none after.
    const [[old]] = (await admin.query(`SELECT COUNT(*) AS n, MAX(id) AS m FROM \`${names.backup}\``)) as unknown as [[{ n: string; m: number }]];
    const [[newer]] = (await admin.query(`SELECT COUNT(*) AS n FROM cw WHERE id > ?`, [old.m])) as unknown as [[{ n: string }]];
    // Every row of the old table is in the new one, and the new one got nothing below the old
    // table's last id that the old table lacks (no write slipped past the drain into the old table).
    const [oldOnly] = await admin.query(`SELECT o.id FROM \`${names.backup}\` o LEFT JOIN cw n ON n.id = o.id WHERE n.id IS NULL OR n.v <> o.v LIMIT 20`);
    const [newOnlyBelow] = await admin.query(`SELECT n.id FROM cw n LEFT JOIN \`${names.backup}\` o ON n.id = o.id WHERE o.id IS NULL AND n.id <= ? LIMIT 20`, [old.m]);
    expect({ oldOnly, newOnlyBelow }).toEqual({ oldOnly: [], newOnlyBelow: [] });
    expect(Number(old.n) + Number(newer.n)).toBe(500 + writer.acked.length);
    expect(await tableNames(admin)).toEqual(['cw_sslog', names.backup, 'cw'].sort());
    await session.dropArtefacts(names, { keepBackup: true });
  });

  it('a failed attempt (a transaction holds the table past the lock timeout) leaves original and shadow as they were, and no sentry', async () => {
    await admin.query('CREATE TABLE cf (id INT AUTO_INCREMENT PRIMARY KEY, v INT NOT NULL)');
    await admin.query(`INSERT INTO cf (v) SELECT seq FROM ${mysqlSeq(1, 100)}`);
    const { plan, names, pump, stream } = await setUp('cf');
    const before = await tableNames(admin);
    const blocker = await mysqlConnect(url);
    await blocker.query('BEGIN');
    await blocker.query('SELECT COUNT(*) FROM cf'); // holds a shared metadata lock until COMMIT
    pump.pause();
    let drained = false;
    const t0 = Date.now();
    const err = await session.cutover
      .swap(plan, names, { lockTimeoutMs: 1000, drainUnderLock: async () => void (drained = true), log: silentLogger() })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CutoverAttemptError);
    expect((err as Error).message).toMatch(/lock/i);
    expect(Date.now() - t0).toBeLessThan(10_000); // bounded: the lock timeout plus a loaded host's scheduling
    expect(drained).toBe(false);
    expect(await tableNames(admin)).toEqual(before);
    // The original still takes writes; the shadow is untouched by the attempt.
    await blocker.query('COMMIT');
    await admin.query('INSERT INTO cf (v) VALUES (-1)');
    const [cols] = (await admin.query("SELECT COLUMN_NAME AS c FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'cf'")) as unknown as [Array<{ c: string }>];
    expect(cols.map((c) => c.c)).toEqual(['id', 'v']);

    // A drain that fails under the lock: restored too (and a non-retryable error passes through as itself).
    const err2 = await session.cutover
      .swap(plan, names, { lockTimeoutMs: 1000, drainUnderLock: async () => { throw new DataLossError('boom'); }, log: silentLogger() })
      .catch((e: unknown) => e);
    expect(err2).toBeInstanceOf(DataLossError);
    expect(await tableNames(admin)).toEqual(before);
    await admin.query('INSERT INTO cf (v) VALUES (-2)');

    // Then a retry succeeds and nothing was lost.
    await session.cutover.swap(plan, names, { lockTimeoutMs: 2000, drainUnderLock: () => pump.drainTo('cut-2'), log: silentLogger() });
    await pump.stop();
    await stream.stop();
    await blocker.end();
    const [[c]] = (await admin.query('SELECT COUNT(*) AS n, SUM(v < 0) AS neg, MIN(extra) AS e FROM cf')) as unknown as [[{ n: string; neg: string; e: number }]];
    expect(c).toEqual({ n: '102', neg: '2', e: 7 });
    await session.dropArtefacts(names, { keepBackup: false });
  });

  it('a sentry left by a dead attempt is recognised and replaced; a foreign table of that name is not touched', async () => {
    await admin.query('CREATE TABLE cs (id INT PRIMARY KEY)');
    const { plan, names, pump, stream } = await setUp('cs');
    const sentry = names.extra.sentry!;
    expect(sentry).toBe(names.backup); // sorts after the table, see mysql-names.ts
    await admin.query(`CREATE TABLE \`${sentry}\` (x INT) COMMENT='not ours'`);
    pump.pause();
    await expect(session.cutover.swap(plan, names, { lockTimeoutMs: 1000, drainUnderLock: () => pump.drainTo('a'), log: silentLogger() })).rejects.toThrow(/already exists/);
    await admin.query(`DROP TABLE \`${sentry}\``);
    await admin.query(`CREATE TABLE \`${sentry}\` (id INT PRIMARY KEY) COMMENT='shadowshift cut-over sentry'`);
    await session.cutover.swap(plan, names, { lockTimeoutMs: 1000, drainUnderLock: () => pump.drainTo('b'), log: silentLogger() });
    await pump.stop();
    await stream.stop();
    expect(await tableNames(admin)).toContain(names.backup);
    const [[backup]] = (await admin.query('SELECT TABLE_COMMENT AS c FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?', [names.backup])) as unknown as [[{ c: string }]];
    expect(backup.c).not.toBe('shadowshift cut-over sentry'); // the old table, not the sentry
    await session.dropArtefacts(names, { keepBackup: false });
  });

  it('with --kill-blockers-after, ends the session holding the table within the attempt, logging its statement redacted', async () => {
    await admin.query("INSTALL SONAME 'metadata_lock_info'").catch(() => undefined); // MariaDB: lets the cut-over see lock holders
    await admin.query('CREATE TABLE kb (id INT AUTO_INCREMENT PRIMARY KEY, v INT NOT NULL)');
    await admin.query('INSERT INTO kb (v) VALUES (1), (2)');
    const { plan, names, pump, stream } = await setUp('kb');
    const blocker = await mysqlConnect(url);
    blocker.on('error', () => undefined);
    const blockerId = await connectionId(blocker);
    // Holds the table while it runs; a literal that must never reach the log.
    const running = blocker.query("SELECT SLEEP(30), 'hunter2-secret' FROM kb LIMIT 1").catch(() => undefined);
    await new Promise((r) => setTimeout(r, 100));
    pump.pause();
    const { log, lines, ended } = capture();
    const t0 = Date.now();
    await session.cutover.swap(plan, names, { lockTimeoutMs: 5000, killBlockers: new BlockerKiller({ afterMs: 300, table: 'kb', log }), drainUnderLock: () => pump.drainTo('kb'), log });
    expect(Date.now() - t0).toBeLessThan(4000);
    await running;
    await expect(blocker.query('SELECT 1')).rejects.toThrow();
    expect(ended()).toHaveLength(1);
    expect(ended()[0]).toMatchObject({ connection: blockerId, ended: true, table: 'kb' });
    expect(String(ended()[0]!.query)).toContain("SELECT SLEEP(?), '…' FROM kb");
    expect(JSON.stringify(lines)).not.toContain('hunter2');
    await pump.stop();
    await stream.stop();
    blocker.destroy();
    const [cols] = (await admin.query("SELECT COLUMN_NAME AS c FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'kb' ORDER BY ORDINAL_POSITION")) as unknown as [Array<{ c: string }>];
    expect(cols.map((c) => c.c)).toEqual(['id', 'v', 'extra']);
    await session.dropArtefacts(names, { keepBackup: false });
  });

  it('with --kill-blockers-after, also ends a session holding a child table, which the lock of a parent table takes too', async () => {
    await admin.query("INSTALL SONAME 'metadata_lock_info'").catch(() => undefined);
    await admin.query('CREATE TABLE kbp (id INT AUTO_INCREMENT PRIMARY KEY, v INT NOT NULL)');
    await admin.query('INSERT INTO kbp (v) VALUES (1), (2)');
    await admin.query('CREATE TABLE kbc (id INT PRIMARY KEY, p INT, CONSTRAINT kbc_p FOREIGN KEY (p) REFERENCES kbp (id))');
    await admin.query('INSERT INTO kbc VALUES (1, 1)');
    const { plan, names, pump, stream } = await setUp('kbp');
    const blocker = await mysqlConnect(url);
    blocker.on('error', () => undefined);
    const blockerId = await connectionId(blocker);
    const running = blocker.query('SELECT SLEEP(30) FROM kbc LIMIT 1').catch(() => undefined);
    await new Promise((r) => setTimeout(r, 100));
    pump.pause();
    const { log, ended } = capture();
    await session.cutover.swap(plan, names, { lockTimeoutMs: 5000, killBlockers: new BlockerKiller({ afterMs: 300, table: 'kbp', log }), drainUnderLock: () => pump.drainTo('kbp'), log });
    await running;
    expect(ended()).toHaveLength(1);
    expect(ended()[0]).toMatchObject({ connection: blockerId, ended: true });
    await pump.stop();
    await stream.stop();
    blocker.destroy();
    const [refs] = (await admin.query("SELECT REFERENCED_TABLE_NAME AS t FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = DATABASE() AND TABLE_NAME = 'kbc'")) as unknown as [Array<{ t: string }>];
    expect(refs).toEqual([{ t: 'kbp' }]);
    await session.dropArtefacts(names, { keepBackup: false });
  });

  it('with --kill-blockers-after longer than the lock timeout, counts the wait across attempts and ends the blocker on a later one', async () => {
    await admin.query('CREATE TABLE kb2 (id INT AUTO_INCREMENT PRIMARY KEY, v INT NOT NULL)');
    await admin.query('INSERT INTO kb2 (v) VALUES (1), (2)');
    const { plan, names, pump, stream } = await setUp('kb2');
    const blocker = await mysqlConnect(url);
    blocker.on('error', () => undefined);
    const blockerId = await connectionId(blocker);
    await blocker.query('BEGIN');
    await blocker.query('SELECT COUNT(*) FROM kb2');
    pump.pause();
    const { log, ended } = capture();
    // One policy for both attempts, as the engine keeps one for a job's attempts.
    const opts = { lockTimeoutMs: 1000, killBlockers: new BlockerKiller({ afterMs: 1500, table: 'kb2', log }), drainUnderLock: () => pump.drainTo('kb2'), log };
    // Attempt 1 waits 1 s (< 1.5 s): gives up, the blocker lives.
    await expect(session.cutover.swap(plan, names, opts)).rejects.toBeInstanceOf(CutoverAttemptError);
    expect(await alive(blockerId)).toBe(true);
    // Attempt 2: after 0.5 s more the blocker is ended and the swap goes through.
    await session.cutover.swap(plan, names, opts);
    expect(ended()).toHaveLength(1);
    expect(ended()[0]).toMatchObject({ connection: blockerId, ended: true });
    await expect(blocker.query('SELECT 1')).rejects.toThrow();
    await pump.stop();
    await stream.stop();
    blocker.destroy();
    await session.dropArtefacts(names, { keepBackup: false });
  });

  it("with --kill-blockers-after, never ends one of the job's own sessions, nor one younger than the threshold", async () => {
    await admin.query('CREATE TABLE kb3 (id INT AUTO_INCREMENT PRIMARY KEY, v INT NOT NULL)');
    await admin.query('INSERT INTO kb3 (v) VALUES (1), (2)');
    const { plan, names, pump, stream } = await setUp('kb3');
    pump.pause();
    // A connection of the job's own pool holding the table.
    const own = await session.ctx.pool.getConnection();
    const ownId = await connectionId(own as unknown as Connection);
    await own.query('BEGIN');
    await own.query('SELECT COUNT(*) FROM kb3');
    const { log, lines, ended } = capture();
    const opts = (afterMs: number) => ({ lockTimeoutMs: 1000, killBlockers: new BlockerKiller({ afterMs, table: 'kb3', log }), drainUnderLock: () => pump.drainTo('kb3'), log });
    await expect(session.cutover.swap(plan, names, opts(300))).rejects.toBeInstanceOf(CutoverAttemptError);
    expect(await alive(ownId)).toBe(true);
    expect(lines.filter((l) => String(l.msg).includes('a shadowshift connection blocks the cut-over'))).toHaveLength(1);
    await own.query('ROLLBACK');
    own.release();
    // Another session, younger than the threshold: waited out, not ended.
    const young = await mysqlConnect(url);
    const youngId = await connectionId(young);
    await young.query('BEGIN');
    await young.query('SELECT COUNT(*) FROM kb3');
    await expect(session.cutover.swap(plan, names, opts(60_000))).rejects.toBeInstanceOf(CutoverAttemptError);
    expect(await alive(youngId)).toBe(true);
    expect(ended()).toHaveLength(0);
    await young.query('ROLLBACK');
    await young.end();
    await pump.stop();
    await stream.stop();
    await session.dropArtefacts(names, { keepBackup: false });
  });
});
