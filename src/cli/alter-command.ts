// `shadowshift alter`: one online ALTER of one table. Parses and prints only;
// the work is the engine's.

import type { Argv } from 'yargs';
import { AlterJob, type AlterPlanReport, type AlterResult } from '../engine/job.js';
import { startControlServer, defaultControlSocketPath } from '../control/control-server.js';
import { PreflightError, UsageError } from '../util/errors.js';
import { createLogger } from '../util/logger.js';
import { connectionFrom, withConnectionOptions } from './connection-options.js';
import { installSignalHandlers } from './signals.js';
import { readFileSync } from 'node:fs';
import { HookRunner } from '../control/hooks.js';
import { JobMetrics, serveMetrics } from '../control/metrics.js';
import { startHttpControl } from '../control/http-server.js';
import { startStatusReporter } from '../control/status-reporter.js';
import { THROTTLE_GROUP, throttleFromArgs, withThrottleOptions } from './throttle-options.js';

export function alterBuilder(y: Argv) {
  return withThrottleOptions(withConnectionOptions(y), { pauses: 'the copy', critical: 'abort (the original is untouched)' })
    .option('table', { type: 'string', demandOption: true, describe: 'table to alter (db.table or table)' })
    .option('alter', { type: 'string', demandOption: true, describe: 'ALTER TABLE clauses, e.g. "ADD COLUMN c INT, ADD INDEX (c)"' })
    .option('execute', { type: 'boolean', default: false, describe: 'run the migration; without it only the plan is printed' })
    .option('chunk-time', { type: 'number', default: 500, describe: 'target milliseconds per copy chunk (the chunk size adapts)' })
    .option('chunk-size', { type: 'number', describe: 'fixed rows per chunk (turns adaptation off)' })
    .option('cutover-lock-timeout', { type: 'number', default: 3, describe: 'seconds the cut-over may block writes per attempt' })
    .option('cutover-retries', { type: 'number', default: 10, describe: 'cut-over attempts before giving up' })
    .option('kill-blockers-after', { type: 'number', describe: 'seconds; end the sessions that block the cut-over\'s lock after this long, logging each (off by default)' })
    .option('drop-old-table', { type: 'boolean', default: false, describe: 'drop the original after cut-over instead of keeping it as a backup' })
    .option('postpone-cutover-flag-file', { type: 'string', describe: 'while this file exists, wait before cut-over (changes keep being applied)' })
    .option('control-socket', { type: 'string', describe: 'Unix socket for `shadowshift ctl` (default: in the OS temp dir, printed at start)' })
    .option('status-interval', { type: 'number', default: 5, describe: 'seconds between JSON status lines when not on a terminal' })
    .option('json', { type: 'boolean', default: false, describe: 'print the plan and the result as JSON' })
    .option('checksum', { type: 'boolean', default: true, describe: 'compare original and shadow chunk by chunk before the cut-over (--no-checksum to skip)' })
    .option('checksum-interval', { type: 'number', default: 600, describe: 'while postponed, checksum again every this many seconds' })
    .option('defer-indexes', { type: 'boolean', default: true, describe: "PostgreSQL: build the new table's secondary indexes after the copy, which is faster (--no-defer-indexes to build them first)" })
    .option('resumable', { type: 'boolean', default: false, describe: 'write checkpoints, and on failure or SIGTERM keep the state so --resume can continue' })
    .option('resume', { type: 'boolean', default: false, describe: 'continue the job recorded in the table\'s checkpoint (same --table and --alter)' })
    .option('checkpoint-interval', { type: 'number', default: 5, describe: 'seconds between checkpoints of a resumable job' })
    .option('checkpoint-max-age', { type: 'number', default: 604800, describe: 'refuse to resume from a checkpoint older than this many seconds' })
    .group(['max-slot-lag'], THROTTLE_GROUP)
    .option('max-slot-lag', { type: 'number', describe: 'PostgreSQL: bytes of WAL the job\'s slot may hold back before the copy pauses' })
    .group(['http', 'http-token-file', 'http-allow-remote', 'metrics', 'hooks-dir'], 'Control and observability:')
    .option('http', { type: 'string', describe: 'serve the control API over HTTP on HOST:PORT (loopback only unless --http-allow-remote)' })
    .option('http-token-file', { type: 'string', describe: 'file holding the token mutating HTTP requests must send (or SHADOWSHIFT_HTTP_TOKEN)' })
    .option('http-allow-remote', { type: 'boolean', default: false, describe: 'allow --http on a non-loopback address' })
    .option('metrics', { type: 'string', describe: 'serve Prometheus metrics on HOST:PORT/metrics' })
    .option('hooks-dir', { type: 'string', describe: 'directory of executables named for lifecycle events (on-start, on-before-cutover, ...)' });
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
  positive('kill-blockers-after', args.killBlockersAfter);
  if (args.killBlockersAfter !== undefined && args.killBlockersAfter >= args.cutoverLockTimeout) {
    throw new UsageError(`--kill-blockers-after (${args.killBlockersAfter}s) must be shorter than --cutover-lock-timeout (${args.cutoverLockTimeout}s), or it never fires`);
  }
  positive('status-interval', args.statusInterval);
  positive('checkpoint-interval', args.checkpointInterval);
  positive('checksum-interval', args.checksumInterval);
  positive('checkpoint-max-age', args.checkpointMaxAge);
  positive('max-slot-lag', args.maxSlotLag);
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
  lines.push(`  checksum:         ${report.checksum}`);
  if (report.deferredIndexes !== 'not built for this dialect') lines.push(`  indexes:          ${report.deferredIndexes === 'on' ? 'built after the copy' : 'built before the copy'}`);
  if (report.newUniqueIndexes.length) lines.push(`  new unique keys:  ${report.newUniqueIndexes.join(', ')} (a duplicate fails the job, nothing is dropped)`);
  lines.push('  preflight checks:');
  for (const c of report.checks) lines.push(`    [${c.ok ? 'pass' : 'FAIL'}] ${c.check}${c.ok ? '' : `: ${c.message}`}`);
  if (!execute) lines.push(report.ok ? 'Nothing was changed. Run again with --execute to apply.' : 'Nothing was changed. Fix the failed checks above first.');
  return lines.join('\n');
}

