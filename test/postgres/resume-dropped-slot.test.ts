// The PostgreSQL side of the purged-binlog refusal (test/mysql/resume-purged-binlog.test.ts):
// a job SIGKILLed during the copy, then its replication slot is dropped, or invalidated by the
// server (max_slot_wal_keep_size). `alter --resume` must refuse before it changes anything,
// saying which slot, why the stream cannot continue, what is left and the way out; the way out
// must work. Its own server: the invalidation needs ALTER SYSTEM, which would reach every other
// file's jobs on the shared one.

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type pg from 'pg';
import { startPostgres, type RunningPostgres } from '../support/servers.js';
import { pgConnect } from '../support/databases.js';
import { waitUntil } from '../support/alter.js';
import { startCli } from '../support/cli.js';
import { killFixtureAt } from '../support/kill-at.js';
import type { KillFixtureArgs } from '../support/kill-fixture.js';

const ALTER = 'ADD COLUMN w int NOT NULL DEFAULT 7';

describe('resume after the job\'s replication slot was dropped or invalidated', () => {
  let server: RunningPostgres;
  let conn: pg.Client;
  let url: string;
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ss-slot-'));
    server = await startPostgres();
    const admin = await pgConnect(server.adminUrl('postgres'));
    await admin.query('CREATE DATABASE shop');
    await admin.end();
    url = server.adminUrl('shop');
    conn = await pgConnect(url);
  }, 60_000);
  afterAll(async () => {
    await conn?.end();
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const rows = async (sql: string, params: unknown[] = []) => (await conn.query(sql, params)).rows as Record<string, unknown>[];
  const state = async (table: string, shadow: string) => ({
    tables: (await rows(`SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1`)).map((r) => r.tablename),
    columns: (await rows(`SELECT column_name FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position`, [table])).map((r) => r.column_name),
    content: (await rows(`SELECT count(*)::int AS n, md5(string_agg(id || ':' || v, ',' ORDER BY id)) AS h FROM ${table}`))[0],
    checkpoint: await rows('SELECT table_name, checkpoint FROM _ss_checkpoints ORDER BY 1'),
    shadowRows: (await rows(`SELECT count(*)::int AS n FROM ${shadow}`))[0]!.n,
    slots: (await rows(`SELECT slot_name, confirmed_flush_lsn::text AS lsn FROM pg_replication_slots ORDER BY 1`)),
    publications: (await rows(`SELECT pubname FROM pg_publication ORDER BY 1`)).map((r) => r.pubname),
  });

  /** A job on `table` (20 000 rows) SIGKILLed in its copy; the names and position its checkpoint holds. */
  async function killedInTheCopy(table: string) {
    await conn.query(`CREATE TABLE ${table} (id int PRIMARY KEY, v int NOT NULL)`);
    await conn.query(`INSERT INTO ${table} SELECT g, g FROM generate_series(1, 20000) g`);
    const flagFile = join(dir, `${table}.stopped`);
    const args: KillFixtureArgs = { url, table, alter: ALTER, stopAt: 'copying', flagFile, copyRows: 2000, chunkSize: 500, checkpointIntervalSeconds: 0.1 };
    await killFixtureAt(args, 'the job to stop in the copy');
    // Written while no job runs: what the lost stream would have carried to the shadow.
    await conn.query(`UPDATE ${table} SET v = -v WHERE id IN (1, 19999)`);
    const [cp] = await rows('SELECT checkpoint FROM _ss_checkpoints WHERE table_name = $1', [table]);
    const checkpoint = JSON.parse(String(cp!.checkpoint)) as { streamPosition: string; names: { shadow: string; changelog: string; extra: { slot: string } } };
    return { position: checkpoint.streamPosition, shadow: checkpoint.names.shadow, publication: checkpoint.names.changelog, slot: checkpoint.names.extra.slot };
  }

  const resume = (table: string) =>
    startCli(['alter', '--table', table, '--alter', ALTER, '--execute', '--resume', '--control-socket', join(dir, `${table}-r.sock`)], { SHADOWSHIFT_URL: url }).done;

  /** The way out the refusal names: cleanup, then a new run that sees the rows written while the job was stopped. */
  async function cleanupAndRunAgain(table: string): Promise<void> {
    const cleanup = await startCli(['cleanup', '--url', url, '--execute']).done;
    expect(cleanup.code, cleanup.stderr.slice(-3000)).toBe(0);
    expect(await rows(`SELECT slot_name FROM pg_replication_slots`)).toEqual([]);
    const again = await startCli(['alter', '--table', table, '--alter', ALTER, '--execute', '--json', '--control-socket', join(dir, `${table}-a.sock`)], { SHADOWSHIFT_URL: url }).done;
    expect(again.code, again.stderr.slice(-3000)).toBe(0);
    expect(JSON.parse(again.stdout).result.repairedChunks).toBe(0);
    expect(await rows(`SELECT count(*)::int AS n, sum(v)::bigint::text AS s, min(w) AS w FROM ${table}`)).toEqual([
      { n: 20_000, s: String((20_000 * 20_001) / 2 - 2 * 1 - 2 * 19_999), w: 7 },
    ]);
  }

  it('slot dropped: refuses with the slot named and the way out, changes nothing, and cleanup + a new run work', async () => {
    const { position, shadow, publication, slot } = await killedInTheCopy('orders');
    expect(slot).toMatch(/^_ss_[0-9a-f]{10}_r?slot$/);
    // The dead run's walsender holds the slot until the server notices its client is gone.
    await waitUntil(async () => {
      await conn.query('SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL', [slot]);
      return (await rows('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NULL', [slot])).length === 1;
    }, 'the dead run\'s walsender to let go of the slot');
    await conn.query('SELECT pg_drop_replication_slot($1)', [slot]);

    const before = await state('orders', shadow);
    expect(before.tables).toEqual(['_ss_checkpoints', 'orders', shadow].sort());
    expect(before.publications).toEqual([publication]);
    expect(before.slots).toEqual([]);
    const resumed = await resume('orders');
    expect(resumed.code, resumed.stderr.slice(-3000)).toBe(3);
    const said = resumed.stdout + resumed.stderr;
    expect(said).toContain(`cannot resume: the replication slot ${slot} that the checkpoint's position ${position} is read from no longer exists on the server (it was dropped`);
    expect(said).toContain('A job can resume only while its slot is kept: do not drop the slot of a stopped job');
    expect(said).toContain(`The change stream cannot continue where the stopped run left it, and the shadow ${shadow} would miss what changed since. Nothing was changed.`);
    expect(said).toContain(`Run \`shadowshift cleanup --execute\` (it removes what the stopped run left: ${shadow}, the publication ${publication} and the checkpoint), then start the job again without --resume`);
    expect(await state('orders', shadow)).toEqual(before);

    await cleanupAndRunAgain('orders');
  }, 180_000);

  it('slot invalidated (max_slot_wal_keep_size): refuses naming the setting, changes nothing, and cleanup + a new run work', async () => {
    const { position, shadow, publication, slot } = await killedInTheCopy('items');
    await conn.query(`ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'`);
    await conn.query('SELECT pg_reload_conf()');
    try {
      // A checkpoint invalidates a slot whose restart_lsn lies in a WAL segment it may
      // remove; it removes segments more than max_slot_wal_keep_size behind.
      await waitUntil(async () => {
        for (let i = 0; i < 3; i++) {
          await conn.query('CREATE TABLE IF NOT EXISTS wal_filler (x int); INSERT INTO wal_filler SELECT generate_series(1, 1000)');
          await conn.query('SELECT pg_switch_wal()');
        }
        await conn.query('CHECKPOINT');
        return (await rows(`SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND wal_status = 'lost'`, [slot])).length === 1;
      }, 'the server to invalidate the slot');

      const before = await state('items', shadow);
      const resumed = await resume('items');
      expect(resumed.code, resumed.stderr.slice(-3000)).toBe(3);
      const said = resumed.stdout + resumed.stderr;
      expect(said).toContain(`cannot resume: the server invalidated the replication slot ${slot} that the checkpoint's position ${position} is read from (`);
      expect(said).toMatch(/wal_removed|wal_status lost/);
      expect(said).toContain('set max_slot_wal_keep_size above the WAL the server writes while a job may stay stopped');
      expect(said).toContain(`(it removes what the stopped run left: ${shadow}, the publication ${publication}, the replication slot ${slot} and the checkpoint)`);
      expect(await state('items', shadow)).toEqual(before);
    } finally {
      await conn.query('ALTER SYSTEM RESET max_slot_wal_keep_size');
      await conn.query('SELECT pg_reload_conf()');
    }

    await cleanupAndRunAgain('items');
  }, 180_000);
});
