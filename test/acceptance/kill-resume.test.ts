// Invariant 8 on both dialects: a resumable job is killed with SIGKILL at three
// points of the copy while a write workload keeps running; each restart with
// --resume continues from the checkpoint (not from zero) and the final table
// equals the model of every acknowledged write.

import { describe, it, expect } from 'vitest';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMysqlDatabase, createPgDatabase } from '../support/databases.js';
import { openDb } from '../support/db.js';
import { createWorkloadTable, seedWorkloadTable, startWorkload } from '../support/workload.js';
import { compareWithModel, formatDiffs } from '../support/compare.js';
import { waitUntil } from '../support/alter.js';
import { sendControlCommand } from '../../src/control/control-client.js';
import { startCli } from '../support/cli.js';

const ROWS = 100_000;

const start = (args: string[], url: string) => startCli(args, { SHADOWSHIFT_URL: url });

const cases = [
  { dialect: 'mysql' as const, createDb: () => createMysqlDatabase('resume'), alter: "ADD COLUMN flag VARCHAR(8) NOT NULL DEFAULT 'r'" },
  { dialect: 'postgres' as const, createDb: () => createPgDatabase('resume'), alter: "ADD COLUMN flag varchar(8) NOT NULL DEFAULT 'r'" },
];

describe.each(cases)('$dialect: SIGKILL at three points of the copy, then --resume', ({ createDb, alter }) => {
  it('continues from the checkpoint each time and ends equal to the model', async () => {
    const { url } = await createDb();
    const db = await openDb(url);
    const dir = mkdtempSync(join(tmpdir(), 'ss-resume-'));
    const socket = join(dir, 'job.sock');
    try {
      await createWorkloadTable(db, 'orders');
      const model = await seedWorkloadTable(db, 'orders', ROWS);
      const workload = await startWorkload({ url, table: 'orders', model, rate: 200, connections: 4, seed: 11 });
      const args = (resume: boolean) => [
        'alter', '--table', 'orders', '--alter', alter, '--execute', '--resumable', ...(resume ? ['--resume'] : []),
        '--chunk-size', '400', '--checkpoint-interval', '0.2', '--control-socket', socket, '--status-interval', '60',
      ];
      // Fractions of the seeded rows. The copy itself never copies all of them: rows the
      // stream already put in the shadow are skipped, and rows the workload moves past the
      // copy's ceiling arrive through the stream only (a run has ended at 72%).
      const killPoints = [0.15, 0.35, 0.55];
      let resumedFrom: number[] = [];
      for (let i = 0; i <= killPoints.length; i++) {
        const run = start(args(i > 0), url);
        if (i === killPoints.length) {
          const r = await run.done;
          expect(r.code, r.stderr.slice(-3000)).toBe(0);
          resumedFrom.push(Number(/"rowsCopied":(\d+)[^\n]*resuming the copy/.exec(r.stderr)?.[1] ?? -1));
          break;
        }
        let exited: string | null = null;
        void run.done.then((r) => (exited = `exited early with ${r.code}: ${r.stderr.slice(-2000)}`));
        await waitUntil(() => {
          if (exited) throw new Error(exited);
          return existsSync(socket);
        }, 'the control socket', 60_000);
        let copied = 0;
        await waitUntil(async () => {
          if (exited) throw new Error(exited);
          const reply = await sendControlCommand(socket, { command: 'status' }).catch(() => null);
          if (reply && reply.ok) copied = reply.status.rowsCopied;
          return copied >= ROWS * killPoints[i]!;
        }, `the copy to pass ${killPoints[i]! * 100}%`, 120_000, 20).catch((err: Error) => {
          throw new Error(`${err.message} (run ${i + 1}, ${copied} rows copied); its log:\n${run.stderrSoFar().slice(-4000)}`);
        });
        // Let a checkpoint at or past this point be written.
        await new Promise((r) => setTimeout(r, 300));
        run.child.kill('SIGKILL');
        const r = await run.done;
        expect(r.signal).toBe('SIGKILL');
        if (i > 0) resumedFrom.push(Number(/"rowsCopied":(\d+)[^\n]*resuming the copy/.exec(r.stderr)?.[1] ?? -1));
        rmSync(socket, { force: true });
      }
      // Every restart resumed from a checkpoint with rows already copied.
      expect(resumedFrom).toHaveLength(3);
      for (const [i, rows] of resumedFrom.entries()) expect(rows, `restart ${i + 1}`).toBeGreaterThan(ROWS * killPoints[i]! * 0.5);

      await new Promise((r) => setTimeout(r, 500));
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
