// One case of gh-ost's corpus against shadowshift, the way gh-ost's harness runs it:
// fresh `test` database, the case's sql_mode, create.sql (a table and an event writing
// to it every second), then `shadowshift alter --execute` with the case's ALTER while the
// event writes. The cut-over is held (flag file) until the copy is done and the stream
// has applied some of the event's writes; then the event is disabled (ALTER EVENT, a
// statement the job must not take for a change of its table), its last run waited for,
// and the cut-over let go. The case's own comparison then reads its columns from the
// old table (kept as the backup) and the new one, as the harness compares original and
// ghost table on its stopped replica.

import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Connection, RowDataPacket } from 'mysql2/promise';
import { sendControlCommand } from '../../src/control/control-client.js';
import type { GhostCase } from './gh-ost-cases.js';
import { prepareSbtest, startSbtestLoad, type Load } from './gh-ost-sysbench.js';

export interface CaseEnv {
  port: number;
  admin: Connection;
  workDir: string;
  bin: string;
  originalSqlMode: string;
}

export type Verdict = 'equal' | 'refused' | 'failed' | 'different' | 'structure' | 'skipped';

export interface CaseRun {
  name: string;
  verdict: Verdict;
  /** Our error (refused/failed), the difference (different), or why skipped. */
  detail: string;
  seconds: number;
  eventsApplied?: number;
}

const until = async (what: string, timeoutMs: number, check: () => Promise<boolean>): Promise<boolean> => {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return true;
    await new Promise((r) => setTimeout(r, 200));
  }
  if (what) process.stderr.write(`  (gave up waiting for ${what})\n`);
  return false;
};

/** Runs SQL through the mariadb client, as the harness does (create.sql uses `delimiter`). */
export function mariadbClient(env: CaseEnv, sql: string, extra: string[] = []): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    const p = spawn('mariadb', ['--no-defaults', '-h127.0.0.1', `-P${env.port}`, '-uroot', '--default-character-set=utf8mb4', ...extra, 'test'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('close', (code) => resolve({ code: code ?? 1, out, err }));
    p.stdin.end(sql);
  });
}

interface Job {
  exited: Promise<number>;
  code: number | null;
  stdout: string;
  stderr: string;
  socket: string;
  kill: (sig: NodeJS.Signals) => void;
}

function startJob(env: CaseEnv, c: GhostCase, flag: string, extra: string[], table = 'gh_ost_test'): Job {
  const socket = join(env.workDir, `${c.name.slice(0, 40)}.sock`);
  // The harness's --chunk-size=10, unless the case sets its own.
  const chunk = c.otherFlags.find((f) => f.startsWith('--chunk-size='))?.slice('--chunk-size='.length) ?? '10';
  const args = [
    env.bin, 'alter', '--url', `mysql://root@127.0.0.1:${env.port}/test`, '--table', table, '--alter', c.alter,
    '--execute', '--json', '--chunk-size', chunk, '--postpone-cutover-flag-file', flag, '--control-socket', socket, '--status-interval', '1',
    ...extra,
  ];
  const p = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const job: Job = { exited: null as unknown as Promise<number>, code: null, stdout: '', stderr: '', socket, kill: (s) => p.kill(s) };
  p.stdout.on('data', (d) => (job.stdout += d));
  p.stderr.on('data', (d) => (job.stderr += d));
  job.exited = new Promise((resolve) => p.on('close', (code) => resolve((job.code = code ?? 1))));
  return job;
}

async function status(job: Job): Promise<{ state: string; eventsApplied: number } | null> {
  const r = await sendControlCommand(job.socket, { command: 'status' }, 2000).catch(() => null);
  return r && r.ok ? (r.status as unknown as { state: string; eventsApplied: number }) : null;
}

const one = async (env: CaseEnv, sql: string, params: unknown[] = []) => ((await env.admin.query<RowDataPacket[]>(sql, params))[0][0] ?? {}) as Record<string, unknown>;

/** Event runs in progress (worker threads of the scheduler). */
const eventsRunning = async (env: CaseEnv) =>
  Number((await one(env, "SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE COMMAND = 'Connect' AND USER <> 'system user' AND DB = 'test'")).n);

function errorOf(job: Job): string {
  const at = job.stderr.indexOf('shadowshift:');
  if (at >= 0) return job.stderr.slice(at).replace(/\s+/g, ' ').slice(0, 800);
  return job.stderr.split('\n').filter(Boolean).slice(-3).join(' ').slice(0, 600);
}

async function columnsText(env: CaseEnv, columns: string, table: string, orderBy: string): Promise<string> {
  const r = await mariadbClient(env, `select ${columns} from \`${table}\` ${orderBy}`, ['-ss']);
  if (r.code !== 0) throw new Error(`comparison query on ${table} failed: ${r.err.trim()}`);
  return r.out;
}

/** The two writes gh-ost's custom scripts make after the copy (they expect the job to fail on them). */
const INJECT: Record<string, string> = {
  'panic-on-warnings-batch-middle':
    "BEGIN; INSERT IGNORE INTO gh_ost_test (id, email) VALUES (1, 'duplicate_pk@example.com'); INSERT IGNORE INTO gh_ost_test (email) VALUES ('alice@example.com'); INSERT IGNORE INTO gh_ost_test (email) VALUES ('new@example.com'); COMMIT;",
  'panic-on-warnings-update-pk-with-duplicate-on-new-unique-index': "update gh_ost_test set id = 200, email = 'alice@example.com' where id = 2",
};

