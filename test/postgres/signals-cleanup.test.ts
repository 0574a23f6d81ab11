// No replication slot, publication or shadow survives a job stopped by SIGTERM;
// after SIGKILL, `shadowshift cleanup --execute` finds and removes them, with the
// checkpoint a resumable job kept (and the shared table it was in).

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type pg from 'pg';
import { createPgDatabase, pgConnect } from '../support/databases.js';
import { waitUntil } from '../support/alter.js';
import { startCli } from '../support/cli.js';

const start = startCli;

let url: string;
let client: pg.Client;
let dir: string;

async function snapshot() {
  const slots = (await client.query("SELECT slot_name FROM pg_replication_slots WHERE database = current_database()")).rows.map((r) => r.slot_name);
  const pubs = (await client.query('SELECT pubname FROM pg_publication')).rows.map((r) => r.pubname);
  const tables = (await client.query("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")).rows.map((r) => r.tablename);
  return { slots, pubs, tables };
}

beforeAll(async () => {
  url = (await createPgDatabase('pgsig')).url;
  client = await pgConnect(url);
  dir = mkdtempSync(join(tmpdir(), 'ss-pgsig-'));
  await client.query('CREATE TABLE big (id bigint PRIMARY KEY, v text NOT NULL)');
  await client.query("INSERT INTO big SELECT g, repeat('x', 100) FROM generate_series(1, 100000) g");
  await client.query('ANALYZE big');
});
afterAll(async () => {
  await client?.end();
  rmSync(dir, { recursive: true, force: true });
});

async function startMidCopy(socket: string, extra: string[] = []) {
  const job = start(['alter', '--url', url, '--table', 'big', '--alter', 'ADD COLUMN w int', '--execute', '--control-socket', socket, '--chunk-size', '200', ...extra]);
  let exited: string | null = null;
  void job.done.then((r) => (exited = `the job exited early (${r.code}): ${r.stderr.slice(-2000)}`));
  await waitUntil(() => {
    if (exited) throw new Error(exited);
    return existsSync(socket);
  }, 'the control socket', 30_000);
  await waitUntil(async () => (await snapshot()).slots.length > 0 && (await client.query("SELECT count(*) AS n FROM pg_tables WHERE tablename LIKE '\\_ss\\_%'")).rows[0].n !== '0', 'the copy to start', 30_000);
  return job;
}

