// `shadowshift demo`: the main job on a database the demo starts itself. Parses
// and prints only; the demo is src/demo/, and its ALTER runs through `alter`'s
// own code path (runAlter), parsed from a command line by alter's own options.

import yargs, { type Argv } from 'yargs';
import { runDemo } from '../demo/run-demo.js';
import { formatReport } from '../demo/demo-report.js';
import type { JobObserver } from '../engine/job.js';
import { ShadowshiftError, UsageError } from '../util/errors.js';
import { createLogger, type Logger } from '../util/logger.js';
import { alterBuilder, runAlter } from './alter-command.js';
import { checkNumber } from './engine-options.js';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function demoBuilder(y: Argv) {
  return y
    .usage('$0 demo [options]\n\nStarts a throwaway database, seeds an orders table, runs an application workload on it and migrates the table online, ' +
      'showing what the application saw before, during and after, next to the same ALTER done natively. Stops everything it started.')
    .option('engine', { choices: ['postgres', 'mariadb'] as const, default: 'postgres' as const, describe: 'postgres: embedded PostgreSQL from npm; mariadb: the MariaDB server installed on this machine' })
    .option('rows', { type: 'number', default: 1_000_000, describe: 'rows to seed' })
    .option('rate', { type: 'number', default: 300, describe: 'application operations per second (open loop: reads, updates, inserts, deletes)' })
    .option('connections', { type: 'number', default: 8, describe: 'application connections' })
    .option('alter', { type: 'string', describe: 'ALTER TABLE clauses for the orders table (default: a NOT NULL column with a default, and customer_id to bigint)' })
    .option('chunk-time', { type: 'number', describe: "passed to alter: target milliseconds per copy chunk (alter's default, 200, when left out)" })
    .option('sample-seconds', { type: 'number', default: 3, describe: 'seconds the application is measured before and after the migration' })
    .option('compare-native', { type: 'boolean', default: true, describe: 'also run the same ALTER natively on the old table under the same workload (--no-compare-native to skip)' })
    .option('keep', { type: 'boolean', default: false, describe: 'leave the database running and print its URL and a command to try next' })
    .option('json', { type: 'boolean', default: false, describe: 'print the result as one JSON object on stdout' })
    .option('web', { type: 'boolean', default: false, describe: "serve the live dashboard of the migration (alter's --http): its URL and token are printed when the ALTER starts" })
    .option('web-address', { type: 'string', default: '127.0.0.1:0', describe: 'with --web: HOST:PORT of the dashboard (port 0: any free one)' });
}

type DemoArgs = Awaited<ReturnType<typeof demoBuilder>['argv']>;

function validate(args: DemoArgs): void {
  if (!Number.isInteger(args.rows) || args.rows < 1000) throw new UsageError(`--rows must be a whole number of at least 1000 (got ${args.rows})`);
  checkNumber('rate', args.rate, 'positive');
  if (!Number.isInteger(args.connections) || args.connections < 1 || args.connections > 50) throw new UsageError(`--connections must be a whole number from 1 to 50 (got ${args.connections})`);
  checkNumber('sample-seconds', args.sampleSeconds, 'positive');
  checkNumber('chunk-time', args.chunkTime, 'positive');
  if (args.alter !== undefined && !args.alter.trim()) throw new UsageError('--alter is empty; leave it out for the default change');
}

/** `shadowshift alter <argv>` in this process: alter's own option parsing and runAlter. */
async function alterViaCli(argv: string[], observer: JobObserver, log: Logger) {
  const args = await alterBuilder(yargs())
    .strict()
    .help(false)
    .version(false)
    .fail((msg, err) => {
      throw err ?? new UsageError(msg);
    })
    .parseAsync(argv);
  const { report, result } = await runAlter(args, { observer, log });
  if (!result) throw new ShadowshiftError(`the demo's ALTER was refused: ${report.checks.filter((c) => !c.ok).map((c) => `${c.check}: ${c.message}`).join('; ')}`);
  return result;
}

export async function demoCommand(args: DemoArgs): Promise<number> {
  validate(args);
  const log = createLogger({ messagesOnly: true });
  // --web: alter's --http, with a token made for this run (shown, as it is the user's own terminal).
  const web = args.web ? { dir: mkdtempSync(join(tmpdir(), 'shadowshift-web-')), token: randomBytes(12).toString('hex') } : null;
  const webArgv = web ? ['--http', args.webAddress, '--http-token-file', join(web.dir, 'token')] : [];
  if (web) {
    writeFileSync(join(web.dir, 'token'), web.token + '\n', { mode: 0o600 });
    process.stderr.write(`shadowshift demo --web: the dashboard opens when the ALTER starts (its URL is logged then); token for its controls: ${web.token}\n`);
  }
  const report = await runDemo({
    engine: args.engine,
    rows: args.rows,
    rate: args.rate,
    connections: args.connections,
    alter: args.alter,
    chunkTimeMs: args.chunkTime,
    sampleSeconds: args.sampleSeconds,
    compareNative: args.compareNative,
    keep: args.keep,
    log,
    runAlter: (argv, observer) => alterViaCli([...argv, ...webArgv], observer, log),
  }).finally(() => {
    if (web) rmSync(web.dir, { recursive: true, force: true });
  });
  process.stdout.write(args.json ? JSON.stringify(report) + '\n' : formatReport(report));
  if (!report.tableMatches) {
    process.stderr.write('shadowshift demo: the table does not match what the application wrote; this is a bug, please report it with the output above\n');
    return 1;
  }
  return 0;
}
