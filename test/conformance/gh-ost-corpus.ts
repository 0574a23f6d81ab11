// Conformance run over gh-ost's own migration corpus (localtests/ of github/gh-ost).
// Not part of `npm test`: CI cannot fetch gh-ost. Usage:
//
//   npm run build
//   npx tsx test/conformance/gh-ost-corpus.ts /path/to/gh-ost [case-regex] [--write docs/conformance-gh-ost.md] [--bin other/bin/shadowshift.js]
//
// Starts its own throwaway MariaDB (test/support/servers.ts, event scheduler on), runs
// every case one after the other (gh-ost-run-case.ts), prints one line per case and a
// summary, and with --write records the table in the docs file. A case passes when the
// case's comparison of original and new columns is equal, or when the job refuses and
// the refusal is the one the case's expect_failure names (gh-ost-policy.ts says which
// of our messages that is, and why where the policies differ).

import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import mysql, { type RowDataPacket } from 'mysql2/promise';
import { startMariaDb } from '../support/servers.js';
import { listCases, readCase, skippedFor } from './gh-ost-cases.js';
import { runCase, type CaseRun } from './gh-ost-run-case.js';
import { judge, renderReport } from './gh-ost-policy.js';

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const writeAt = argv.indexOf('--write');
  const reportPath = writeAt >= 0 ? argv.splice(writeAt, 2)[1] : undefined;
  const binAt = argv.indexOf('--bin');
  const binArg = binAt >= 0 ? argv.splice(binAt, 2)[1] : undefined;
  const [ghost, pattern] = argv;
  if (!ghost) throw new Error('usage: gh-ost-corpus.ts <gh-ost checkout> [case-regex] [--write <file.md>] [--bin <bin/shadowshift.js>]');
  const localtests = join(resolve(ghost), 'localtests');
  let commit = 'unknown';
  try {
    commit = execFileSync('git', ['-C', resolve(ghost), 'rev-parse', 'HEAD'], { encoding: 'utf8' }).trim();
  } catch {
    /* a plain directory: the commit is unknown */
  }
  const names = listCases(localtests).filter((n) => !pattern || new RegExp(pattern).test(n));
  // --bin: another build (e.g. of an earlier commit, for a before/after score).
  const bin = resolve(binArg ?? new URL('../../bin/shadowshift.js', import.meta.url).pathname);
  const workDir = mkdtempSync(join(tmpdir(), 'shadowshift-ghost-corpus-'));
  const server = await startMariaDb({ extraArgs: ['--event-scheduler=ON'] });
  const admin = await mysql.createConnection({ host: '127.0.0.1', port: server.port, user: 'root', multipleStatements: false });
  const runs: CaseRun[] = [];
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await admin.end().catch(() => undefined);
    await server.stop();
    rmSync(workDir, { recursive: true, force: true });
  };
  // Ctrl-C stops the server and removes the temp dirs (a running job gets the signal too and cleans up).
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => void stop().then(() => process.exit(130)));
  try {
    const [[v]] = await admin.query<RowDataPacket[]>('SELECT @@version AS v, @@version_comment AS c, @@global.sql_mode AS m');
    const version = String(v!.v);
    const env = { port: server.port, admin, workDir, bin, originalSqlMode: String(v!.m) };
    process.stdout.write(`gh-ost ${commit}, ${names.length} cases, on ${version}\n`);
    for (const name of names) {
      const c = readCase(localtests, name);
      let run: CaseRun;
      if (skippedFor(c, version, String(v!.c))) run = { name, verdict: 'skipped', detail: `ignore_versions ${c.ignoreVersions}`, seconds: 0 };
      else {
        try {
          run = await runCase(env, c);
        } catch (err) {
          run = { name, verdict: 'failed', detail: `runner: ${(err as Error).message}`, seconds: 0 };
        }
      }
      runs.push(run);
      const j = judge(c, run);
      process.stdout.write(`${j.pass ? 'PASS' : 'FAIL'} ${name} (${run.seconds}s): ${j.outcome}${run.detail ? ` — ${run.detail.slice(0, 300)}` : ''}\n`);
    }
    const judged = runs.map((r) => ({ run: r, c: readCase(localtests, r.name) }));
    const pass = judged.filter(({ run, c }) => judge(c, run).pass).length;
    const different = runs.filter((r) => r.verdict === 'different').length;
    process.stdout.write(`\n${pass} of ${runs.length} pass; ${different} with different data\n`);
    if (reportPath) writeFileSync(reportPath, renderReport({ commit, version, judged }));
  } finally {
    await stop();
  }
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