describe('signals and cleanup on PostgreSQL', () => {
  it('SIGTERM mid-copy leaves no slot, publication or shadow', async () => {
    const before = await snapshot();
    const job = await startMidCopy(join(dir, 'term.sock'));
    job.child.kill('SIGTERM');
    const r = await job.done;
    expect(r.code).not.toBe(0);
    expect(await snapshot()).toEqual(before);
  });

  it('after SIGKILL, cleanup lists the leftovers and --execute removes them', async () => {
    const before = await snapshot();
    const job = await startMidCopy(join(dir, 'kill.sock'));
    job.child.kill('SIGKILL');
    await job.done;
    const left = await snapshot();
    expect(left.slots.length).toBeGreaterThan(0);
    // The slot can stay "active" until the server notices the walsender's client is gone.
    await waitUntil(async () => (await client.query('SELECT count(*) AS n FROM pg_replication_slots WHERE active AND database = current_database()')).rows[0].n === '0', 'the slot to become inactive', 30_000, 200);

    const list = start(['cleanup', '--url', url]);
    const listed = await list.done;
    expect(listed.code, listed.stderr).toBe(0);
    for (const slot of left.slots) expect(listed.stdout).toContain(slot);
    expect(listed.stdout).toMatch(/would be removed with --execute/);
    expect(await snapshot()).toEqual(left);

    const exec = start(['cleanup', '--url', url, '--execute']);
    const executed = await exec.done;
    expect(executed.code, executed.stderr).toBe(0);
    expect(await snapshot()).toEqual(before);
    const ours = await client.query("SELECT count(*) AS n FROM pg_replication_slots WHERE database = current_database() AND slot_name LIKE '\\_ss\\_%'");
    expect(ours.rows[0].n).toBe('0');
  });

  it('cleanup --execute keeps what a running job holds and exits 5; --wait removes it once the killed job lets go', async () => {
    const before = await snapshot();
    const job = await startMidCopy(join(dir, 'busy.sock'));
    const busy = await start(['cleanup', '--url', url, '--execute']).done;
    expect(busy.code, busy.stderr).toBe(5);
    expect(busy.stdout).toMatch(/slot\s+\S+\s+\(in use by a running job, kept\)/);
    expect(busy.stderr).toMatch(/--wait/);
    expect((await snapshot()).slots.length).toBeGreaterThan(0);
    // Right after the kill its sessions may still be ending (the slot active, the job lock
    // held until the running chunk's statement ends): --wait waits for that, not a sleep.
    job.child.kill('SIGKILL');
    await job.done;
    const executed = await start(['cleanup', '--url', url, '--execute', '--wait', '60']).done;
    expect(executed.code, executed.stderr).toBe(0);
    expect(await snapshot()).toEqual(before);
  });

  it("waits out a killed job's CREATE of its shadow, which commits only when it ends, then removes the table", async () => {
    // What a job killed mid-CREATE leaves: its session still running the statement (the
    // server has not noticed the client is gone), the table not there until it commits.
    const before = await snapshot();
    const dying = await pgConnect(url, { application_name: 'shadowshift' });
    const creating = dying.query('CREATE TABLE _ss_00c0ffee00_new_big AS SELECT g AS id FROM generate_series(1, 10) g, pg_sleep(3)');
    try {
      await waitUntil(
        async () => (await client.query("SELECT 1 FROM pg_stat_activity WHERE state = 'active' AND query LIKE 'CREATE TABLE _ss_00c0ffee00%'")).rowCount! > 0,
        'the CREATE to be running',
      );
      const now = await start(['cleanup', '--url', url, '--execute']).done;
      expect(now.code, now.stderr).toBe(5);
      expect(now.stdout).toMatch(/statement\s+pid \d+ \(CREATE TABLE _ss_00c0ffee00_new_big .*\)\s+\(in use by a running job, kept\)/);
      const waited = await start(['cleanup', '--url', url, '--execute', '--wait', '60']).done;
      expect(waited.code, waited.stderr).toBe(0);
      expect(waited.stdout).toMatch(/shadow\s+_ss_00c0ffee00_new_big\s+\(removed\)/);
      expect(await snapshot()).toEqual(before);
    } finally {
      await creating.catch(() => undefined);
      await dying.end();
    }
  });

  it('after SIGKILL of a resumable job, cleanup --execute removes its checkpoint too', async () => {
    const before = await snapshot();
    const job = await startMidCopy(join(dir, 'rkill.sock'), ['--resumable', '--checkpoint-interval', '0.2']);
    await waitUntil(async () => (await client.query(`SELECT to_regclass('_ss_checkpoints') IS NOT NULL AS e`)).rows[0].e === true, 'a checkpoint', 30_000);
    job.child.kill('SIGKILL');
    await job.done;
    await waitUntil(async () => (await client.query('SELECT count(*) AS n FROM pg_replication_slots WHERE active AND database = current_database()')).rows[0].n === '0', 'the slot to become inactive', 30_000, 200);
    const listed = await start(['cleanup', '--url', url]).done;
    expect(listed.stdout).toMatch(/checkpoint\s+public\.big\s+\(would be removed with --execute\)/);
    const executed = await start(['cleanup', '--url', url, '--execute']).done;
    expect(executed.code, executed.stderr).toBe(0);
    expect(await snapshot()).toEqual(before);
    expect((await start(['cleanup', '--url', url]).done).stdout).toMatch(/no shadowshift leftovers/);
  });
});
