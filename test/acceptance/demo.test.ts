// `shadowshift demo` end to end, as a new user runs it: the built CLI starts its
// own embedded PostgreSQL (or the system's MariaDB), migrates a small table under
// a workload, prints one JSON object, and leaves no process or temp dir behind,
// also when interrupted.

import { describe, it, expect } from 'vitest';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { startCli } from '../support/cli.js';

const ROWS = '20000';

/** Pids of processes whose command line mentions `text` (a server started in the demo's temp dir). */
function processesMentioning(text: string): number[] {
  const pids: number[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (cmd.includes(text) && !/\bzombie\b/.test(cmd)) pids.push(Number(pid));
    } catch {
      /* gone meanwhile */
    }
  }
  return pids;
}

function hasMariaDb(): boolean {
  return ['/usr/sbin/mariadbd', '/usr/bin/mariadbd', '/usr/local/sbin/mariadbd'].some((p) => existsSync(p));
}

async function runDemoJson(extra: string[]) {
  const { done } = startCli(['demo', '--rows', ROWS, '--sample-seconds', '1', '--json', ...extra]);
  const run = await done;
  expect(run.code, run.stderr.slice(-4000)).toBe(0);
  const lines = run.stdout.trim().split('\n');
  expect(lines, 'stdout is one JSON object').toHaveLength(1);
  return JSON.parse(lines[0]!) as Record<string, any>;
}

function expectReport(r: Record<string, any>, engine: string): void {
  expect(r).toMatchObject({ engine, rows: Number(ROWS), tableMatches: true, checksum: { status: 'match', repaired: 0 } });
  expect(r.tableCheck).toMatchObject({ matches: true, differences: 0, readMismatches: 0, lostRowWrites: 0 });
  expect(r.tableCheck.acknowledgedWrites).toBeGreaterThan(50);
  expect(r.tableCheck.tableRows).toBe(r.tableCheck.expectedRows);
  expect(r.alterSeconds).toBeGreaterThan(0);
  expect(r.rowsCopied).toBeGreaterThan(0);
  expect(r.cutoverLockedMs).toBeGreaterThan(0);
  expect(r.cutoverLockedMs).toBeLessThan(3000);
  expect(Object.keys(r.states)).toEqual(expect.arrayContaining(['preflight', 'copying', 'cutting-over']));
  for (const phase of ['before', 'during', 'after']) {
    expect(r.app[phase].ops, phase).toBeGreaterThan(0);
    expect(r.app[phase].errors, phase).toBe(0);
    expect(r.app[phase].p99Ms, phase).toBeGreaterThanOrEqual(r.app[phase].p50Ms);
  }
  expect(r.native.alterSeconds).toBeGreaterThanOrEqual(0);
  expect(r.native.app.ops).toBeGreaterThan(0);
  // Nothing left: the control socket lives in the server's temp dir.
  const dir = dirname(/--control-socket (\S+)/.exec(r.command)![1]!);
  expect(existsSync(dir), dir).toBe(false);
  expect(processesMentioning(dir)).toEqual([]);
  expect(r.kept).toBeNull();
}

describe('shadowshift demo', () => {
  it('embedded PostgreSQL: migrates under load, reports, and leaves nothing behind', async () => {
    expectReport(await runDemoJson([]), 'postgres');
  });

  it('--web serves the dashboard during the ALTER: prints its token first, its URL when the ALTER starts', async () => {
    const run = await startCli(['demo', '--rows', ROWS, '--sample-seconds', '1', '--no-compare-native', '--web', '--json']).done;
    expect(run.code, run.stderr.slice(-4000)).toBe(0);
    expect(run.stderr).toMatch(/demo --web: .*token for its controls: [0-9a-f]{24}/);
    expect(run.stderr).toMatch(/dashboard: http:\/\/127\.0\.0\.1:\d+\//);
    expect(JSON.parse(run.stdout)).toMatchObject({ tableMatches: true });
  });

  it('Ctrl-C during the run stops the workload and the server and removes the temp dir', async () => {
    const { child, done, stderrSoFar } = startCli(['demo', '--rows', ROWS, '--sample-seconds', '5']);
    const deadline = Date.now() + 60_000;
    while (!/application workload running/.test(stderrSoFar()) && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 100));
    const dir = /"dir":"([^"]+)"/.exec(stderrSoFar())?.[1];
    expect(dir, stderrSoFar()).toBeTruthy();
    expect(existsSync(dir!)).toBe(true);
    child.kill('SIGINT');
    const run = await done;
    expect(run.code, run.stderr.slice(-3000)).toBe(130);
    expect(run.stderr).toMatch(/interrupted by SIGINT/);
    expect(existsSync(dir!)).toBe(false);
    expect(processesMentioning(dir!)).toEqual([]);
  });

  // Reason: no npm package ships MariaDB; without a system mariadbd the demo says so instead (.ci/run installs it).
  it.skipIf(!hasMariaDb())('--engine mariadb uses the system MariaDB with the binlog settings the engine needs', async () => {
    expectReport(await runDemoJson(['--engine', 'mariadb', '--rate', '200', '--connections', '4']), 'mariadb');
  });
});
