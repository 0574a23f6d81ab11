// `shadowshift alter`: one online ALTER of one table. Parses and prints only;
// the work is the engine's.

import type { Argv } from 'yargs';
import { AlterJob, type AlterPlanReport, type AlterResult, type JobObserver } from '../engine/job.js';
import { startControlServer, defaultControlSocketPath } from '../control/control-server.js';
import { PreflightError, UsageError } from '../util/errors.js';
import { createLogger, type Logger } from '../util/logger.js';
import { connectionFrom, withConnectionOptions } from './connection-options.js';
import { installSignalHandlers } from './signals.js';
import { readFileSync } from 'node:fs';
import { HookRunner } from '../control/hooks.js';
import { JobMetrics, serveMetrics } from '../control/metrics.js';
import { startHttpControl } from '../control/http-server.js';
import { Dashboard } from '../control/dashboard/dashboard.js';
import { startStatusReporter } from '../control/status-reporter.js';
import { checkNumber, engineSettingsFromArgs, withEngineOptions, withSingleJobOptions } from './engine-options.js';
import { alterJobOptions } from '../engine/settings.js';
import { formatSeconds } from '../engine/revert-point.js';

export function alterBuilder(y: Argv) {
  const own = withConnectionOptions(y)
    .option('table', { type: 'string', demandOption: true, describe: 'table to alter (db.table or table)' })
    .option('alter', { type: 'string', demandOption: true, describe: 'ALTER TABLE clauses, e.g. "ADD COLUMN c INT, ADD INDEX (c)"' })
    .option('execute', { type: 'boolean', default: false, describe: 'run the migration; without it only the plan is printed' });
  return withJobCommandOptions(own);
}

/** What `alter` and `revert` share: the engine's flags, and the job's controls and observability. */
export function withJobCommandOptions<T>(y: Argv<T>) {
  return withSingleJobOptions(withEngineOptions(y, { pauses: 'the copy', critical: 'abort (the original is untouched)' }))
    .option('control-socket', { type: 'string', describe: 'Unix socket for `shadowshift ctl` (default: in the OS temp dir, printed at start)' })
    .option('status-interval', { type: 'number', default: 5, describe: 'seconds between JSON status lines when not on a terminal' })
    .option('json', { type: 'boolean', default: false, describe: 'print the plan and the result as JSON' })
    .group(['http', 'http-token-file', 'http-allow-remote', 'metrics', 'hooks-dir'], 'Control and observability:')
    .option('http', { type: 'string', describe: 'serve the control API over HTTP on HOST:PORT (loopback only unless --http-allow-remote)' })
    .option('http-token-file', { type: 'string', describe: 'file holding the token mutating HTTP requests must send (or SHADOWSHIFT_HTTP_TOKEN)' })
    .option('http-allow-remote', { type: 'boolean', default: false, describe: 'allow --http on a non-loopback address' })
    .option('metrics', { type: 'string', describe: 'serve Prometheus metrics on HOST:PORT/metrics' })
    .option('hooks-dir', { type: 'string', describe: 'directory of executables named for lifecycle events (on-start, on-before-cutover, ...)' });
}

export type AlterArgs = Awaited<ReturnType<typeof alterBuilder>['argv']>;

