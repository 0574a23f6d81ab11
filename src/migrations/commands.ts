// The commands over the files and the history:
//
//   up        expand + backfill of every pending migration
//   contract  contract of migrations whose backfill is done
//   down      `down` of expanded, not yet contracted migrations (the latest; --to V: all above V)
//   status    files and history side by side
//   plan      every statement classified before it runs
//   baseline  mark an existing schema as applied up to a version
//
// up, contract and down differ only in what they select: each then plans its
// selection and, with --execute, runs it under the migration lock (one runner at
// a time; it waits --lock-wait).

import { hostname } from 'node:os';
import { UsageError } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import { definedPhases } from './define-migration.js';
import { LockWaitError, MigrationRefusedError } from './errors.js';
import type { MigrationExecutor, MigrationRun } from './executor.js';
import { belowBaseline, migrationStatuses, nowIso, verifyHistory, type MigrationStatus } from './history.js';
import { compareVersions, discoverMigrations, type MigrationFile, type Phase } from './migration-files.js';
import { emptyRecord, type HistoryRecord, type MigrationStore } from './migration-store.js';
import type { FilePlanner, PlannedMigration } from './plan-files.js';
import { loadDefinition } from './ts-migrations.js';
import type { OnlineRevert } from './online-alter.js';
import { describeRevert } from '../engine/revert-point.js';
import { parseStatement } from './sql-analysis.js';
import { splitStatements } from './statement-splitter.js';

export interface CommandReport {
  command: 'up' | 'contract' | 'down' | 'baseline';
  execute: boolean;
  /** Migrations that ran (execute) or would run (plan only). */
  migrations: PlannedMigration[];
  ran: MigrationRun[];
  nothingToDo: boolean;
  warnings: string[];
  /** down: the migrations rolled back by reverting their engine ALTERs, and the tables, in order. */
  reverts?: Array<{ file: string; tables: string[] }>;
}

export interface CommandSettings {
  store: MigrationStore;
  log: Logger;
  dir: string;
  /** How long to wait for another runner's lock. */
  lockWaitMs: number;
  outOfOrder: boolean;
  planner: FilePlanner;
  executor: MigrationExecutor;
  onlineRevert: OnlineRevert;
  progress: (line: string) => void;
}

interface State {
  files: MigrationFile[];
  history: HistoryRecord[];
}

/** A migration a command runs: the phases it runs, its history record (null: never run), and where it resumes. */
interface Selected {
  file: MigrationFile;
  phases: Phase[];
  rec: HistoryRecord | null;
  resume: string | null;
  /** down of a migration without a down phase: the engine's revert of these tables (revertTargets). */
  revertTables?: string[];
}

/** One after another: planning queries the store's single connection, which must not run two queries at once. */
async function inTurn<T, R>(items: T[], f: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (const item of items) out.push(await f(item));
  return out;
}

function checkTo(to: string | undefined): void {
  if (to !== undefined && !/^\d+$/.test(to)) throw new UsageError(`--to "${to}" must be a version (digits), e.g. --to 20250101120000`);
}

function resumeNote(rec: HistoryRecord | null): string | null {
  if (!rec || (rec.status !== 'failed' && rec.status !== 'running')) return null;
  return `a previous run ${rec.status === 'failed' ? 'failed' : 'stopped'} in ${rec.currentPhase ?? 'expand'} at statement ${rec.statementsDone + 1}${rec.error ? `: ${rec.error}` : ''}; resuming there`;
}

function pendingForUp({ files, history }: State, to?: string): Selected[] {
  const byVersion = new Map(history.map((h) => [h.version, h]));
  const out: Selected[] = [];
  for (const f of files) {
    if (to !== undefined && compareVersions(f.version, to) > 0) continue;
    if (belowBaseline(f.version, history)) continue;
    const rec = byVersion.get(f.version) ?? null;
    if (!rec || rec.reached === null || rec.reached === 'rolled back') out.push({ file: f, phases: ['expand', 'backfill'], rec, resume: resumeNote(rec) });
    else if (rec.reached === 'expanded') out.push({ file: f, phases: ['backfill'], rec, resume: resumeNote(rec) });
  }
  return out;
}

function contractable({ files, history }: State, to?: string): Selected[] {
  const byVersion = new Map(history.map((h) => [h.version, h]));
  const out: Selected[] = [];
  for (const f of files) {
    if (to !== undefined && compareVersions(f.version, to) > 0) continue;
    const rec = byVersion.get(f.version);
    if (rec && rec.reached === 'backfilled') out.push({ file: f, phases: ['contract'], rec, resume: null });
  }
  return out;
}

export class MigrationCommands {
  constructor(private readonly s: CommandSettings) {}

  private async state(): Promise<State> {
    const files = discoverMigrations(this.s.dir);
    return { files, history: await this.s.store.readHistory() };
  }

