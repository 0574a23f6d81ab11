// An abort (SIGTERM, SIGINT, `ctl abort`) is orderly (issue 11): no chunk and no index
// build starts after it, work in flight finishes or is cancelled, and only then is what
// the job made dropped; exit 130 means nothing is left, and the same ALTER runs next.
//
// The reported run (100k rows, 200 writes/s) logged `SIGTERM: aborting`, then `copy
// complete`, then `cleanup failed: deadlock detected`, exit 130, the shadow left: the
// abort landed in the last chunk, the job went on to the deferred index build, stopped
// waiting for it while CREATE INDEX CONCURRENTLY kept running, and its DROP TABLE
// deadlocked with that build. The abort-fixture delivers the abort inside the last
// chunk every time; the second test holds the index build (an old snapshot it must wait
// for) and aborts while it runs.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type pg from 'pg';
import { createPgDatabase, pgConnect } from '../support/databases.js';
import { startCli, type CliRun } from '../support/cli.js';
import { waitUntil } from '../support/alter.js';
import type { FixtureArgs } from '../support/abort-fixture.js';

const FIXTURE = resolve(import.meta.dirname, '../support/abort-fixture.ts');
const ROWS = 100_000;
/** The ALTER of the report, for each test's own table. */
const alterFor = (table: string) => `ADD CONSTRAINT ${table}_code_key UNIQUE (code)`;

let url: string;
let admin: pg.Client;
let dir: string;

beforeAll(async () => {
  url = (await createPgDatabase('pgabort')).url;
  admin = await pgConnect(url);
  dir = mkdtempSync(join(tmpdir(), 'ss-pgabort-'));
});
afterAll(async () => {
  await admin?.end();
  rmSync(dir, { recursive: true, force: true });
});

async function seed(table: string): Promise<void> {
  await admin.query(`CREATE TABLE ${table} (id bigint PRIMARY KEY, code text NOT NULL, v text NOT NULL)`);
  await admin.query(`INSERT INTO ${table} SELECT g, 'c' || g, repeat('x', 50) FROM generate_series(1, ${ROWS}) g`);
  await admin.query(`ANALYZE ${table}`);
}

/** About 200 updates a second, as the application in the report; stopped by the returned function. */
function writeLoad(table: string): () => Promise<void> {
  let stop = false;
  const done = (async () => {
    const c = await pgConnect(url);
    try {
      for (let i = 0; !stop; i++) {
        await c.query(`UPDATE ${table} SET v = $2 WHERE id = $1`, [1 + ((i * 7919) % ROWS), `w${i}`]);
        await new Promise((r) => setTimeout(r, 5));
      }
    } finally {
      await c.end();
    }
  })();
  return async () => {
    stop = true;
    await done;
  };
}

function runFixture(args: FixtureArgs): Promise<CliRun> {
  const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE, JSON.stringify(args)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  return new Promise((res) => child.on('close', (code, signal) => res({ code, signal, stdout, stderr })));
}

function logLines(stderr: string): Array<Record<string, unknown>> {
  return stderr.split('\n').flatMap((l) => {
    try {
      return [JSON.parse(l) as Record<string, unknown>];
    } catch {
      return [];
    }
  });
}

/** Everything of shadowshift in this database (relations, slots, publications), and the name the ALTER asks for. */
async function artefacts(table: string): Promise<string[]> {
  const rels = await admin.query<{ n: string }>(`SELECT relname AS n FROM pg_class WHERE relname LIKE '\\_ss\\_%' OR relname = $1 ORDER BY 1`, [`${table}_code_key`]);
  const slots = await admin.query<{ n: string }>(`SELECT slot_name AS n FROM pg_replication_slots WHERE database = current_database()`);
  const pubs = await admin.query<{ n: string }>(`SELECT pubname AS n FROM pg_publication`);
  return [...rels.rows, ...slots.rows, ...pubs.rows].map((r) => r.n);
}

async function expectUntouched(table: string): Promise<void> {
  const r = await admin.query<{ n: string; cons: string }>(
    `SELECT (SELECT count(*) FROM ${table})::text AS n, (SELECT string_agg(conname, ',' ORDER BY conname) FROM pg_constraint WHERE conrelid = '${table}'::regclass AND contype <> 'n') AS cons`,
  );
  expect(r.rows[0]).toEqual({ n: String(ROWS), cons: `${table}_pkey` });
}