export function formatPlan(report: AlterPlanReport, execute: boolean): string {
  const r = report.revert;
  const lines = [
    `shadowshift ${r ? 'revert ' : ''}plan for ${report.table} (${report.server})`,
    ...(r
      ? [
          `  undoes:           ${r.alter}`,
          `  swapped:          ${r.swappedAt} (${formatSeconds(r.ageSeconds)} ago; window ${formatSeconds(r.windowSeconds)}); the old table is ${r.oldTable}`,
          ...(r.swappedBefore ? ['  an interrupted run of this revert had swapped the tables already: only its finish is left'] : []),
        ]
      : []),
    `  estimated rows:   ${report.estimatedRows}`,
    `  key:              ${report.key ? report.key.map((k) => (k.source === k.target ? k.source : `${k.source} -> ${k.target}`)).join(', ') : '(none shared)'}`,
    `  ${r ? 'carried back:  ' : 'columns copied:'}   ${report.columns.map((c) => (c.source === c.target ? c.source : `${c.source} -> ${c.target}`)).join(', ') || '(none)'}`,
  ];
  if (r) {
    if (report.columnsNotCopied.length) lines.push(`  dropped:          ${report.columnsNotCopied.join(', ')} (columns the ALTER added: their data is not taken back)`);
    if (report.columnsNew.length) lines.push(`  restored:         ${report.columnsNew.join(', ')} (columns the ALTER dropped: rows written since the swap get their default)`);
  } else {
    if (report.columnsNotCopied.length) lines.push(`  not copied:       ${report.columnsNotCopied.join(', ')}`);
    if (report.columnsNew.length) lines.push(`  new (defaults):   ${report.columnsNew.join(', ')}`);
  }
  lines.push(`  checksum:         ${report.checksum}`);
  if (!r && report.deferredIndexes !== 'not built for this dialect') lines.push(`  indexes:          ${indexesLine(report)}`);
  if (report.revertible) lines.push(`  revertible:       yes: \`shadowshift revert\` can undo it for ${formatSeconds(report.revertible.windowSeconds)} after the swap (the old table is kept; keep the binlog as long)`);
  if (report.newUniqueIndexes.length) lines.push(`  new unique keys:  ${report.newUniqueIndexes.join(', ')} (a duplicate fails the job, nothing is dropped)`);
  for (const w of report.weakenedUniqueIndexes) lines.push(`    ${w.name}: the original has it, but the ALTER changes ${w.change}`);
  lines.push('  preflight checks:');
  for (const c of report.checks) lines.push(`    [${!c.ok ? 'FAIL' : c.warning ? 'warn' : 'pass'}] ${c.check}${c.ok && !c.warning ? '' : `: ${c.message}`}`);
  if (!execute) lines.push(report.ok ? 'Nothing was changed. Run again with --execute to apply.' : 'Nothing was changed. Fix the failed checks above first.');
  return lines.join('\n');
}

function indexesLine(report: AlterPlanReport): string {
  const concern = report.deferredIndexesConcern;
  if (report.deferredIndexes === 'on') return concern ? `built after the copy (--defer-indexes), although ${concern}: its replication stalls while it applies the build` : 'built after the copy';
  return concern ? `built before the copy, as ${concern}: a replica applies a build after it as one statement, stalling for its length (--defer-indexes: after it anyway, faster)` : 'built before the copy';
}

function formatChecksum(result: AlterResult): string {
  if (!result.checksum.ran) return 'checksum not run';
  const compared = `checksum compared ${result.checksum.chunksCompared} chunk(s) in ${result.checksum.runs} run(s)`;
  return result.repairedChunks
    ? `${compared} and REPAIRED ${result.repairedChunks}: the copy or the stream missed a change, report it with the log`
    : `${compared}, none repaired`;
}

/** The HTTP token from --http-token-file or SHADOWSHIFT_HTTP_TOKEN. */
export function readToken(args: { httpTokenFile?: string }): string | undefined {
  if (args.httpTokenFile) {
    try {
      return readFileSync(args.httpTokenFile, 'utf8').trim();
    } catch (err) {
      throw new UsageError(`cannot read --http-token-file ${args.httpTokenFile}: ${(err as Error).message}`);
    }
  }
  return process.env.SHADOWSHIFT_HTTP_TOKEN || undefined;
}

/** The page's address for a listen address (its real port when asked for 0). */
export function dashboardUrl(address: string, port: number): string {
  const host = address.replace(/:\d+$/, '');
  const shown = host === '0.0.0.0' ? '127.0.0.1' : host === '[::]' ? '[::1]' : host;
  return `http://${shown}:${port}/`;
}

export async function alterCommand(args: AlterArgs): Promise<number> {
  return printedRun(args, {}, (result) =>
    `done: ${result.table} altered in ${result.seconds}s; ${result.rowsCopied} rows copied, ${result.eventsApplied} changes applied; ${formatChecksum(result)}` +
    (result.backupTable ? `; the old table is kept as ${result.backupTable}` : ''),
  );
}

/**
 * `alter` and `revert` as a user sees them: the plan (printed first with --execute), or
 * a refusal (exit 3); then the result, as `done` says it or as JSON.
 */
