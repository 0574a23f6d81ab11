// The other ways to make the same change, run by the benchmark on the same table:
// the server's own ALTER (blocking copy, and MariaDB's INPLACE/LOCK=NONE), Percona's
// pt-online-schema-change (Debian's percona-toolkit), pg_repack (postgresql-15-repack,
// a rewrite without schema change: PostgreSQL's lower bound for an online rewrite), and
// gh-ost, which Debian does not package (said in the results when absent).
// Each returns its wall time in ms; `revert` puts the table back for the next step.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { withDb, quoteIdent, type Dialect } from '../../test/support/db.js';

const PG_BIN = '/usr/lib/postgresql/15/bin';

/** The full path of a peer's program, or null when it is not installed. */
export function peerProgram(name: 'pt-online-schema-change' | 'pg_repack' | 'gh-ost'): string | null {
  const dirs = name === 'pg_repack' ? [PG_BIN] : (process.env.PATH ?? '').split(':');
  for (const d of dirs) if (d && existsSync(join(d, name))) return join(d, name);
  return null;
}

/** `cmd` under GNU time (/usr/bin/time, Debian's `time`): its wall time, CPU and peak RSS. */
export async function timedProcess(cmd: string, args: string[]): Promise<{ wallS: number; userS: number; systemS: number; maxRssKB: number }> {
  const out = await runCapturing('/usr/bin/time', ['-f', 'TIMED %e %U %S %M', cmd, ...args]);
  const m = /TIMED ([\d.]+) ([\d.]+) ([\d.]+) (\d+)/.exec(out.text);
  if (!m) throw new Error(`no GNU time line in the output of ${cmd}: ${out.text.slice(-500)}`);
  return { wallS: Number(m[1]), userS: Number(m[2]), systemS: Number(m[3]), maxRssKB: Number(m[4]) };
}

async function run(cmd: string, args: string[]): Promise<number> {
  return (await runCapturing(cmd, args)).ms;
}

function runCapturing(cmd: string, args: string[]): Promise<{ ms: number; text: string }> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (b) => (out += b));
    p.stderr.on('data', (b) => (out += b));
    p.on('error', reject);
    p.on('exit', (code) => (code === 0 ? resolve({ ms: performance.now() - t0, text: out }) : reject(new Error(`${cmd} exited ${code}: ${out.slice(-2000)}`))));
  });
}

/** The server's own ALTER: MariaDB `ALGORITHM=COPY` (writes wait for it) or `INPLACE, LOCK=NONE`; PostgreSQL's rewrite under ACCESS EXCLUSIVE. */
export async function nativeAlter(url: string, d: Dialect, table: string, alter: string, mode: 'copy' | 'inplace'): Promise<number> {
  const suffix = d === 'mysql' ? (mode === 'copy' ? ', ALGORITHM=COPY' : ', ALGORITHM=INPLACE, LOCK=NONE') : '';
  return withDb(url, async (db) => {
    const t0 = performance.now();
    await db.exec(`ALTER TABLE ${quoteIdent(d, table)} ${alter}${suffix}`);
    return performance.now() - t0;
  });
}

/** pt-online-schema-change with its defaults (chunk time 0.5 s, triggers, drops the old table), no replicas to look for. */
export function ptOnlineSchemaChange(url: string, table: string, alter: string): Promise<number> {
  const u = new URL(url);
  const dsn = `h=${u.hostname},P=${u.port},u=${decodeURIComponent(u.username || 'root')}${u.password ? `,p=${decodeURIComponent(u.password)}` : ''},D=${u.pathname.slice(1)},t=${table}`;
  return run(peerProgram('pt-online-schema-change')!, ['--alter', alter, '--recursion-method', 'none', '--execute', dsn]);
}

/** pg_repack of the table with its defaults. */
export function pgRepack(url: string, table: string): Promise<number> {
  const u = new URL(url);
  return run(peerProgram('pg_repack')!, ['-h', u.hostname, '-p', u.port, '-U', decodeURIComponent(u.username || 'postgres'), '-d', u.pathname.slice(1), '-t', table]);
}

/** Undoes the benchmark's change (unmeasured, nothing else running), so the next step starts from the same table. */
export async function revertChange(url: string, d: Dialect, table: string): Promise<void> {
  await withDb(url, async (db) => {
    const t = quoteIdent(d, table);
    if (d === 'mysql') await db.exec(`ALTER TABLE ${t} DROP COLUMN flag, DROP INDEX ${quoteIdent(d, `${table}_status_idx`)}`);
    else await db.exec(`ALTER TABLE ${t} DROP COLUMN flag, ALTER COLUMN user_id TYPE int`);
    await db.exec(d === 'mysql' ? `ANALYZE TABLE ${t}` : `VACUUM ANALYZE ${t}`);
  });
}
