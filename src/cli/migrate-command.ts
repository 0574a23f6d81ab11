// `shadowshift migrate <up|contract|down|status|plan|new|baseline>`: parses and
// prints; the work is the runner's (src/migrations/runner.ts and the parts it wires).

import type { Argv } from 'yargs';
import { ShadowshiftError, UsageError } from '../util/errors.js';
import { createLogger } from '../util/logger.js';
import { connectionFrom, withConnectionOptions } from './connection-options.js';
import { installSignalHandlers } from './signals.js';
import { MigrationRunner } from '../migrations/runner.js';
import type { CommandReport } from '../migrations/commands.js';
import type { MigrationStatus } from '../migrations/history.js';
import type { PlannedMigration } from '../migrations/plan-files.js';
import { newMigrationFile } from '../migrations/templates.js';
import { DEFAULT_ONLINE_THRESHOLD, parseOnlineThreshold, type PlannedStatement } from '../migrations/planner.js';
import { checkNumber, engineSettingsFromArgs, withEngineOptions } from './engine-options.js';
import { Dashboard } from '../control/dashboard/dashboard.js';
import { startHttpControl } from '../control/http-server.js';
import type { Listening } from '../control/listen.js';
import { dashboardUrl, readToken } from './alter-command.js';

const ACTIONS = ['up', 'contract', 'down', 'status', 'plan', 'new', 'baseline'] as const;

export function migrateBuilder(y: Argv) {
  const own = withConnectionOptions(y)
    .positional('action', { choices: ACTIONS, describe: 'what to do', demandOption: true })
    .positional('arg', { type: 'string', describe: 'new: the migration name; baseline: the version' })
    .option('dir', { type: 'string', default: 'migrations', describe: 'directory of <version>_<name>.sql|.ts files' })
    .option('execute', { type: 'boolean', default: false, describe: 'up/contract/down: run; without it only print what would run' })
    .option('json', { type: 'boolean', default: false, describe: 'print the result as JSON (for CI)' })
    .option('lock-wait', { type: 'number', default: 30, describe: 'seconds to wait for another runner\'s migration lock before failing' })
    .option('out-of-order', { type: 'boolean', default: false, describe: 'allow a pending migration older than the latest applied one' })
    .option('to', { type: 'string', describe: 'up/contract: only versions <= V; down: roll back every expanded version > V' })
    .option('online-threshold', { type: 'string', describe: 'table size from which a rewriting ALTER goes through the online engine: rows (100000, 250k) or bytes (64MB) [default: 100000 rows or 32MiB]' })
    .option('ts', { type: 'boolean', default: false, describe: 'new: write a TypeScript migration instead of SQL' })
    .option('lock-timeout', { type: 'number', describe: 'milliseconds each DDL may wait for its lock before it is retried [default: PostgreSQL 1000, MySQL 2000]' })
    .option('ddl-retries', { type: 'number', default: 8, describe: 'retries of a DDL whose lock was not granted (exponential backoff)' })
    .option('backfill-batch', { type: 'number', default: 1000, describe: 'rows per backfill batch' })
    .group(['http', 'http-token-file', 'http-allow-remote'], 'Control and observability:')
    .option('http', { type: 'string', describe: 'up/contract/down --execute: serve the dashboard (GET /) and the control API of the engine job that runs on HOST:PORT (loopback only unless --http-allow-remote)' })
    .option('http-token-file', { type: 'string', describe: 'file holding the token mutating HTTP requests must send (or SHADOWSHIFT_HTTP_TOKEN)' })
    .option('http-allow-remote', { type: 'boolean', default: false, describe: 'allow --http on a non-loopback address' });
  return withEngineOptions(own, {
    pauses: 'backfills and engine copies',
    critical: 'stop the run (a backfill after its current batch, resumed by the next run; an engine job aborts)',
    group: 'Online engine (rewriting ALTERs of tables from --online-threshold up; the next `up` continues a killed job from its checkpoint):',
  });
}

type MigrateArgs = Awaited<ReturnType<typeof migrateBuilder>['argv']> & { action: (typeof ACTIONS)[number]; arg?: string };

function fmtStatement(s: PlannedStatement): string[] {
  const first = s.sql.split('\n')[0]!;
  const lines = [`    ${String(s.index + 1).padStart(2)}  line ${String(s.line).padEnd(4)} ${s.class.padEnd(8)}  ${first.length > 90 ? first.slice(0, 87) + '...' : first}`];
  lines.push(`          how:  ${s.how}`);
  lines.push(`          lock: ${s.lock}`);
  if (s.estimatedRows !== null) lines.push(`          rows: ~${s.estimatedRows}${s.estimatedSeconds !== null ? `, time: ~${s.estimatedSeconds}s` : ''}`);
  for (const n of s.notes) lines.push(`          note: ${n}`);
  for (const l of s.lint) lines.push(`          lint: ${l.severity} [${l.rule}] ${l.message}`);
  return lines;
}

