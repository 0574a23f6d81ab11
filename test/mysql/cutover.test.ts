// The swap: atomic under a concurrent writer, and a failed attempt restores everything.

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import type { Connection, ResultSetHeader } from 'mysql2/promise';
import type { MysqlSession } from '../../src/dialects/mysql/mysql-dialect.js';
import type { ArtefactNames, ChangeStream, CopyPlan } from '../../src/dialects/dialect.js';
import { CutoverAttemptError, DataLossError } from '../../src/util/errors.js';
import { silentLogger } from '../../src/util/logger.js';
import { mysqlConnect } from '../support/databases.js';
import { freshDb, prepareShadow, tableNames } from './helpers.js';

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
    await admin.query('INSERT INTO cw (v) SELECT seq FROM seq_1_to_500');
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
    expect(await tableNames(admin)).toEqual(['_cw_sslog', names.backup, 'cw'].sort());
    await session.dropArtefacts(names, { keepBackup: true });
  });

  it('a failed attempt (a transaction holds the table past the lock timeout) leaves original and shadow as they were, and no sentry', async () => {
    await admin.query('CREATE TABLE cf (id INT AUTO_INCREMENT PRIMARY KEY, v INT NOT NULL)');
    await admin.query('INSERT INTO cf (v) SELECT seq FROM seq_1_to_100');
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
    expect(sentry).toBe('cs~ssf'); // sorts after the table, see mysql-cutover.ts
    await admin.query(`CREATE TABLE \`${sentry}\` (x INT) COMMENT='not ours'`);
    pump.pause();
    await expect(session.cutover.swap(plan, names, { lockTimeoutMs: 1000, drainUnderLock: () => pump.drainTo('a'), log: silentLogger() })).rejects.toThrow(/already exists/);
    await admin.query(`DROP TABLE \`${sentry}\``);
    await admin.query(`CREATE TABLE \`${sentry}\` (id INT PRIMARY KEY) COMMENT='shadowshift cut-over sentry'`);
    await session.cutover.swap(plan, names, { lockTimeoutMs: 1000, drainUnderLock: () => pump.drainTo('b'), log: silentLogger() });
    await pump.stop();
    await stream.stop();
    expect(await tableNames(admin)).toContain(names.backup);
    expect(await tableNames(admin)).not.toContain(sentry);
    expect(await tableNames(admin)).not.toContain(names.extra.sentrySource);
    await session.dropArtefacts(names, { keepBackup: false });
  });

  it('with killBlockersAfterMs, ends the session holding the table instead of failing the attempt', async () => {
    await admin.query("INSTALL SONAME 'metadata_lock_info'").catch(() => undefined); // MariaDB: lets the cut-over see lock holders
    await admin.query('CREATE TABLE kb (id INT AUTO_INCREMENT PRIMARY KEY, v INT NOT NULL)');
    await admin.query('INSERT INTO kb (v) VALUES (1), (2)');
    const { plan, names, pump, stream } = await setUp('kb');
    const blocker = await mysqlConnect(url);
    blocker.on('error', () => undefined);
    await blocker.query('BEGIN');
    await blocker.query('SELECT COUNT(*) FROM kb');
    pump.pause();
    const t0 = Date.now();
    await session.cutover.swap(plan, names, { lockTimeoutMs: 5000, killBlockersAfterMs: 300, drainUnderLock: () => pump.drainTo('kb'), log: silentLogger() });
    expect(Date.now() - t0).toBeLessThan(4000);
    await expect(blocker.query('SELECT 1')).rejects.toThrow();
    await pump.stop();
    await stream.stop();
    blocker.destroy();
    const [cols] = (await admin.query("SELECT COLUMN_NAME AS c FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'kb' ORDER BY ORDINAL_POSITION")) as unknown as [Array<{ c: string }>];
    expect(cols.map((c) => c.c)).toEqual(['id', 'v', 'extra']);
    await session.dropArtefacts(names, { keepBackup: false });
  });
});