  private planAll(selected: Selected[]): Promise<PlannedMigration[]> {
    return inTurn(selected, (x) => this.s.planner.file(x.file, x.phases, x.resume));
  }

  async status(): Promise<{ migrations: MigrationStatus[]; warnings: string[] }> {
    const { files, history } = await this.state();
    return migrationStatuses(files, history, this.s.dir);
  }

  /** `migrate plan`: what up and contract would run now. */
  async plan(options: { to?: string } = {}): Promise<{ up: PlannedMigration[]; contract: PlannedMigration[]; warnings: string[] }> {
    const state = await this.state();
    const warnings = verifyHistory(state.files, state.history, { dir: this.s.dir, pendingMustBeNewest: !this.s.outOfOrder });
    const up = await this.planAll(pendingForUp(state, options.to));
    const contract = await this.planAll(contractable(state, options.to));
    return { up, contract, warnings };
  }

  up(options: { to?: string; execute: boolean }): Promise<CommandReport> {
    return this.command('up', options, async (state) => pendingForUp(state, options.to));
  }

  contract(options: { to?: string; execute: boolean }): Promise<CommandReport> {
    return this.command('contract', options, async (state, warnings) => {
      const stuck = state.history.filter((h) => h.reached === 'expanded' && (options.to === undefined || compareVersions(h.version, options.to) <= 0));
      for (const h of stuck) warnings.push(`${h.version}_${h.name} is expanded but its backfill has not finished; run \`migrate up\` first — it is not contracted`);
      return contractable(state, options.to);
    });
  }

  down(options: { to?: string; execute: boolean }): Promise<CommandReport> {
    return this.command('down', options, (state) => this.downTargets(state, options.to));
  }

  /** Select, plan, and with execute run under the lock: what up, contract and down have in common. */
  private async command(
    command: 'up' | 'contract' | 'down',
    options: { to?: string; execute: boolean },
    select: (state: State, warnings: string[]) => Promise<Selected[]>,
  ): Promise<CommandReport> {
    checkTo(options.to);
    const run = async (): Promise<CommandReport> => {
      const state = await this.state();
      const warnings = verifyHistory(state.files, state.history, { dir: this.s.dir, pendingMustBeNewest: command === 'up' && !this.s.outOfOrder });
      const selected = await select(state, warnings);
      const migrations = await this.planAll(selected);
      const reverts = selected.filter((x) => x.revertTables).map((x) => ({ file: x.file.file, tables: x.revertTables! }));
      const report: CommandReport = { command, execute: options.execute, migrations, ran: [], nothingToDo: selected.length === 0, warnings, ...(reverts.length ? { reverts } : {}) };
      if (!options.execute) return report;
      for (const x of selected) {
        const rec = x.rec ? { ...x.rec } : emptyRecord(x.file.version, x.file.name, x.file.checksum, x.file.kind, this.s.store.appliedBy, hostname());
        report.ran.push(await this.s.executor.runMigration(x.file, rec, x.phases, x.revertTables));
      }
      return report;
    };
    return options.execute ? this.withLock(run) : run();
  }

  private async downTargets({ files, history }: State, to: string | undefined): Promise<Selected[]> {
    const byFile = new Map(files.map((f) => [f.version, f]));
    const expanded = history
      .filter((h) => h.reached === 'expanded' || h.reached === 'backfilled' || (h.reached === null && h.status !== 'ok'))
      .sort((a, b) => compareVersions(b.version, a.version));
    let targets: HistoryRecord[];
    if (to !== undefined) targets = expanded.filter((h) => compareVersions(h.version, to) > 0);
    else targets = expanded.slice(0, 1);
    const floor = to ?? (targets.length ? targets[targets.length - 1]!.version : null);
    if (floor !== null && targets.length > 0) {
      const contractedAbove = history.filter((h) => h.reached === 'contracted' && compareVersions(h.version, floor) > 0);
      if (contractedAbove.length) {
        throw new MigrationRefusedError(
          `cannot roll back to below ${contractedAbove.map((h) => h.version).join(', ')}: ${contractedAbove.length === 1 ? 'it is' : 'they are'} contracted (contract cannot be undone). Pass --to ${contractedAbove.map((h) => h.version).sort(compareVersions).pop()} or higher.`,
        );
      }
    }
    const out: Selected[] = [];
    for (const h of targets) {
      if (h.reached === null) {
        throw new MigrationRefusedError(
          `${h.version}_${h.name} failed during expand (statement ${h.statementsDone + 1}); its down phase assumes a complete expand. Fix it and run \`migrate up\`, or undo its first ${h.statementsDone} statement(s) by hand.`,
        );
      }
      const f = byFile.get(h.version);
      if (!f) throw new MigrationRefusedError(`${h.version}_${h.name} has no file in ${this.s.dir}; restore it to roll it back`);
      const has = f.kind === 'sql' ? Boolean(f.phases.down) : definedPhases(await loadDefinition(f)).has('down');
      if (has) {
        out.push({ file: f, phases: ['down'], rec: h, resume: null });
        continue;
      }
      const revert = await this.revertTargets(f);
      if ('why' in revert) {
        throw new MigrationRefusedError(
          `${f.file} has no down phase, and it cannot be rolled back by reverting its ALTERs: ${revert.why}. ` +
            'Add "-- shadowshift:down" with statements that undo its expand, or roll back by hand',
        );
      }
      out.push({ file: f, phases: ['down'], rec: h, resume: null, revertTables: revert.tables });
    }
    return out;
  }

