// One case of the fault matrix: a fresh database on the file's own server, a small
// table under a write workload (updates, inserts, deletes, primary-key changes), the
// job started, the phase reached and held, the fault delivered, the phase released,
// the job's exit awaited. Then the verdict (verdict.ts).

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDb, type Db } from '../db.js';
import { createWorkloadTable, seedWorkloadTable, startWorkload, type Workload, type WorkloadStats } from '../workload/index.js';
import type { JobStatus } from '../../../src/engine/job-state.js';
import type { CliRun } from '../cli.js';
import type { CaseContext, Fault, Phase } from './context.js';
import { JobRun, jobFiles } from './job-run.js';
import type { OwnedServer } from './owned-server.js';
import { judge, type Verdict } from './verdict.js';

export const ROWS = 3000;
const RATE = 40;
const EXIT_TIMEOUT_MS = 120_000;

export interface MatrixOptions {
  /** The ALTER every case runs (adds `flag`, which tells applied from untouched). */
  alter: string;
}

export async function runCase(server: OwnedServer, phase: Phase, fault: Fault, options: MatrixOptions): Promise<Verdict> {
  const started = Date.now();
  const database = await server.createDatabase('fm');
  const adminUrl = server.adminUrl(database);
  const dir = mkdtempSync(join(tmpdir(), 'ss-fault-'));
  let observer: Db | null = null;
  const sql = async () => {
    if (!observer || observer.broken) {
      observer?.destroy();
      observer = await openDb(adminUrl);
    }
    return observer;
  };
  const files = jobFiles(dir);
  // Short chunks hold their share locks briefly (as test/acceptance/under-load.test.ts); a
  // lock timeout long enough to deliver a fault while the cut-over waits for or holds its lock.
  const jobArgs = ['--alter', options.alter, '--chunk-time', '100', '--cutover-lock-timeout', '10', ...phase.args];
  let workload: Workload | undefined;
  const ctx: CaseContext = {
    dialect: server.dialect,
    server,
    adminUrl,
    files,
    job: null as unknown as JobRun,
    startJob: (extra) => (ctx.job = new JobRun(files, server.jobUrl(database), [...jobArgs, ...extra])),
    sql,
    holders: [],
    appWrites: () => workload?.writesAcknowledged ?? 0,
  };
  try {
    const db = await sql();
    await createWorkloadTable(db, 'orders');
    const model = await seedWorkloadTable(db, 'orders', ROWS);
    await phase.before?.(ctx);
    workload = await startWorkload({ url: adminUrl, table: 'orders', model, rate: RATE, connections: 3, seed: started % 100_000, opTimeoutMs: 60_000 });
    let run: CliRun;
    let atFault: JobStatus | null;
    let stats: WorkloadStats;
    try {
      ctx.startJob([]);
      await phase.reach(ctx);
      atFault = await ctx.job.status();
      await fault.deliver(ctx);
      await phase.release(ctx);
      run = await Promise.race([
        ctx.job.done,
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`the job did not exit within ${EXIT_TIMEOUT_MS / 1000} s of the fault:\n${ctx.job.log().slice(-4000)}`)), EXIT_TIMEOUT_MS)),
      ]);
    } catch (err) {
      throw new Error(`${(err as Error).message}\njob log (tail):\n${ctx.job?.log().slice(-6000) ?? ''}`, { cause: err });
    } finally {
      if (process.env.SHADOWSHIFT_FAULT_MATRIX_LOGS) {
        mkdirSync(process.env.SHADOWSHIFT_FAULT_MATRIX_LOGS, { recursive: true });
        writeFileSync(join(process.env.SHADOWSHIFT_FAULT_MATRIX_LOGS, `${server.dialect}-${fault.name}-${phase.name}.log`.replace(/ /g, '_')), ctx.job?.log() ?? '');
      }
      for (const h of ctx.holders.splice(0)) await h.release();
      rmSync(files.postponeFlag, { force: true });
      if (ctx.job && !ctx.job.hasExited) {
        ctx.job.child.kill('SIGKILL');
        await ctx.job.done;
      }
      stats = await workload.stop();
    }
    return await judge({ ctx, phase, fault, run, atFault, stats, model, seconds: (Date.now() - started) / 1000 });
  } finally {
    (observer as Db | null)?.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}
