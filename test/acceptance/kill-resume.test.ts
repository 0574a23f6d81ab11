// Invariant 8 on both dialects: a job started WITHOUT --resumable (every job writes
// checkpoints) is killed with SIGKILL at three points of the copy and once while
// postponed, while a write workload keeps running; each restart with --resume continues
// from the checkpoint and the final table equals the model of every acknowledged write.
//
// Each kill costs at most the copy its last saved checkpoint did not hold: the next run
// resumes at or past the rows of the last checkpoint the killed run's status showed (one
// saved between that status and the kill only moves it further). No wall-clock bound: how
// far a checkpoint trails the copy depends on the machine's load, not on correctness; the
// gap is printed. A kill after the copy (postponed) costs no copy at all: the phase change
// was saved at once. The
// checksum's repair count is per run of the process: each killed run shows 0 in its last
// status, the run that finishes reports 0 in its --json result.

import { describe, it, expect } from 'vitest';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMysqlDatabase, createPgDatabase, testedDialects } from '../support/databases.js';
import { openDb } from '../support/db.js';
import { createWorkloadTable, seedWorkloadTable, startWorkload } from '../support/workload/index.js';
import { compareWithModel, formatDiffs } from '../support/compare.js';
import { waitUntil } from '../support/alter.js';
import { sendControlCommand } from '../../src/control/control-client.js';
import type { JobStatus } from '../../src/engine/job-state.js';
import { startCli } from '../support/cli.js';

const ROWS = 100_000;
const INTERVAL_S = 0.5;

const start = (args: string[], url: string) => startCli(args, { SHADOWSHIFT_URL: url });

const cases = [
  { dialect: 'mysql' as const, createDb: () => createMysqlDatabase('resume'), alter: "ADD COLUMN flag VARCHAR(8) NOT NULL DEFAULT 'r'" },
  { dialect: 'postgres' as const, createDb: () => createPgDatabase('resume'), alter: "ADD COLUMN flag varchar(8) NOT NULL DEFAULT 'r'" },
];

const resumedAt = (stderr: string): number => Number(/"rowsCopied":(\d+)[^\n]*resuming the copy/.exec(stderr)?.[1] ?? /"rowsCopied":(\d+)[^\n]*copy was already complete/.exec(stderr)?.[1] ?? -1);

describe.each(testedDialects(cases))('$dialect: SIGKILL at three points of the copy and while postponed, then --resume', ({ createDb, alter }) => {
  it('continues from its last checkpoint each time and ends equal to the model', async () => {
    const { url } = await createDb();
    const db = await openDb(url);
    const dir = mkdtempSync(join(tmpdir(), 'ss-resume-'));
    const socket = join(dir, 'job.sock');
    const postpone = join(dir, 'postpone');
    writeFileSync(postpone, '');
    try {
      await createWorkloadTable(db, 'orders');
      const model = await seedWorkloadTable(db, 'orders', ROWS);
      const workload = await startWorkload({ url, table: 'orders', model, rate: 200, connections: 4, seed: 11 });
      // No --resumable: every job checkpoints, and a crash leaves a resumable state.
      const args = (resume: boolean) => [
        'alter', '--table', 'orders', '--alter', alter, '--execute', '--json', ...(resume ? ['--resume'] : []),
        '--chunk-size', '400', '--checkpoint-interval', String(INTERVAL_S), '--control-socket', socket, '--status-interval', '60',
        '--postpone-cutover-flag-file', postpone,
      ];
      // Fractions of the seeded rows, then the postponed state. The copy itself never copies
      // all of them: rows the stream already put in the shadow are skipped, and rows the
      // workload moves past the copy's ceiling arrive through the stream only.
      const killPoints: Array<number | 'postponed'> = [0.15, 0.35, 0.55, 'postponed'];
      const lastSeen: number[] = [];
      const allowed: number[] = [];
      const resumedFrom: number[] = [];
      for (let i = 0; i <= killPoints.length; i++) {
        if (i === killPoints.length) rmSync(postpone);
        const run = start(args(i > 0), url);
        if (i === killPoints.length) {
          const r = await run.done;
          expect(r.code, r.stderr.slice(-3000)).toBe(0);
          resumedFrom.push(resumedAt(r.stderr));
          const { result } = JSON.parse(r.stdout);
          expect(result.checksum.ran).toBe(true);
          expect(result.repairedChunks, r.stderr.slice(-3000)).toBe(0);
          break;
        }
        let exited: string | null = null;
        void run.done.then((r) => (exited = `exited early with ${r.code}: ${r.stderr.slice(-2000)}`));
        await waitUntil(() => {
          if (exited) throw new Error(exited);
          return existsSync(socket);
        }, 'the control socket', 60_000);
        let status: JobStatus | null = null;
        const point = killPoints[i]!;
        await waitUntil(async () => {
          if (exited) throw new Error(exited);
          const reply = await sendControlCommand(socket, { command: 'status' }).catch(() => null);
          if (reply && reply.ok) status = reply.status as JobStatus;
          if (!status) return false;
          // Only once a checkpoint holds copied rows: a kill before that is a restart, not a resume.
          if (!status.lastCheckpoint || status.lastCheckpoint.rowsCopied === 0) return false;
          return point === 'postponed' ? status.state === 'postponed' : status.state === 'copying' && status.rowsCopied >= ROWS * point;
        }, `run ${i + 1} to reach ${point}`, 120_000, 20).catch((err: Error) => {
          throw new Error(`${err.message} (${status?.rowsCopied} rows copied, state ${status?.state}); its log:\n${run.stderrSoFar().slice(-4000)}`);
        });
        run.child.kill('SIGKILL');
        const r = await run.done;
        expect(r.signal).toBe('SIGKILL');
        const s = status as unknown as JobStatus;
        expect(s.repairedChunks, `run ${i + 1}`).toBe(0);
        if (i > 0) resumedFrom.push(resumedAt(r.stderr));
        lastSeen.push(s.rowsCopied);
        // What the last checkpoint the status showed did not hold: the most a kill may cost.
        allowed.push(point === 'postponed' ? 0 : s.rowsCopied - s.lastCheckpoint!.rowsCopied);
        if (point !== 'postponed') console.log(`[kill-resume] kill ${i + 1}: the last checkpoint trailed the copy by ${allowed[i]} rows`);
        rmSync(socket, { force: true });
      }
      expect(resumedFrom).toHaveLength(killPoints.length);
      for (const [i, from] of resumedFrom.entries()) {
        const lost = lastSeen[i]! - from;
        expect(lost, `kill ${i + 1} (${killPoints[i]}): the run had copied ${lastSeen[i]}, its resume started at ${from}, allowed ${allowed[i]}`).toBeLessThanOrEqual(allowed[i]!);
        expect(from, `kill ${i + 1}`).toBeGreaterThan(0);
      }

      const stats = await workload.stop();
      expect(stats.errors, JSON.stringify(stats.errorSamples.slice(0, 5))).toBe(0);
      const final = await compareWithModel(db, 'orders', model);
      expect(final.equal, formatDiffs(final)).toBe(true);
    } finally {
      await db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 600_000);
});
