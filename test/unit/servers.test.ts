import { describe, it, expect } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createMysqlDatabase, createPgDatabase, mysqlConnect, pgConnect } from '../support/databases.js';
import { waitUntil } from '../support/alter.js';
import { pgBinaries, requestedPgMajor } from '../support/servers.js';

describe('throwaway servers', () => {
  it('MariaDB runs with the binlog settings the engine needs', async () => {
    const db = await createMysqlDatabase('srv');
    const c = await mysqlConnect(db.url);
    const [rows] = await c.query("SELECT @@log_bin AS log_bin, @@binlog_format AS fmt, @@binlog_row_image AS img, @@binlog_row_metadata AS meta");
    await c.end();
    expect(rows).toEqual([{ log_bin: '1', fmt: 'ROW', img: 'FULL', meta: 'FULL' }]);
  });
  it('PostgreSQL runs with wal_level=logical', async () => {
    const db = await createPgDatabase('srv');
    const c = await pgConnect(db.url);
    const r = await c.query('SHOW wal_level');
    await c.end();
    expect(r.rows[0].wal_level).toBe('logical');
  });
  it('PostgreSQL runs the major SHADOWSHIFT_TEST_PG_MAJOR asks for (else the machine\'s own)', async () => {
    const db = await createPgDatabase('srv');
    const c = await pgConnect(db.url);
    const num = Number((await c.query(`SELECT current_setting('server_version_num') AS n`)).rows[0].n);
    await c.end();
    const want = requestedPgMajor() ?? pgBinaries(null).major;
    expect(Math.floor(num / 10000)).toBe(want);
  });
});

describe('throwaway servers end with the process that started them', () => {
  const gone = (pid: number) => {
    try {
      process.kill(pid, 0);
      return !existsSync(`/proc/${pid}`) || /^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
    } catch {
      return true;
    }
  };
  const start = async (kinds: string, mode = '') => {
    const child = spawn(process.execPath, ['--import', 'tsx', join('test', 'support', 'server-child.ts'), kinds, mode], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    await waitUntil(() => out.includes('\n') || child.exitCode !== null, 'the child to start its servers', 60_000);
    const started = JSON.parse(out.split('\n')[0]!) as { pids: number[]; dirs: string[] };
    for (const pid of started.pids) expect(gone(pid)).toBe(false);
    // Each in a process group of its own: Ctrl-C on the terminal reaches vitest, not the servers.
    for (const pid of started.pids) expect(Number(readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^\d+ \(.*\) /, '').split(' ')[2])).toBe(pid);
    return { child, ...started };
  };

  it('SIGKILL of the starter: the watchdog kills MariaDB and PostgreSQL (whole groups) and removes their dirs', async () => {
    const { child, pids, dirs } = await start('mariadb,postgres');
    child.kill('SIGKILL');
    await waitUntil(() => pids.every(gone) && dirs.every((d) => !existsSync(d)), 'the servers and their dirs to go', 20_000);
  });

  it('a normal exit of the starter stops its server at once (exit hook)', async () => {
    const { child, pids, dirs } = await start('postgres', 'exit');
    await waitUntil(() => child.exitCode !== null, 'the child to exit', 20_000);
    expect(pids.every(gone)).toBe(true);
    await waitUntil(() => dirs.every((d) => !existsSync(d)), 'the dirs to go', 20_000);
  });
});
