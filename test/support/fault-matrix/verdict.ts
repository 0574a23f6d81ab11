// How a fault case must end (docs/ARCHITECTURE.md invariants 1, 4, 7, 10; the README's
// exit codes): either the ALTER applied (exit 0, zero repaired chunks, only the old
// table kept) or the original untouched (exit 130, nothing of the job left, as
// `shadowshift cleanup --json` lists it after the job's process exited); in both the
// table equals the workload's model of acknowledged writes, and the application never
// saw the table's name missing.

import type { CliRun } from '../cli.js';
import { startCli } from '../cli.js';
import { compareWithModel, formatDiffs } from '../compare.js';
import type { WorkloadModel, WorkloadStats } from '../workload/index.js';
import type { JobStatus } from '../../../src/engine/job-state.js';
import type { Leftover } from '../../../src/dialects/dialect.js';
import type { CaseContext, Fault, Outcome, Phase } from './context.js';

export interface Verdict {
  exitCode: number | null;
  outcome: Outcome | `exit ${number | null}`;
  seconds: number;
  /** Empty when the case passed; otherwise each broken rule, with the job's log tail. */
  problems: string[];
}

/** "Table doesn't exist": MariaDB 1146, PostgreSQL 42P01. */
const NAME_MISSING = ['1146', '42P01'];

export async function judge(c: {
  ctx: CaseContext;
  phase: Phase;
  fault: Fault;
  run: CliRun;
  atFault: JobStatus | null;
  stats: WorkloadStats;
  model: WorkloadModel;
  seconds: number;
}): Promise<Verdict> {
  const { ctx, run, stats } = c;
  const problems: string[] = [];
  const outcome: Verdict['outcome'] = run.code === 0 ? 'applied' : run.code === 130 ? 'untouched' : `exit ${run.code}`;
  const expected = c.fault.expected(c.phase);
  if (!expected.includes(outcome as Outcome)) problems.push(`ended ${outcome}; expected ${expected.join(' or ')}`);
  if (c.atFault && c.atFault.repairedChunks !== 0) problems.push(`repairedChunks ${c.atFault.repairedChunks} before the fault`);

  const db = await ctx.sql();
  const flag = await db.query(
    ctx.dialect === 'mysql' ? "SHOW COLUMNS FROM orders LIKE 'flag'" : "SELECT 1 FROM pg_attribute WHERE attrelid = 'orders'::regclass AND attname = 'flag' AND NOT attisdropped",
  );
  const listed = await startCli(['cleanup', '--url', ctx.adminUrl, '--json']).done;
  let leftovers: Leftover[] = [];
  try {
    leftovers = (JSON.parse(listed.stdout) as { leftovers: Leftover[] }).leftovers;
  } catch {
    problems.push(`cleanup --json failed (${listed.code}): ${listed.stderr.slice(-1000)}`);
  }
  const describe = (l: Leftover[]) => l.map((x) => `${x.kind} ${x.name}`).join(', ');

  if (run.code === 0) {
    type Result = { repairedChunks: number; backupTable: string | null; checksum: { ran: boolean } };
    let result: Result | null = null;
    try {
      result = (JSON.parse(run.stdout) as { result: Result }).result;
    } catch {
      problems.push(`exit 0 without a --json result: ${run.stdout.slice(0, 500)}`);
    }
    if (result && result.repairedChunks !== 0) problems.push(`the checksum repaired ${result.repairedChunks} chunk(s)`);
    if (result && !result.checksum.ran) problems.push('the checksum did not run');
    if (flag.length !== 1) problems.push('exit 0, but the ALTER is not applied');
    const extra = leftovers.filter((l) => !(l.kind === 'backup' && l.name === result?.backupTable));
    if (extra.length) problems.push(`exit 0 left ${describe(extra)}`);
  } else if (run.code === 130) {
    if (flag.length !== 0) problems.push('exit 130, but the ALTER is applied');
    if (leftovers.length) problems.push(`exit 130 ("nothing left"), but cleanup lists ${describe(leftovers)}`);
  } else if (run.code === 5) {
    if (flag.length !== 0) problems.push('exit 5, but the ALTER is applied');
    if (!leftovers.length) problems.push('exit 5 ("something left"), but cleanup lists nothing');
  }

  const final = await compareWithModel(db, 'orders', c.model);
  if (!final.equal) problems.push(`the table differs from the model: ${formatDiffs(final)}`);
  const missing = NAME_MISSING.filter((k) => stats.errorsByKey[k]);
  if (missing.length) problems.push(`the application saw the table missing (${missing.map((k) => `${k} x${stats.errorsByKey[k]}`).join(', ')})`);
  // A deadlock between a copy chunk's share locks and a primary-key change reaches the
  // application now and then on MariaDB, fault or not (bench/RESULTS.md, "a deadlock reached
  // the application during the copy"); it rolled back, and the model knows it. Any other
  // error counts, except connection errors when the fault ends the application's sessions too.
  const errors = stats.errors - (stats.errorsByKey['1213'] ?? 0);
  if (errors && !c.fault.hitsApplication) problems.push(`the application got ${errors} error(s): ${JSON.stringify(stats.errorSamples.filter((e) => e.key !== '1213').slice(0, 3))}`);
  if (stats.anomalies) problems.push(`workload anomalies: ${JSON.stringify(stats.anomalySamples.slice(0, 3))}`);
  if (stats.readMismatches) problems.push(`workload read mismatches: ${JSON.stringify(stats.readMismatchSamples.slice(0, 3))}`);
  if (stats.ops < 20) problems.push(`the workload ran only ${stats.ops} operations`);

  if (problems.length) problems.push(`job log (tail):\n${run.stderr.slice(-6000)}`);
  return { exitCode: run.code, outcome, seconds: c.seconds, problems };
}