/** The same ALTER again, as the operator did: it must run to the end and leave the name it asked for. */
async function expectSameAlterRuns(table: string): Promise<void> {
  const again = await startCli(['alter', '--url', url, '--table', table, '--alter', alterFor(table), '--execute', '--no-checksum', '--drop-old-table']).done;
  expect(again.code, again.stderr.slice(-3000)).toBe(0);
  const cons = await admin.query<{ n: string }>(`SELECT conname AS n FROM pg_constraint WHERE conrelid = '${table}'::regclass AND contype = 'u'`);
  expect(cons.rows.map((r) => r.n)).toEqual([`${table}_code_key`]);
}

describe('PostgreSQL: an abort inside the last chunk of the copy', () => {
  it.each(['SIGTERM', 'SIGINT', 'ctl'] as const)('%s: no further chunk or index build, everything dropped, exit 130', async (how) => {
    const table = `items_${how.toLowerCase()}`;
    await seed(table);
    const stopLoad = writeLoad(table);
    let run: CliRun;
    try {
      run = await runFixture({
        url, table, alter: alterFor(table), chunkSize: 25_000, abortAtKey: String(ROWS), how, socket: join(dir, `${how}.sock`),
      });
    } finally {
      await stopLoad();
    }
    const lines = logLines(run.stderr);
    const delivered = lines.findIndex((l) => l.msg === 'test: abort delivered inside the open chunk');
    expect(delivered, run.stderr.slice(-3000)).toBeGreaterThan(0);
    const after = lines.slice(delivered + 1).map((l) => `${String(l.msg)}${l.err ? `: ${String(l.err)}` : ''}`);
    expect({ left: await artefacts(table), code: run.code, errors: after.filter((m) => /fail|deadlock/.test(m)) }).toEqual({ left: [], code: 130, errors: [] });
    expect(after.filter((m) => m === 'test: chunk' || m === 'copy complete' || /secondary indexes/.test(m))).toEqual([]);
    await expectUntouched(table);
    const listed = await startCli(['cleanup', '--url', url]).done;
    expect(listed.stdout).toMatch(/no shadowshift leftovers/);
    await expectSameAlterRuns(table);
  });
});

describe('PostgreSQL: an abort while the deferred index build runs', () => {
  it('cancels the build and drops the shadow without waiting for what the build waits for', async () => {
    const table = 'items_build';
    await seed(table);
    // A transaction with a snapshot older than the build: CREATE INDEX CONCURRENTLY waits for it to end.
    const reader = await pgConnect(url);
    await reader.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
    await reader.query('SELECT count(*) FROM pg_class');
    const socket = join(dir, 'build.sock');
    const job = startCli(['alter', '--url', url, '--table', table, '--alter', alterFor(table), '--execute', '--control-socket', socket, '--no-checksum']);
    try {
      await waitUntil(
        async () =>
          (await admin.query(`SELECT 1 FROM pg_stat_activity WHERE query ILIKE 'CREATE UNIQUE INDEX CONCURRENTLY%' AND wait_event_type = 'Lock'`)).rows.length > 0,
        'the index build to wait for the old snapshot',
        60_000,
      );
      const ctl = await startCli(['ctl', '--control-socket', socket, 'abort']).done;
      expect(ctl.code, ctl.stderr).toBe(0);
      // The reader stays open: the job must not wait for it. A job still running after
      // this bound is stuck behind the build it left running.
      const run = await Promise.race([job.done, new Promise<null>((r) => setTimeout(() => r(null), 60_000))]);
      expect(run, `the job did not end while the build waited: ${job.stderrSoFar().slice(-2000)}`).not.toBeNull();
      expect(run!.code, run!.stderr.slice(-3000)).toBe(130);
      expect(await artefacts(table)).toEqual([]);
    } finally {
      await reader.query('ROLLBACK');
      await reader.end();
      await job.done;
    }
    await expectUntouched(table);
  });
});