function readToken(args: AlterArgs): string | undefined {
  if (args.httpTokenFile) {
    try {
      return readFileSync(args.httpTokenFile, 'utf8').trim();
    } catch (err) {
      throw new UsageError(`cannot read --http-token-file ${args.httpTokenFile}: ${(err as Error).message}`);
    }
  }
  return process.env.SHADOWSHIFT_HTTP_TOKEN || undefined;
}

export async function alterCommand(args: AlterArgs): Promise<number> {
  validate(args);
  const throttle = throttleFromArgs(args);
  const log = createLogger();
  if (args.hooksDir) {
    try {
      HookRunner.validate(args.hooksDir);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
  }
  let metrics: JobMetrics | undefined;
  const job: AlterJob = new AlterJob({
    connection: connectionFrom(args),
    table: args.table,
    alter: args.alter,
    chunkTimeMs: args.chunkTime,
    chunkSize: args.chunkSize,
    cutoverLockTimeoutMs: Math.round(args.cutoverLockTimeout * 1000),
    cutoverRetries: args.cutoverRetries,
    killBlockersAfterMs: args.killBlockersAfter === undefined ? undefined : Math.round(args.killBlockersAfter * 1000),
    dropOldTable: args.dropOldTable,
    postponeCutoverFlagFile: args.postponeCutoverFlagFile,
    log,
    maxLagSeconds: throttle.live.maxLagSeconds,
    maxLoad: throttle.live.maxLoad,
    throttle: throttle.config,
    maxSlotLagBytes: args.maxSlotLag,
    hooks: args.hooksDir ? new HookRunner(args.hooksDir, log) : undefined,
    checksum: args.checksum,
    checksumIntervalSeconds: args.checksumInterval,
    deferIndexes: args.deferIndexes,
    resumable: args.resumable,
    resume: args.resume,
    checkpointIntervalSeconds: args.checkpointInterval,
    checkpointMaxAgeSeconds: args.checkpointMaxAge,
    observer: {
      chunkCopied: (_rows, seconds) => metrics?.chunkSeconds.observe(seconds),
      cutoverAttempt: (result, blocked) => {
        metrics?.cutoverAttempts.inc({ result });
        metrics?.cutoverBlockedSeconds.observe(blocked);
      },
      error: (where) => metrics?.errors.inc({ where }),
    },
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
    const closers: Array<() => Promise<void> | void> = [];
    let result: AlterResult;
    try {
      const control = await startControlServer(socketPath, job, log);
      closers.push(() => control.close());
      log.info({ controlSocket: socketPath }, `control socket: shadowshift ctl --control-socket ${socketPath} status`);
      if (args.http) {
        const http = await startHttpControl(args.http, { token: readToken(args), allowRemote: args.httpAllowRemote }, job, log);
        closers.push(() => http.close());
        log.info({ http: args.http, port: http.port }, 'HTTP control endpoint listening');
      }
      if (args.metrics) {
        metrics = new JobMetrics(job);
        const served = await serveMetrics(args.metrics, metrics).catch((err: Error) => {
          throw new UsageError(err.message);
        });
        closers.push(() => served.close());
        log.info({ metrics: args.metrics, port: served.port }, 'metrics served at /metrics');
      }
      closers.push(installSignalHandlers(job.controls, log));
      closers.push(startStatusReporter(job, { tty: Boolean(process.stderr.isTTY), intervalSeconds: args.statusInterval, log }));
      if (args.hooksDir) {
        const statusHook = setInterval(() => void job.reportStatus(), args.statusInterval * 1000);
        statusHook.unref();
        closers.push(() => clearInterval(statusHook));
      }
      result = await job.execute(report);
    } finally {
      for (const close of closers.reverse()) await close();
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
