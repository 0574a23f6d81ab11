// Runs one job the way `shadowshift alter --execute` does (signal handlers, control
// socket, the exit code main.ts gives an error), plus a hook the CLI has no flag for:
// while the chunk that ends at `abortAtKey` is still open, the abort is delivered (a
// real SIGTERM or SIGINT to this process, or `shadowshift ctl abort` on the socket), and
// the chunk commits only once the job has registered it. So an abort lands in a chunk
// in flight every time, not one run in two. Every chunk commit is logged as a
// `test: chunk` line, marked whether the abort had been requested before it.
//
// node --import tsx test/support/abort-fixture.ts '<json of FixtureArgs>'

import { spawn } from 'node:child_process';
import { AlterJob } from '../../src/engine/job.js';
import { installSignalHandlers } from '../../src/cli/signals.js';
import { startControlServer } from '../../src/control/control-server.js';
import { parseConnectionUrl } from '../../src/util/connection-url.js';
import { createLogger } from '../../src/util/logger.js';
import { ShadowshiftError } from '../../src/util/errors.js';
import { CLI } from './cli.js';

export interface FixtureArgs {
  url: string;
  table: string;
  alter: string;
  chunkSize: number;
  abortAtKey: string;
  how: 'SIGTERM' | 'SIGINT' | 'ctl';
  socket: string;
  resumable?: boolean;
}

const args = JSON.parse(process.argv[2]!) as FixtureArgs;
const log = createLogger({ pretty: false });
let delivered = false;

const job: AlterJob = new AlterJob({
  connection: parseConnectionUrl(args.url),
  table: args.table,
  alter: args.alter,
  chunkTimeMs: 500,
  chunkSize: args.chunkSize,
  cutoverLockTimeoutMs: 3000,
  cutoverRetries: 5,
  dropOldTable: false,
  resumable: args.resumable,
  log,
  testHooks: {
    beforeChunkCommit: async (range) => {
      const upTo = range.upTo === null ? null : String(range.upTo[0]);
      log.info({ upTo, afterAbort: job.controls.abortRequested }, 'test: chunk');
      if (delivered || upTo !== args.abortAtKey) return;
      delivered = true;
      if (args.how === 'ctl') {
        const ctl = spawn(process.execPath, [CLI, 'ctl', '--control-socket', args.socket, 'abort'], { stdio: 'ignore' });
        await new Promise((res) => ctl.on('close', res));
      } else {
        process.kill(process.pid, args.how);
      }
      while (!job.controls.abortRequested) await new Promise((r) => setTimeout(r, 5));
      log.info({ how: args.how }, 'test: abort delivered inside the open chunk');
    },
  },
});

async function main(): Promise<number> {
  try {
    const report = await job.prepare();
    if (!report.ok) throw new Error(`preflight: ${JSON.stringify(report.checks.filter((c) => !c.ok))}`);
    const control = await startControlServer(args.socket, job, log);
    const uninstall = installSignalHandlers(job.controls, log);
    try {
      await job.execute(report);
    } finally {
      uninstall();
      await control.close();
    }
    return 0;
  } finally {
    await job.close();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`shadowshift: ${(err as Error).message}\n`);
    process.exit(err instanceof ShadowshiftError ? err.exitCode : 1);
  },
);