  /**
   * A down without a down phase: every statement of the expand must be an ALTER TABLE the
   * engine ran with --revertible (`migrate up --revertible`, a table above
   * --online-threshold), whose revert point is still the table's: the tables to revert,
   * last first; else why not.
   */
  private async revertTargets(f: MigrationFile): Promise<{ tables: string[] } | { why: string }> {
    if (f.kind !== 'sql') return { why: 'a TypeScript migration has no statements to revert' };
    const expand = f.phases.expand;
    const statements = expand ? splitStatements(expand.sql, this.s.store.dialect, expand.firstLine - 1) : [];
    if (statements.length === 0) return { why: 'its expand has no statement' };
    const tables: string[] = [];
    for (const [i, st] of statements.entries()) {
      const parsed = parseStatement(st.text, this.s.store.dialect);
      const where = `statement ${i + 1} (line ${st.line})`;
      if (parsed.kind !== 'alter-table' || !parsed.table) return { why: `${where} is not an ALTER TABLE` };
      if (tables.includes(parsed.table)) return { why: `${where} alters ${parsed.table} a second time; a revert undoes only the last ALTER of a table` };
      const undoes = await this.s.onlineRevert.pointOf(parsed.table);
      if (undoes === null) return { why: `${where}: ${parsed.table} has no revert point (the ALTER ran without the engine, or without --revertible, or its revert window was closed)` };
      // Reverted already (a down that failed or was killed on a later table, or a revert by hand): skipped when run.
      const reverted = undoes.trim() === describeRevert({ alter: parsed.alterBody.trim() });
      if (!reverted && undoes.trim() !== parsed.alterBody.trim()) return { why: `${where}: the revert point of ${parsed.table} undoes another ALTER (${undoes})` };
      tables.push(parsed.table);
    }
    return { tables: tables.reverse() };
  }

  async baseline(version: string): Promise<CommandReport> {
    if (!/^\d+$/.test(version)) throw new UsageError(`baseline version "${version}" must be digits, like the migration file versions`);
    return this.withLock(async () => {
      const history = await this.s.store.readHistory();
      const applied = history.filter((h) => h.reached !== null && h.reached !== 'rolled back');
      if (applied.length > 0) {
        throw new MigrationRefusedError(
          `the history already has applied migrations (${applied.map((h) => h.version).join(', ')}); baseline is only for a database that has none. Use \`migrate status\` to see them.`,
        );
      }
      const files = discoverMigrations(this.s.dir);
      const f = files.find((x) => compareVersions(x.version, version) === 0);
      const rec = emptyRecord(version, f?.name ?? 'baseline', f?.checksum ?? '0'.repeat(64), 'baseline', this.s.store.appliedBy, hostname());
      const now = nowIso();
      Object.assign(rec, { reached: 'baseline', status: 'ok', startedAt: now, finishedAt: now, durationMs: 0 });
      await this.s.store.saveHistory(rec);
      const covered = files.filter((x) => compareVersions(x.version, version) <= 0);
      this.s.progress(`baseline at ${version}: ${covered.length} file(s) at or below it count as applied`);
      return { command: 'baseline', execute: true, migrations: [], ran: [], nothingToDo: false, warnings: [] };
    });
  }

  private async withLock<T>(fn: () => Promise<T>): Promise<T> {
    const { store, lockWaitMs } = this.s;
    this.s.progress(`waiting up to ${Math.round(lockWaitMs / 1000)}s for the migration lock`);
    const got = await store.acquireLock(lockWaitMs);
    if (!got) {
      throw new LockWaitError(
        `another shadowshift migrate run holds the migration lock on ${store.schema} and did not release it within --lock-wait ${Math.round(lockWaitMs / 1000)}s. ` +
          'Wait for it to finish (see `shadowshift migrate status`), or raise --lock-wait.',
      );
    }
    try {
      await store.ensureHistoryTable();
      return await fn();
    } finally {
      await store.releaseLock().catch((e: Error) => this.s.log.warn({ err: e.message }, 'could not release the migration lock'));
    }
  }
}
