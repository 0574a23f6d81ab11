// No replication slot, publication or shadow survives a job stopped by SIGTERM;
// after SIGKILL, `shadowshift cleanup --execute` finds and removes them.

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

async function startMidCopy(socket: string) {
  const job = start(['alter', '--url', url, '--table', 'big', '--alter', 'ADD COLUMN w int', '--execute', '--control-socket', socket, '--chunk-size', '200']);
  await waitUntil(() => existsSync(socket), 'the control socket', 30_000);
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
});
