// Runs test/support/kill-fixture.ts (a job that stops at a given point and says so with
// a flag file) in a child process, waits for the flag and SIGKILLs it there: a crash at
// a known point, every time.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { KillFixtureArgs } from './kill-fixture.js';
import { waitUntil } from './alter.js';

const FIXTURE = resolve(import.meta.dirname, 'kill-fixture.ts');

/** Returns the killed run's log (stderr) once the process is gone. */
export async function killFixtureAt(args: KillFixtureArgs, what: string): Promise<string> {
  const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE, JSON.stringify(args)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr!.on('data', (d) => (log += d));
  const exited = new Promise<void>((r) => child.on('close', () => r()));
  try {
    await waitUntil(() => {
      if (child.exitCode !== null) throw new Error(`the fixture exited ${child.exitCode}: ${log.slice(-3000)}`);
      return existsSync(args.flagFile);
    }, what, 120_000).catch((err: Error) => Promise.reject(new Error(`${err.message}; the fixture's log ends: ${log.slice(-3000)}`)));
  } finally {
    child.kill('SIGKILL');
    await exited;
  }
  return log;
}