export async function printedRun(args: AlterArgs, options: Pick<RunAlterOptions, 'revert'>, done: (result: AlterResult) => string): Promise<number> {
  const { report, result } = await runAlter(args, {
    ...options,
    planned: (plan) => {
      if (args.execute && plan.ok && !args.json) process.stdout.write(formatPlan(plan, true) + '\n');
    },
  });
  if (!result) {
    process.stdout.write((args.json ? JSON.stringify({ plan: report }, null, 2) : formatPlan(report, args.execute)) + '\n');
    if (!report.ok) throw new PreflightError(report.checks.filter((c) => !c.ok).map((c) => ({ check: c.check, message: c.message })));
    return 0;
  }
  process.stdout.write((args.json ? JSON.stringify({ result }) : done(result)) + '\n');
  return 0;
}

export interface RunAlterOptions {
  /** Undo the table's last revertible ALTER (`shadowshift revert`); args.alter is not used. */
  revert?: boolean;
  /** Called with the plan once preflight has run, before anything changes. */
  planned?: (report: AlterPlanReport) => void;
  /** Told about the job's states, chunks, cut-over attempts and errors, besides the metrics. */
  observer?: JobObserver;
  log?: Logger;
}

/**
 * Everything `alter` does except printing: plan, and with --execute the job with its
 * control socket, signal handlers, progress and hooks. `result` is null when only the
 * plan was made (no --execute, or a failed check). `shadowshift demo` runs its ALTER
 * through here too, so the demo shows the command's real behaviour.
 */
export async function runAlter(args: AlterArgs, options: RunAlterOptions = {}): Promise<{ report: AlterPlanReport; result: AlterResult | null }> {
  const settings = engineSettingsFromArgs(args);
  checkNumber('status-interval', args.statusInterval, 'positive');
  const log = options.log ?? createLogger();
  if (args.hooksDir) {
    try {
      HookRunner.validate(args.hooksDir);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
  }
  let metrics: JobMetrics | undefined;
  // With --http, the dashboard (GET /) records the job's life from its start.
  const dashboard = args.execute && args.http ? new Dashboard(options.revert ? 'revert' : 'alter') : undefined;
  const job: AlterJob = new AlterJob(alterJobOptions(settings, {
    connection: connectionFrom(args),
    table: args.table,
    alter: args.alter,
    revert: options.revert,
    log,
    hooks: args.hooksDir ? new HookRunner(args.hooksDir, log) : undefined,
    observer: {
      stateChanged: (state) => {
        dashboard?.jobRecorder?.noteState(state);
        options.observer?.stateChanged?.(state);
      },
      chunkCopied: (rows, seconds) => {
        metrics?.chunkSeconds.observe(seconds);
        dashboard?.jobRecorder?.chunkCopied(seconds);
        options.observer?.chunkCopied?.(rows, seconds);
      },
      cutoverAttempt: (result, blocked) => {
        metrics?.cutoverAttempts.inc({ result });
        metrics?.cutoverBlockedSeconds.observe(blocked);
        dashboard?.jobRecorder?.cutoverAttempt(result, blocked);
        options.observer?.cutoverAttempt?.(result, blocked);
      },
      error: (where) => {
        metrics?.errors.inc({ where });
        options.observer?.error?.(where);
      },
    },
  }));
  try {
    const report = await job.prepare();
    options.planned?.(report);
    if (!args.execute || !report.ok) return { report, result: null };
    const [schema, name] = report.table.split('.') as [string, string];
    const socketPath = args.controlSocket ?? defaultControlSocketPath(schema, name);
    const closers: Array<() => Promise<void> | void> = [];
    let result: AlterResult;
    try {
      const control = await startControlServer(socketPath, job, log);
      closers.push(() => control.close());
      log.info({ controlSocket: socketPath }, `control socket: shadowshift ctl --control-socket ${socketPath} status`);
      if (args.http && dashboard) {
        dashboard.attach(job, { table: report.table, alter: report.revert?.alter ?? args.alter, dialect: report.dialect, server: report.server, jobId: report.jobId });
        closers.push(() => dashboard.detach(job));
        const http = await startHttpControl(args.http, { token: readToken(args), allowRemote: args.httpAllowRemote }, job, log, dashboard);
        closers.push(() => http.close());
        log.info({ http: args.http, port: http.port, dashboard: dashboardUrl(args.http, http.port) }, `HTTP control endpoint listening; dashboard: ${dashboardUrl(args.http, http.port)}`);
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
    return { report, result };
  } finally {
    dashboard?.close();
    await job.close();
  }
}