export async function runCase(env: CaseEnv, c: GhostCase): Promise<CaseRun> {
  const started = Date.now();
  const done = (verdict: Verdict, detail: string, eventsApplied?: number): CaseRun => ({
    name: c.name, verdict, detail, seconds: Math.round((Date.now() - started) / 100) / 10, eventsApplied,
  });
  await env.admin.query('DROP DATABASE IF EXISTS test');
  await env.admin.query('CREATE DATABASE test');
  if (c.sqlMode !== null) await env.admin.query('SET GLOBAL sql_mode = ?', [c.sqlMode]);
  const flag = join(env.workDir, 'postpone');
  try {
    const created = await mariadbClient(env, c.file('create.sql'));
    if (created.code !== 0) return done('skipped', `create.sql failed on this server: ${created.err.trim()}`);
    if (c.hasFile('before.sql')) await mariadbClient(env, c.file('before.sql'));
    const hasEvent = Number((await one(env, "SELECT COUNT(*) AS n FROM information_schema.EVENTS WHERE EVENT_SCHEMA = 'test'")).n) > 0;

    writeFileSync(flag, '');
    let job: Job;
    let load: Load | null = null;
    const table = c.name === 'sysbench' ? 'sbtest1' : 'gh_ost_test';
    if (c.name === 'gtid-resume') {
      // gh-ost's script: interrupt mid-copy once a checkpoint is written, then resume.
      const first = startJob(env, c, flag, ['--resumable', '--checkpoint-interval', '1']);
      await until('a checkpoint', 60000, async () => first.code !== null || Number((await one(env, 'SELECT COUNT(*) AS n FROM test._shadowshift_checkpoints')).n) > 0);
      first.kill('SIGTERM');
      await first.exited;
      if (process.env.GHOST_CORPUS_DEBUG) writeFileSync(join(env.workDir, '..', `ghost-corpus-${c.name}.log`), first.stderr);
      job = startJob(env, c, flag, ['--resumable', '--resume']);
    } else if (c.name === 'sysbench') {
      await prepareSbtest(env.port);
      load = startSbtestLoad(env.port);
      job = startJob(env, c, flag, [], table);
    } else job = startJob(env, c, flag, []);

    let applied = 0;
    const reached = await until('', 90000, async () => job.code !== null || (await status(job))?.state === 'postponed');
    if (reached && job.code === null) {
      const inject = INJECT[c.name];
      if (inject) {
        const base = (await status(job))?.eventsApplied ?? 0;
        await mariadbClient(env, inject);
        await until('the injected write applied', 20000, async () => job.code !== null || ((await status(job))?.eventsApplied ?? 0) > base);
      }
      if (load) {
        await until('', 20000, async () => job.code !== null || ((await status(job))?.eventsApplied ?? 0) >= 500);
        await load.stop();
        load = null;
      }
      if (hasEvent) {
        // Let the event's writes reach the shadow through the stream for a while.
        await until('', 8000, async () => job.code !== null || ((await status(job))?.eventsApplied ?? 0) >= 9);
        await env.admin.query('ALTER EVENT test.gh_ost_test DISABLE').catch(() => undefined);
        await until('the event to stop', 20000, async () => (await eventsRunning(env)) === 0);
      }
      applied = (await status(job))?.eventsApplied ?? 0;
    }
    if (load) await load.stop();
    rmSync(flag, { force: true });
    const timer = setTimeout(() => job.kill('SIGTERM'), 120000);
    const code = await job.exited;
    clearTimeout(timer);
    if (c.sqlMode !== null) await env.admin.query('SET GLOBAL sql_mode = ?', [env.originalSqlMode]);
    if (c.hasFile('after.sql')) await mariadbClient(env, c.file('after.sql'));
    if (c.hasFile('destroy.sql')) await mariadbClient(env, c.file('destroy.sql'));
    if (code !== 0) return done(c.expectFailure !== null ? 'refused' : 'failed', errorOf(job), applied);

    const result = (JSON.parse(job.stdout.trim().split('\n').pop() ?? '{}') as { result?: { backupTable?: string; eventsApplied?: number } }).result;
    const backup = result?.backupTable;
    if (!backup) return done('failed', `no backup table in the result: ${job.stdout.slice(0, 300)}`, applied);
    if (c.expectTableStructure) {
      const show = (await mariadbClient(env, `show create table ${table}\\G`, ['-ss'])).out;
      if (!show.includes(c.expectTableStructure)) return done('structure', `table structure lacks "${c.expectTableStructure}": ${show.replace(/\s+/g, ' ').slice(0, 400)}`, applied);
    }
    const before = await columnsText(env, c.origColumns, backup, c.orderBy);
    const after = await columnsText(env, c.ghostColumns, table, c.orderBy);
    const md5 = (s: string) => createHash('md5').update(s).digest('hex');
    if (md5(before) !== md5(after)) {
      const a = before.split('\n');
      const b = after.split('\n');
      const i = a.findIndex((l, k) => l !== b[k]);
      return done('different', `rows ${a.length - 1} vs ${b.length - 1}; first difference at line ${i + 1}: ${JSON.stringify(a[i])} vs ${JSON.stringify(b[i])}`, result?.eventsApplied);
    }
    return done('equal', `${before.split('\n').length - 1} rows`, result?.eventsApplied);
  } finally {
    rmSync(flag, { force: true });
    if (c.sqlMode !== null) await env.admin.query('SET GLOBAL sql_mode = ?', [env.originalSqlMode]).catch(() => undefined);
    if (existsSync(flag)) rmSync(flag, { force: true });
  }
}
