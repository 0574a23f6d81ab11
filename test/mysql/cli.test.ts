// The `alter` and `ctl` commands as a user runs them: a real process, real
// output, real exit codes, steered over the control socket.

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, writeFileSync, rmSync, existsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Connection } from 'mysql2/promise';
import { createMysqlDatabase, mysqlConnect } from '../support/databases.js';
import { waitUntil } from '../support/alter.js';
import { startCli } from '../support/cli.js';
import { mysqlSeq } from '../support/db.js';

const start = startCli;
const run = (args: string[], env?: Record<string, string>) => start(args, env).done;

let url: string;
let conn: Connection;
let dir: string;

beforeAll(async () => {
  url = (await createMysqlDatabase('cli')).url;
  conn = await mysqlConnect(url);
  dir = mkdtempSync(join(tmpdir(), 'ss-cli-'));
  await conn.query('CREATE TABLE orders (id BIGINT PRIMARY KEY, amount DECIMAL(12,2) NOT NULL, note VARCHAR(100))');
  await conn.query(`INSERT INTO orders SELECT seq, seq / 100, CONCAT('n', seq) FROM ${mysqlSeq(1, 20000)}`);
});
afterAll(async () => {
  await conn?.end();
  rmSync(dir, { recursive: true, force: true });
});

async function tableNames(): Promise<string[]> {
  const [rows] = (await conn.query('SHOW TABLES')) as unknown as [Array<Record<string, string>>];
  return rows.map((r) => Object.values(r)[0]!).sort();
}

describe('shadowshift alter (plan only)', () => {
  it('prints the plan and changes nothing', async () => {
    const before = await tableNames();
    const r = await run(['alter', '--table', 'orders', '--alter', 'ADD COLUMN status VARCHAR(16) NOT NULL DEFAULT "new"'], { SHADOWSHIFT_URL: url });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/key:\s+id/);
    expect(r.stdout).toMatch(/columns copied:\s+id, amount, note/);
    expect(r.stdout).toMatch(/new \(defaults\):\s+status/);
    expect(r.stdout).toMatch(/\[pass\] /);
    expect(r.stdout).toMatch(/Run again with --execute/);
    expect(await tableNames()).toEqual(before);
  });

  it('prints JSON with --json', async () => {
    const r = await run(['alter', '--url', url, '--table', 'orders', '--alter', 'ADD COLUMN x INT', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const plan = JSON.parse(r.stdout).plan;
    expect(plan).toMatchObject({ ok: true, key: [{ source: 'id', target: 'id' }] });
  });

  it('names the problem and exits non-zero on bad input', async () => {
    const noTable = await run(['alter', '--url', url, '--table', 'nope', '--alter', 'ADD COLUMN x INT']);
    expect(noTable.code).toBe(2);
    expect(noTable.stderr).toMatch(/does not exist/);
    const noUrl = await run(['alter', '--table', 'orders', '--alter', 'ADD COLUMN x INT'], { SHADOWSHIFT_URL: '' });
    expect(noUrl.code).toBe(2);
    expect(noUrl.stderr).toMatch(/SHADOWSHIFT_URL/);
    const badChunk = await run(['alter', '--url', url, '--table', 'orders', '--alter', 'ADD COLUMN x INT', '--chunk-size', '-5']);
    expect(badChunk.code).toBe(2);
    expect(badChunk.stderr).toMatch(/--chunk-size must be a positive number/);
  });

  it('never prints the password', async () => {
    const withPw = new URL(url);
    withPw.password = 'hunter2secret';
    const r = await run(['alter', '--url', withPw.toString(), '--table', 'orders', '--alter', 'ADD COLUMN x INT']);
    expect(r.code).not.toBe(0);
    expect(r.stdout + r.stderr).not.toContain('hunter2secret');
  });
});

describe('shadowshift alter --execute steered by ctl', () => {
  it('serves status over a 0600 socket, throttles, postpones and cuts over on command', async () => {
    const socket = join(dir, 'job.sock');
    const flag = join(dir, 'postpone');
    writeFileSync(flag, '');
    const job = start(['alter', '--url', url, '--table', 'orders', '--alter', 'ADD COLUMN status VARCHAR(16) NOT NULL DEFAULT "new"', '--execute', '--control-socket', socket, '--postpone-cutover-flag-file', flag, '--chunk-size', '500']);
    const ctl = async (...args: string[]) => {
      const r = await run(['ctl', '--control-socket', socket, ...args]);
      expect(r.code, r.stderr).toBe(0);
      return r.stdout;
    };
    await waitUntil(() => existsSync(socket), 'the control socket', 30_000);
    expect(statSync(socket).mode & 0o777).toBe(0o600);

    const status = JSON.parse(await ctl('status', '--json'));
    for (const field of ['state', 'table', 'shadowTable', 'rowsCopied', 'rowsEstimated', 'eventsApplied', 'backlog', 'lagSeconds', 'throttled', 'etaSeconds', 'repairedChunks']) {
      expect(status).toHaveProperty(field);
    }
    expect(['preflight', 'copying', 'catching-up', 'postponed']).toContain(status.state);

    await ctl('throttle');
    const throttled = JSON.parse(await ctl('status', '--json'));
    expect(throttled.throttled).toMatch(/manual/);
    await ctl('unthrottle');

    await waitUntil(async () => JSON.parse(await ctl('status', '--json')).state === 'postponed', 'postponed', 60_000, 200);
    expect(await ctl('status')).toMatch(/state:\s+postponed/);
    await ctl('cutover');
    const r = await job.done;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/done: .*orders altered/);
    expect(r.stdout).toMatch(/; checksum compared \d+ chunk\(s\) in 1 run\(s\), none repaired;/);
    expect(r.stdout).toMatch(/old table is kept as orders_ssold/);
    expect(r.stderr).toMatch(/control socket/);
    expect(existsSync(socket)).toBe(false);
    const [[row]] = (await conn.query("SELECT COUNT(*) AS n FROM orders WHERE status = 'new'")) as unknown as [[{ n: string }]];
    expect(row.n).toBe('20000');
    rmSync(flag, { force: true });
  });

  it('ctl abort stops the job, exits non-zero and leaves nothing behind', async () => {
    const before = await tableNames();
    const socket = join(dir, 'abort.sock');
    // Held before the cut-over, so the job cannot finish before the abort arrives (it did on a busy host).
    const flag = join(dir, 'abort-postpone');
    writeFileSync(flag, '');
    const job = start(['alter', '--url', url, '--table', 'orders', '--alter', 'ADD COLUMN other INT', '--execute', '--control-socket', socket, '--postpone-cutover-flag-file', flag, '--chunk-size', '100', '--chunk-time', '1000']);
    await waitUntil(() => existsSync(socket), 'the control socket', 30_000);
    await run(['ctl', '--control-socket', socket, 'abort']);
    const r = await job.done;
    expect(r.code).toBe(130);
    expect(r.stderr).toMatch(/aborted/);
    expect(await tableNames()).toEqual(before);
  });

  it('SIGTERM mid-copy cleans up and exits non-zero', async () => {
    const before = await tableNames();
    const socket = join(dir, 'term.sock');
    const job = start(['alter', '--url', url, '--table', 'orders', '--alter', 'ADD COLUMN other2 INT', '--execute', '--control-socket', socket, '--chunk-size', '100']);
    await waitUntil(() => existsSync(socket), 'the control socket', 30_000);
    job.child.kill('SIGTERM');
    const r = await job.done;
    expect(r.code).not.toBe(0);
    expect(await tableNames()).toEqual(before);
  });
});