function fmtMigration(m: PlannedMigration): string[] {
  const lines = [`  ${m.file}`];
  if (m.resume) lines.push(`    ${m.resume}`);
  for (const p of m.phases) {
    lines.push(`   ${p.phase}${p.note ? `: ${p.note}` : ''}`);
    for (const s of p.statements) lines.push(...fmtStatement(s));
    if (!p.note && p.statements.length === 0) lines.push('    (no statements)');
  }
  return lines;
}

function fmtReport(r: CommandReport): string {
  const lines: string[] = [];
  for (const w of r.warnings) lines.push(`warning: ${w}`);
  if (r.nothingToDo) {
    lines.push(r.command === 'down' ? 'Nothing to roll back.' : r.command === 'contract' ? 'Nothing to contract.' : 'Nothing pending: the database is up to date.');
    return lines.join('\n');
  }
  if (!r.execute) {
    lines.push(`migrate ${r.command} would run:`);
    for (const m of r.migrations) lines.push(...fmtMigration(m));
    for (const x of r.reverts ?? []) lines.push(`${x.file}: no down phase; its ALTERs are undone by reverting ${x.tables.join(', then ')} through the engine (every write since kept)`);
    lines.push('Nothing was changed. Run again with --execute to apply.');
    return lines.join('\n');
  }
  for (const m of r.ran) {
    lines.push(`${m.file}: ${m.phases.join(' + ')} done in ${m.seconds}s`);
    for (const s of m.statements) lines.push(`   ${s.phase} ${s.index + 1}${s.line ? ` (line ${s.line})` : ''}: ${s.class}, ${s.ran} (${s.seconds}s)`);
  }
  return lines.join('\n');
}

function fmtStatus(list: MigrationStatus[], warnings: string[]): string {
  const lines: string[] = [];
  for (const w of warnings) lines.push(`warning: ${w}`);
  if (list.length === 0) return [...lines, 'No migrations found and none applied.'].join('\n');
  lines.push(`${'version'.padEnd(16)} ${'state'.padEnd(14)} ${'checksum'.padEnd(9)} name`);
  for (const m of list) {
    lines.push(`${m.version.padEnd(16)} ${m.state.padEnd(14)} ${(m.checksum ?? '').padEnd(9)} ${m.file ?? m.name}${m.finishedAt ? `  (${m.finishedAt} by ${m.appliedBy}@${m.host})` : ''}`);
    if (m.checksum === 'changed') lines.push(`    changed after it was applied: applied ${m.appliedChecksum}, file ${m.fileChecksum}`);
    if (m.stoppedAt) {
      lines.push(`    stopped in ${m.stoppedAt.phase ?? 'expand'} at statement ${m.stoppedAt.statement}${m.stoppedAt.error ? `: ${m.stoppedAt.error}` : ''}`);
      if (m.stoppedAt.failedStatement) lines.push(`    statement: ${m.stoppedAt.failedStatement.split('\n')[0]}`);
    }
  }
  const count = (s: string) => list.filter((m) => m.state === s).length;
  lines.push(`${count('pending')} pending, ${count('expanded') + count('backfilled')} expanded (contract pending), ${count('contracted')} contracted, ${count('failed') + count('running')} failed/interrupted`);
  return lines.join('\n');
}

export async function migrateCommand(args: MigrateArgs): Promise<number> {
  try {
    return await run(args);
  } catch (err) {
    if (args.json && err instanceof ShadowshiftError) {
      const details = (err as { details?: unknown }).details;
      process.stdout.write(JSON.stringify({ error: { type: err.name, message: err.message, exitCode: err.exitCode, ...(details ? { details } : {}) } }) + '\n');
    }
    throw err;
  }
}

