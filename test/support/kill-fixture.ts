// Runs one job the way `shadowshift alter --execute` does, and gets it to a point of a
// phase where the test SIGKILLs it (test/acceptance/resume-phases.test.ts,
// test/acceptance/resume-matrix.test.ts). Two kinds of stop:
//  - frozen, at a point the CLI has no flag for: right after the swap, under the
//    cut-over's lock after its drain, inside a chunk's transaction once `copyRows` rows
//    were copied, on entering catching-up (saved), between two key ranges of the
//    checksum (its snapshot open). It writes `flagFile` there and waits forever;
//  - live, where the CLI can be held from outside (a postpone flag file, a session
//    holding the table's lock, an old snapshot or the new table's lock the index build
//    waits for): it writes
//    `flagFile` once its own status says it is there, and keeps running.
// `flagFile` holds JSON: the rows copied and, after each chunk, { at, rows } samples
// (the kill's cost in rows is bounded with them).
//
// node --import tsx test/support/kill-fixture.ts '<json of KillFixtureArgs>'

import { existsSync, renameSync, writeFileSync } from 'node:fs';
import { AlterJob } from '../../src/engine/job.js';
import { parseConnectionUrl } from '../../src/util/connection-url.js';
import { createLogger } from '../../src/util/logger.js';

export type KillPoint = 'after-swap' | 'under-cutover-lock' | 'shadow-triggers' | 'children-repointed' | 'before-own-names' | 'copying' | 'catching-up' | 'checksum' | 'postponed' | 'indexes' | 'cutover-waiting';

export interface KillFixtureArgs {
  url: string;
  table: string;
  alter: string;
  stopAt: KillPoint;
  flagFile: string;
  /** copying: stop in the transaction of the first chunk that starts once this many rows were copied, */
  copyRows?: number;
  /** and this long after the first chunk (so that checkpoints were saved during the copy). */
  copySeconds?: number;
  chunkSize?: number;
  checkpointIntervalSeconds?: number;
  /** postponed: the job's --postpone-cutover-flag-file. */
  postponeFlagFile?: string;
  /** Every chunk waits until this file exists: the test takes a hold on the new table first. */
  gateFile?: string;
  deferIndexes?: boolean;
  /** Run `shadowshift revert` of the table instead (`alter` is not used). */
  revert?: boolean;
}

export interface KillFixtureStop {
  at: number;
  rowsCopied: number;
  samples: Array<{ at: number; rows: number }>;
}

const args = JSON.parse(process.argv[2]!) as KillFixtureArgs;
const log = createLogger({ pretty: false });
const samples: Array<{ at: number; rows: number }> = [];
let flagged = false;
const flag = () => {
  if (flagged) return;
  flagged = true;
  const stop: KillFixtureStop = { at: Date.now(), rowsCopied: job.status().rowsCopied, samples };
  // Said first, then the flag written whole and renamed into place: the test reads both
  // as soon as the flag exists, and kills the process.
  log.info({ at: args.stopAt, rowsCopied: stop.rowsCopied }, 'test: at the kill point');
  writeFileSync(`${args.flagFile}.tmp`, JSON.stringify(stop));
  renameSync(`${args.flagFile}.tmp`, args.flagFile);
};
/** The copying stop's pace per chunk before its point (copy of 120 chunks: ~5 s at least). */
const CHUNK_PACE_MS = 40;
const stop = async () => {
  flag();
  log.info({ at: args.stopAt }, 'test: stopped, waiting to be killed');
  await new Promise(() => undefined);
};
const at = (point: KillPoint) => (args.stopAt === point ? stop : undefined);
const job: AlterJob = new AlterJob({
  connection: parseConnectionUrl(args.url),
  table: args.table,
  alter: args.alter,
  revert: args.revert,
  chunkTimeMs: 200,
  chunkSize: args.chunkSize ?? 2000,
  cutoverLockTimeoutMs: 60_000,
  cutoverRetries: 1,
  dropOldTable: false,
  checkpointIntervalSeconds: args.checkpointIntervalSeconds,
  postponeCutoverFlagFile: args.postponeFlagFile,
  deferIndexes: args.deferIndexes,
  log,
  // Called before the chunk is added to the job's count.
  observer: { chunkCopied: (rows) => void samples.push({ at: Date.now(), rows: job.status().rowsCopied + rows }) },
  testHooks: {
    afterSwap: at('after-swap'),
    afterCutoverDrain: at('under-cutover-lock'),
    // The same point: under the lock, once the shadow has the triggers and the children reference it.
    beforeSwap: at('shadow-triggers') ?? at('children-repointed'),
    beforeOwnNames: at('before-own-names'),
    beforeChunkCommit:
      args.stopAt === 'copying'
        ? async () => {
            const status = job.status();
            const copying = samples.length > 0 && Date.now() - samples[0]!.at >= (args.copySeconds ?? 0) * 1000;
            // A checkpoint holding copied rows: else the kill is a restart, not a resume.
            const checkpointed = (status.lastCheckpoint?.rowsCopied ?? 0) > 0;
            if (copying && checkpointed && status.rowsCopied >= (args.copyRows ?? 0)) await stop();
            // Until then each chunk takes a little longer, so the copy outlasts copySeconds
            // and several checkpoint intervals however fast the server copies.
            else await new Promise((r) => setTimeout(r, CHUNK_PACE_MS));
          }
        : args.gateFile
          ? async () => {
              while (!existsSync(args.gateFile!)) await new Promise((r) => setTimeout(r, 25));
            }
          : undefined,
    catchingUp: at('catching-up'),
    checksumCompared: at('checksum'),
  },
});
// The live stops: the job's own status says where it is.
const live: Partial<Record<KillPoint, () => boolean>> = {
  postponed: () => job.status().state === 'postponed',
  // PostgreSQL's build waits for an old snapshot, MySQL's for the new table's metadata lock.
  indexes: () => job.status().phase === 'building-indexes' && ['old-snapshots', 'lock'].includes(job.status().waitingFor?.what ?? ''),
  'cutover-waiting': () => job.status().phase === 'cutting-over' && job.status().waitingFor?.what === 'lock',
};
const reached = live[args.stopAt];
if (reached) setInterval(() => reached() && flag(), 25).unref();
const report = await job.prepare();
if (!report.ok) throw new Error(`preflight: ${JSON.stringify(report.checks.filter((c) => !c.ok))}`);
await job.execute(report);
