// `shadowshift alter`: one online ALTER of one table. Parses and prints only;
// the work is the engine's.

import type { Argv } from 'yargs';
import { AlterJob, type AlterPlanReport, type AlterResult } from '../engine/job.js';
import { startControlServer, defaultControlSocketPath } from '../control/control-server.js';
import { PreflightError, UsageError } from '../util/errors.js';
import { createLogger } from '../util/logger.js';
import { connectionFrom, withConnectionOptions } from './connection-options.js';
import { installSignalHandlers } from './signals.js';

export function alterBuilder(y: Argv) {
  return withConnectionOptions(y)
    .option('table', { type: 'string', demandOption: true, describe: 'table to alter (db.table or table)' })
    .option('alter', { type: 'string', demandOption: true, describe: 'ALTER TABLE clauses, e.g. "ADD COLUMN c INT, ADD INDEX (c)"' })
    .option('execute', { type: 'boolean', default: false, describe: 'run the migration; without it only the plan is printed' })
    .option('chunk-time', { type: 'number', default: 500, describe: 'target milliseconds per copy chunk (the chunk size adapts)' })
    .option('chunk-size', { type: 'number', describe: 'fixed rows per chunk (turns adaptation off)' })
    .option('cutover-lock-timeout', { type: 'number', default: 3, describe: 'seconds the cut-over may block writes per attempt' })
    .option('cutover-retries', { type: 'number', default: 10, describe: 'cut-over attempts before giving up' })
    .option('drop-old-table', { type: 'boolean', default: false, describe: 'drop the original after cut-over instead of keeping it as a backup' })
    .option('postpone-cutover-flag-file', { type: 'string', describe: 'while this file exists, wait before cut-over (changes keep being applied)' })
    .option('control-socket', { type: 'string', describe: 'Unix socket for `shadowshift ctl` (default: in the OS temp dir, printed at start)' })
    .option('status-interval', { type: 'number', default: 5, describe: 'seconds between progress lines' })
    .option('json', { type: 'boolean', default: false, describe: 'print the plan and the result as JSON' });
}

type AlterArgs = Awaited<ReturnType<typeof alterBuilder>['argv']>;

function validate(args: AlterArgs): void {
  const positive = (name: string, v: number | undefined) => {
    if (v !== undefined && (!Number.isFinite(v) || v <= 0)) throw new UsageError(`--${name} must be a positive number (got ${v})`);
  };
  positive('chunk-time', args.chunkTime);
  positive('chunk-size', args.chunkSize);
  positive('cutover-lock-timeout', args.cutoverLockTimeout);
  positive('cutover-retries', args.cutoverRetries);
  positive('status-interval', args.statusInterval);
  if (args.chunkSize !== undefined && !Number.isInteger(args.chunkSize)) throw new UsageError('--chunk-size must be a whole number of rows');
}

export function formatPlan(report: AlterPlanReport, execute: boolean): string {
  const lines = [
    `shadowshift plan for ${report.table} (${report.server})`,
    `  estimated rows:   ${report.estimatedRows}`,
    `  key:              ${report.key ? report.key.map((k) => (k.source === k.target ? k.source : `${k.source} -> ${k.target}`)).join(', ') : '(none shared)'}`,
    `  columns copied:   ${report.columns.map((c) => (c.source === c.target ? c.source : `${c.source} -> ${c.target}`)).join(', ') || '(none)'}`,
  ];
  if (report.columnsNotCopied.length) lines.push(`  not copied:       ${report.columnsNotCopied.join(', ')}`);
  if (report.columnsNew.length) lines.push(`  new (defaults):   ${report.columnsNew.join(', ')}`);
  if (report.newUniqueIndexes.length) lines.push(`  new unique keys:  ${report.newUniqueIndexes.join(', ')} (a duplicate fails the job, nothing is dropped)`);
  lines.push('  preflight checks:');
  for (const c of report.checks) lines.push(`    [${c.ok ? 'pass' : 'FAIL'}] ${c.check}${c.ok ? '' : `: ${c.message}`}`);
  if (!execute) lines.push(report.ok ? 'Nothing was changed. Run again with --execute to apply.' : 'Nothing was changed. Fix the failed checks above first.');
  return lines.join('\n');
}

export async function alterCommand(args: AlterArgs): Promise<number> {
  validate(args);
  const log = createLogger();
  const job = new AlterJob({
    connection: connectionFrom(args),
    table: args.table,
    alter: args.alter,
    chunkTimeMs: args.chunkTime,
    chunkSize: args.chunkSize,
    cutoverLockTimeoutMs: Math.round(args.cutoverLockTimeout * 1000),
    cutoverRetries: args.cutoverRetries,
    dropOldTable: args.dropOldTable,
    postponeCutoverFlagFile: args.postponeCutoverFlagFile,
    progressIntervalSeconds: args.statusInterval,
    log,
  });
  try {
    const report = await job.prepare();
    if (!args.execute || !report.ok) {
      process.stdout.write((args.json ? JSON.stringify({ plan: report }, null, 2) : formatPlan(report, args.execute)) + '\n');
      if (!report.ok) throw new PreflightError(report.checks.filter((c) => !c.ok).map((c) => ({ check: c.check, message: c.message })));
      return 0;
    }
    if (!args.json) process.stdout.write(formatPlan(report, true) + '\n');
    const [schema, name] = report.table.split('.') as [string, string];
    const socketPath = args.controlSocket ?? defaultControlSocketPath(schema, name);
    const control = await startControlServer(socketPath, job, log);
    log.info({ controlSocket: socketPath }, `control socket: shadowshift ctl --control-socket ${socketPath} status`);
    const removeSignals = installSignalHandlers(job.controls, log);
    let result: AlterResult;
    try {
      result = await job.execute(report);
    } finally {
      removeSignals();
      await control.close();
    }
    process.stdout.write(
      args.json
        ? JSON.stringify({ result }) + '\n'
        : `done: ${result.table} altered in ${result.seconds}s; ${result.rowsCopied} rows copied, ${result.eventsApplied} changes applied` +
            (result.backupTable ? `; the old table is kept as ${result.backupTable}` : '') + '\n',
    );
    return 0;
  } finally {
    await job.close();
  }
}