async function run(args: MigrateArgs): Promise<number> {
  checkNumber('lock-wait', args.lockWait, 'zero-or-more', 'seconds');
  checkNumber('lock-timeout', args.lockTimeout, 'zero-or-more', 'milliseconds');
  checkNumber('ddl-retries', args.ddlRetries, 'zero-or-more');
  checkNumber('backfill-batch', args.backfillBatch, 'whole', 'rows');
  const engine = engineSettingsFromArgs(args);
  const out = (text: string) => process.stdout.write(text + '\n');

  if (args.action === 'new') {
    if (!args.arg) throw new UsageError('name the migration: shadowshift migrate new add_order_status');
    const path = newMigrationFile(args.dir, args.arg, args.ts ? 'ts' : 'sql');
    out(args.json ? JSON.stringify({ created: path }) : `created ${path}`);
    return 0;
  }
  if (args.action === 'baseline' && !args.arg) throw new UsageError('give the version to baseline at: shadowshift migrate baseline 20250101120000');
  if (args.action !== 'baseline' && args.arg) throw new UsageError(`migrate ${args.action} takes no positional argument (got "${args.arg}")`);

  const log = createLogger();
  const running = (args.action === 'up' || args.action === 'contract' || args.action === 'down') && args.execute;
  // With --http: which migration and phase, and the engine job's view while one runs.
  const dashboard = running && args.http ? new Dashboard('migrate') : undefined;
  const threshold = args.onlineThreshold ? parseOnlineThreshold(args.onlineThreshold) : DEFAULT_ONLINE_THRESHOLD;
  const runner = await MigrationRunner.open({
    connection: connectionFrom(args),
    dir: args.dir,
    log,
    lockWaitMs: Math.round(args.lockWait * 1000),
    outOfOrder: args.outOfOrder,
    threshold,
    ddlLockTimeoutMs: args.lockTimeout,
    ddlRetries: args.ddlRetries,
    backfillBatch: args.backfillBatch,
    engine,
    attachEngineJob: (job) => {
      const uninstall = installSignalHandlers(job.controls, log);
      if (!dashboard) return uninstall;
      const recorder = dashboard.attach(job, () => {
        const d = job.describe();
        const s = job.status();
        return { table: s.table, alter: d.alter, dialect: d.dialect ?? runner.dialect, server: d.server ?? '', jobId: s.jobId };
      });
      const unobserve = job.observe({ stateChanged: (state) => recorder.noteState(state), chunkCopied: (_rows, seconds) => recorder.chunkCopied(seconds), cutoverAttempt: (result, blocked) => recorder.cutoverAttempt(result, blocked) });
      return () => {
        unobserve();
        dashboard.detach(job);
        uninstall();
      };
    },
    onProgress: (line) => {
      dashboard?.migrateProgress(args.action, line);
      process.stderr.write(line + '\n');
    },
  });
  let http: Listening | undefined;
  if (dashboard && args.http) {
    dashboard.migrateProgress(args.action, `migrate ${args.action} starting`);
    try {
      http = await startHttpControl(args.http, { token: readToken(args), allowRemote: args.httpAllowRemote }, () => dashboard.current, log, dashboard);
    } catch (err) {
      dashboard.close();
      await runner.close();
      throw err;
    }
    log.info({ http: args.http, port: http.port, dashboard: dashboardUrl(args.http, http.port) }, `HTTP control endpoint listening; dashboard: ${dashboardUrl(args.http, http.port)}`);
  }
  // First SIGINT/SIGTERM: stop at the next statement or backfill batch and record where;
  // a second one exits at once (the statement in flight may still complete on the server).
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    if (++signals > 1) {
      process.stderr.write(`shadowshift: ${signal} again: exiting now; \`migrate status\` shows where it stopped\n`);
      process.exit(130);
    }
    process.stderr.write(`shadowshift: ${signal}: stopping after the current statement or batch (send it again to exit at once)\n`);
    runner.requestStop(`interrupted by ${signal}`);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    switch (args.action) {
      case 'status': {
        const s = await runner.status();
        out(args.json ? JSON.stringify({ dialect: runner.dialect, migrations: s.migrations, warnings: s.warnings }) : fmtStatus(s.migrations, s.warnings));
        return 0;
      }
      case 'plan': {
        const p = await runner.plan({ to: args.to });
        if (args.json) {
          out(JSON.stringify({ dialect: runner.dialect, threshold: { rows: Number.isFinite(threshold.rows) ? threshold.rows : null, bytes: threshold.bytes }, ...p }));
        } else {
          const lines: string[] = p.warnings.map((w) => `warning: ${w}`);
          lines.push(p.up.length ? 'migrate up would run:' : 'migrate up: nothing pending.');
          for (const m of p.up) lines.push(...fmtMigration(m));
          lines.push(p.contract.length ? 'migrate contract would run:' : 'migrate contract: nothing to contract.');
          for (const m of p.contract) lines.push(...fmtMigration(m));
          out(lines.join('\n'));
        }
        return 0;
      }
      case 'baseline': {
        const r = await runner.baseline(args.arg!);
        out(args.json ? JSON.stringify({ baseline: args.arg, ...r }) : `baseline recorded at ${args.arg}: migrations up to it count as applied`);
        return 0;
      }
      case 'up':
      case 'contract':
      case 'down': {
        const r = await runner[args.action]({ to: args.to, execute: args.execute });
        out(args.json ? JSON.stringify({ dialect: runner.dialect, ...r }) : fmtReport(r));
        return 0;
      }
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    dashboard?.migrateFinished();
    await http?.close();
    dashboard?.close();
    await runner.close();
  }
  return 0;
}
