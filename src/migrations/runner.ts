// The migration runner: which migrations are pending, in what order, and
// running their phases safely.
//
//   up        expand + backfill of every pending migration
//   contract  contract of migrations whose backfill is done
//   down      `down` of expanded, not yet contracted migrations (the latest; --to V: all above V)
//   status    files and history side by side
//   plan      every statement classified before it runs
//   baseline  mark an existing schema as applied up to a version
//
// Safety: one runner at a time (advisory lock, waits --lock-wait); an applied
// file that changed is refused naming the file and both checksums; a pending
// version older than an applied one is refused unless --out-of-order; a failed
// statement is recorded, and the next run resumes at it (statements before it
// are not run again, and must not have changed).

import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { DialectName } from '../dialects/dialect.js';
import type { ConnectionConfig } from '../util/connection-url.js';
import { AbortedError, ShadowshiftError, UsageError } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import { lintSql } from '../lint/lint-runner.js';
import type { LintFinding } from '../lint/rule.js';
import { runBackfill, type BackfillOptions, type BackfillResult, type BackfillTarget, type KeyValue } from './backfill.js';
import { BackfillThrottles } from './backfill-throttle.js';
import type { LiveThrottleSettings, ThrottleConfig } from '../control/throttle-signals.js';
import { definedPhases, runDefinitionPhase, validateDefinition, type BackfillSpec, type MigrationDefinition, type MigrationDb } from './define-migration.js';
import { LockWaitError, MigrationFailedError, MigrationRefusedError } from './errors.js';
import { checksumOf, compareVersions, discoverMigrations, parseFileName, timestampVersion, type MigrationFile, type Phase } from './migration-files.js';
import { emptyRecord, openMigrationStore, type HistoryRecord, type MigrationStore, type ReachedPhase, type TableStats } from './migration-store.js';
import { DEFAULT_ENGINE_SETTINGS, engineAlter, type EngineSettings, type OnlineAlter } from './online-alter.js';
import { DEFAULT_ONLINE_THRESHOLD, planPhase, type OnlineThreshold, type PlannedStatement, type Step } from './planner.js';
import { splitStatements } from './statement-splitter.js';

export interface RunnerOptions {
  connection: ConnectionConfig;
  dir: string;
  log: Logger;
  /** How long to wait for another runner's lock. */
  lockWaitMs?: number;
  outOfOrder?: boolean;
  threshold?: OnlineThreshold;
  /** Lock wait per DDL attempt (PostgreSQL lock_timeout; MySQL lock_wait_timeout in whole seconds). */
  ddlLockTimeoutMs?: number;
  ddlRetries?: number;
  backfillBatch?: number;
  /**
   * Throttle signals for backfills and for the engine jobs the run starts, as `alter`
   * takes them: flag file, query, critical load (a backfill stops after its batch,
   * recorded; an engine job aborts), replica lag with its heartbeat.
   */
  throttle?: Partial<ThrottleConfig>;
  /** --max-lag and --max-load; kept as `throttleSettings`, so a change takes effect while the run goes on. */
  throttleSettings?: Partial<Pick<LiveThrottleSettings, 'maxLagSeconds' | 'maxLoad'>>;
  engine?: Partial<EngineSettings>;
  /** Progress lines for humans (the CLI prints them to stderr). */
  onProgress?: (line: string) => void;
  /** Tests: replace the engine. */
  onlineAlter?: OnlineAlter;
}

export type MigrationState = 'pending' | 'failed' | 'running' | 'expanded' | 'backfilled' | 'contracted' | 'rolled back' | 'baseline' | 'below baseline';

export interface MigrationStatus {
  version: string;
  name: string;
  file: string | null;
  kind: 'sql' | 'ts' | 'baseline';
  state: MigrationState;
  /** ok, changed (file edited after it was applied), missing (applied, file gone), or null (not applied). */
  checksum: 'ok' | 'changed' | 'missing' | null;
  fileChecksum: string | null;
  appliedChecksum: string | null;
  phases: Phase[];
  appliedBy: string | null;
  host: string | null;
  startedAt: string | null;
  finishedAt: string | null;
  durationMs: number | null;
  /** Where a failed/interrupted run stopped. */
  stoppedAt: { phase: Phase | null; statement: number; error: string | null; failedStatement: string | null } | null;
}

export interface StatementRun {
  phase: Phase;
  index: number;
  line: number;
  class: string;
  how: string;
  /** What actually ran (e.g. ALGORITHM=INSTANT accepted, engine, batches). */
  ran: string;
  seconds: number;
}

export interface MigrationRun {
  version: string;
  name: string;
  file: string;
  phases: Phase[];
  statements: StatementRun[];
  seconds: number;
}

export interface PlannedMigration {
  version: string;
  name: string;
  file: string;
  kind: 'sql' | 'ts';
  phases: Array<{ phase: Phase; statements: PlannedStatement[]; note?: string }>;
  /** Where a previous run stopped, when resuming. */
  resume: string | null;
}

export interface CommandReport {
  command: 'up' | 'contract' | 'down' | 'baseline';
  execute: boolean;
  /** Migrations that ran (execute) or would run (plan only). */
  migrations: PlannedMigration[];
  ran: MigrationRun[];
  nothingToDo: boolean;
  warnings: string[];
}

function sha(parts: string[]): string {
  return createHash('sha256').update(parts.join('\u0000')).digest('hex');
}

/** SHA-256 of one phase as written (SQL), or of the whole file (TS: phases are code). */
function phaseChecksum(f: MigrationFile, phase: Phase): string {
  if (f.kind === 'ts') return f.checksum;
  return checksumOf(f.phases[phase]?.sql ?? '');
}

function parsePhaseChecksums(text: string | null): Partial<Record<Phase, string>> {
  if (!text) return {};
  try {
    return JSON.parse(text) as Partial<Record<Phase, string>>;
  } catch {
    return {};
  }
}

function short(sql: string): string {
  // The table is named by the statement already: keep the part that says what this step does.
  const one = sql.replace(/\s+/g, ' ').trim().replace(/^ALTER TABLE (?:"[^"]*"|`[^`]*`|[\w$]+)(?:\.(?:"[^"]*"|`[^`]*`|[\w$]+))? /i, '');
  return one.length > 90 ? one.slice(0, 40) + ' ... ' + one.slice(-45) : one;
}

function nowIso(): string {
  return new Date().toISOString();
}

const APPLIED: ReachedPhase[] = ['expanded', 'backfilled', 'contracted', 'baseline'];

export class MigrationRunner {
  private readonly log: Logger;
  private readonly threshold: OnlineThreshold;
  private readonly lockWaitMs: number;
  private readonly ddlLockTimeoutMs: number;
  private readonly ddlRetries: number;
  private readonly backfillBatch: number;
  private readonly onlineAlter: OnlineAlter;
  private readonly throttles: BackfillThrottles;
  /** The live thresholds backfills (and, for --max-load, engine jobs) read at every poll. */
  readonly throttleSettings: LiveThrottleSettings;
  private tableCache = new Map<string, TableStats | null>();
  private stopReason: string | null = null;

  private constructor(
    private readonly options: RunnerOptions,
    readonly store: MigrationStore,
  ) {
    this.log = options.log;
    this.threshold = options.threshold ?? DEFAULT_ONLINE_THRESHOLD;
    this.lockWaitMs = options.lockWaitMs ?? 30_000;
    this.ddlLockTimeoutMs = options.ddlLockTimeoutMs ?? (store.dialect === 'postgres' ? 1000 : 2000);
    this.ddlRetries = options.ddlRetries ?? 8;
    this.backfillBatch = options.backfillBatch ?? 1000;
    this.throttleSettings = { maxLagSeconds: options.throttleSettings?.maxLagSeconds ?? 1.5, maxLoad: options.throttleSettings?.maxLoad ?? new Map() };
    const throttle = options.throttle ?? {};
    this.onlineAlter =
      options.onlineAlter ??
      engineAlter(
        options.connection,
        { ...DEFAULT_ENGINE_SETTINGS, ...options.engine, throttle, maxLagSeconds: this.throttleSettings.maxLagSeconds, maxLoad: this.throttleSettings.maxLoad },
        options.log,
      );
    this.throttles = new BackfillThrottles({ connection: options.connection, schema: store.schema, config: throttle, live: this.throttleSettings, log: options.log });
  }

  static async open(options: RunnerOptions): Promise<MigrationRunner> {
    let store: MigrationStore;
    try {
      store = await openMigrationStore(options.connection);
    } catch (err) {
      const e = err as Error & { code?: string };
      throw new ShadowshiftError(
        `cannot connect to ${options.connection.redacted}: ${e.message}${e.code ? ` (${e.code})` : ''}. Check the URL's host, port, user, password and database, and its TLS settings`,
        { cause: err },
      );
    }
    return new MigrationRunner(options, store);
  }

  /**
   * Asks the run to stop at the next safe point: before the next statement or
   * backfill batch (a running statement finishes first; an engine job is aborted
   * by its own signal handling). The stop is recorded; the next run resumes there.
   */
  requestStop(reason: string): void {
    this.stopReason ??= reason;
  }

  get dialect(): DialectName {
    return this.store.dialect;
  }

  async close(): Promise<void> {
    await this.throttles.close();
    await this.store.close();
  }

  private progress(line: string): void {
    this.options.onProgress?.(line);
    this.log.debug(line);
  }

  // ---------------------------------------------------------------- state

  private files(): MigrationFile[] {
    return discoverMigrations(this.options.dir);
  }

  async status(): Promise<{ migrations: MigrationStatus[]; warnings: string[] }> {
    const files = this.files();
    const history = await this.store.readHistory();
    return this.combine(files, history);
  }

  private combine(files: MigrationFile[], history: HistoryRecord[]): { migrations: MigrationStatus[]; warnings: string[] } {
    const byVersion = new Map(history.map((h) => [h.version, h]));
    const baseline = history.filter((h) => h.reached === 'baseline').map((h) => h.version).sort(compareVersions).pop() ?? null;
    const out: MigrationStatus[] = [];
    const warnings: string[] = [];
    const seen = new Set<string>();
    for (const f of files) {
      seen.add(f.version);
      const rec = byVersion.get(f.version) ?? null;
      out.push(this.statusOf(f, rec, baseline));
    }
    for (const h of history) {
      if (seen.has(h.version)) continue;
      const s = this.statusOf(null, h, baseline);
      out.push(s);
      if (h.reached !== 'baseline' && h.reached !== 'rolled back' && h.reached !== null) {
        warnings.push(`${h.version}_${h.name} is recorded as ${h.reached} but its file is missing from ${this.options.dir}; restore it (contract and down need it)`);
      }
    }
    out.sort((a, b) => compareVersions(a.version, b.version));
    return { migrations: out, warnings };
  }

  private statusOf(f: MigrationFile | null, rec: HistoryRecord | null, baseline: string | null): MigrationStatus {
    let state: MigrationState;
    if (!rec) state = baseline !== null && f && compareVersions(f.version, baseline) <= 0 ? 'below baseline' : 'pending';
    else if (rec.status === 'failed') state = 'failed';
    else if (rec.status === 'running') state = 'running';
    else state = (rec.reached ?? 'pending') as MigrationState;
    const applied = rec !== null && rec.reached !== null && rec.reached !== 'rolled back' && rec.kind !== 'baseline';
    let checksum: MigrationStatus['checksum'] = null;
    if (applied) checksum = !f ? 'missing' : f.checksum === rec.checksum ? 'ok' : 'changed';
    return {
      version: f?.version ?? rec!.version,
      name: f?.name ?? rec!.name,
      file: f?.file ?? null,
      kind: f?.kind ?? rec!.kind,
      state,
      checksum,
      fileChecksum: f?.checksum ?? null,
      appliedChecksum: rec?.checksum ?? null,
      phases: f ? this.phasesOf(f) : [],
      appliedBy: rec?.appliedBy ?? null,
      host: rec?.host ?? null,
      startedAt: rec?.startedAt ?? null,
      finishedAt: rec?.finishedAt ?? null,
      durationMs: rec?.durationMs ?? null,
      stoppedAt:
        rec && (rec.status === 'failed' || rec.status === 'running')
          ? { phase: rec.currentPhase, statement: rec.statementsDone + 1, error: rec.error, failedStatement: rec.failedStatement }
          : null,
    };
  }

  private phasesOf(f: MigrationFile): Phase[] {
    if (f.kind === 'sql') return (['expand', 'backfill', 'contract', 'down'] as Phase[]).filter((p) => f.phases[p]);
    return [];
  }

  /** Refusals that apply to every run: edited applied files, out-of-order pending versions. */
  private verify(files: MigrationFile[], history: HistoryRecord[], forUp: boolean): string[] {
    const warnings: string[] = [];
    const byVersion = new Map(history.map((h) => [h.version, h]));
    for (const f of files) {
      const rec = byVersion.get(f.version);
      if (!rec || rec.kind === 'baseline' || rec.reached === null || rec.reached === 'rolled back') continue;
      if (rec.status !== 'ok' && rec.checksum !== f.checksum) {
        // A failed migration may be fixed, but only in the phases that have not completed.
        const done = parsePhaseChecksums(rec.phaseChecksums);
        for (const [phase, sum] of Object.entries(done)) {
          const now = phaseChecksum(f, phase as Phase);
          if (now !== sum) {
            throw new MigrationRefusedError(
              `${f.file}: its ${phase} phase was changed after it completed (failed later, in ${rec.currentPhase ?? '?'}): applied checksum ${sum}, file checksum ${now}. ` +
                `Only the phase that failed may be edited; restore the ${phase} phase as it ran.`,
            );
          }
        }
        continue;
      }
      if (rec.checksum !== f.checksum) {
        throw new MigrationRefusedError(
          `${f.file} was changed after it was applied (${rec.reached}): applied checksum ${rec.checksum}, file checksum ${f.checksum}. ` +
            'Restore the file as it was applied (e.g. git checkout it) and put the change in a new migration.',
        );
      }
    }
    const { warnings: w } = this.combine(files, history);
    warnings.push(...w);
    if (forUp) {
      const applied = history.filter((h) => h.reached !== null && APPLIED.includes(h.reached)).map((h) => h.version).sort(compareVersions);
      const latest = applied[applied.length - 1];
      if (latest !== undefined && !this.options.outOfOrder) {
        const older = files.filter((f) => {
          const rec = byVersion.get(f.version);
          const pending = !rec || rec.reached === 'rolled back' || (rec.reached === null && rec.status !== 'ok');
          return pending && compareVersions(f.version, latest) < 0 && !this.belowBaseline(f.version, history);
        });
        if (older.length > 0) {
          throw new MigrationRefusedError(
            `pending ${older.map((f) => f.file).join(', ')} ${older.length === 1 ? 'is' : 'are'} older than the applied version ${latest}. ` +
              'Give it a version above the latest applied one (rename the file), or run with --out-of-order if applying it late is safe.',
          );
        }
      }
    }
    return warnings;
  }

  private belowBaseline(version: string, history: HistoryRecord[]): boolean {
    return history.some((h) => h.reached === 'baseline' && compareVersions(version, h.version) <= 0);
  }

  // ---------------------------------------------------------------- locking

  private async withLock<T>(fn: () => Promise<T>): Promise<T> {
    this.progress(`waiting up to ${Math.round(this.lockWaitMs / 1000)}s for the migration lock`);
    const got = await this.store.acquireLock(this.lockWaitMs);
    if (!got) {
      throw new LockWaitError(
        `another shadowshift migrate run holds the migration lock on ${this.store.schema} and did not release it within --lock-wait ${Math.round(this.lockWaitMs / 1000)}s. ` +
          'Wait for it to finish (see `shadowshift migrate status`), or raise --lock-wait.',
      );
    }
    try {
      await this.store.ensureHistoryTable();
      return await fn();
    } finally {
      await this.store.releaseLock().catch((e: Error) => this.log.warn({ err: e.message }, 'could not release the migration lock'));
    }
  }

  // ---------------------------------------------------------------- planning

  private async stats(table: string): Promise<TableStats | null> {
    if (!this.tableCache.has(table)) this.tableCache.set(table, await this.store.tableStats(table));
    return this.tableCache.get(table)!;
  }

  private lintOf(f: MigrationFile): LintFinding[] {
    if (f.kind !== 'sql') return [];
    try {
      return lintSql(f.content, f.file, {
        dialect: this.dialect,
        bigTableRows: Number.isFinite(this.threshold.rows) ? this.threshold.rows : 100_000,
        tableRows: (t) => this.tableCache.get(t)?.rows ?? null,
      }).findings.filter((l) => l.rule !== 'missing-lock-timeout'); // the runner sets lock timeouts itself
    } catch (err) {
      return [{ rule: 'lint', severity: 'warning', file: f.file, line: 1, phase: 'expand', message: (err as Error).message, reason: '', safeAlternative: '', statement: '' }];
    }
  }

  async planFile(f: MigrationFile, phases: Phase[]): Promise<PlannedMigration> {
    const out: PlannedMigration = { version: f.version, name: f.name, file: f.file, kind: f.kind, phases: [], resume: null };
    if (f.kind === 'ts') {
      const def = await this.loadDefinition(f);
      const have = definedPhases(def);
      for (const p of phases) {
        if (!have.has(p)) continue;
        const ops = (def.operations ?? []).map((o) => o.description);
        out.phases.push({ phase: p, statements: [], note: `TS migration: code runs here${ops.length ? ` (operations: ${ops.join('; ')})` : ''}; its DDL is planned when it runs` });
      }
      return out;
    }
    // Plan first (fills the table cache), then lint with the sizes known.
    for (const p of phases) {
      const text = f.phases[p];
      if (!text) continue;
      const statements = splitStatements(text.sql, this.dialect, text.firstLine - 1);
      out.phases.push({ phase: p, statements: await planPhase(statements, p, { dialect: this.dialect, stats: (t) => this.stats(t), threshold: this.threshold }) });
    }
    const lint = this.lintOf(f);
    for (const ph of out.phases) for (const s of ph.statements) s.lint = lint.filter((l) => l.line === s.line);
    return out;
  }

  /** `migrate plan`: what up and contract would run now. */
  async plan(options: { to?: string } = {}): Promise<{ up: PlannedMigration[]; contract: PlannedMigration[]; warnings: string[] }> {
    const files = this.files();
    const history = await this.store.readHistory();
    const warnings = this.verify(files, history, true);
    const up = await Promise.all(this.pendingForUp(files, history, options.to).map((x) => this.planWithResume(x.file, x.phases, x.rec)));
    const contract = await Promise.all(this.contractable(files, history, options.to).map((x) => this.planFile(x.file, ['contract'])));
    return { up, contract, warnings };
  }

  private async planWithResume(f: MigrationFile, phases: Phase[], rec: HistoryRecord | null): Promise<PlannedMigration> {
    const p = await this.planFile(f, phases);
    if (rec && (rec.status === 'failed' || rec.status === 'running')) {
      p.resume = `a previous run ${rec.status === 'failed' ? 'failed' : 'stopped'} in ${rec.currentPhase ?? 'expand'} at statement ${rec.statementsDone + 1}${rec.error ? `: ${rec.error}` : ''}; resuming there`;
    }
    return p;
  }

  private pendingForUp(files: MigrationFile[], history: HistoryRecord[], to?: string): Array<{ file: MigrationFile; phases: Phase[]; rec: HistoryRecord | null }> {
    const byVersion = new Map(history.map((h) => [h.version, h]));
    const out: Array<{ file: MigrationFile; phases: Phase[]; rec: HistoryRecord | null }> = [];
    for (const f of files) {
      if (to !== undefined && compareVersions(f.version, to) > 0) continue;
      if (this.belowBaseline(f.version, history)) continue;
      const rec = byVersion.get(f.version) ?? null;
      if (!rec || rec.reached === null || rec.reached === 'rolled back') out.push({ file: f, phases: ['expand', 'backfill'], rec });
      else if (rec.reached === 'expanded') out.push({ file: f, phases: ['backfill'], rec });
    }
    return out;
  }

  private contractable(files: MigrationFile[], history: HistoryRecord[], to?: string): Array<{ file: MigrationFile; rec: HistoryRecord }> {
    const byVersion = new Map(history.map((h) => [h.version, h]));
    const out: Array<{ file: MigrationFile; rec: HistoryRecord }> = [];
    for (const f of files) {
      if (to !== undefined && compareVersions(f.version, to) > 0) continue;
      const rec = byVersion.get(f.version);
      if (rec && rec.reached === 'backfilled') out.push({ file: f, rec });
    }
    return out;
  }

  // ---------------------------------------------------------------- commands

  async up(options: { to?: string; execute: boolean }): Promise<CommandReport> {
    this.checkTo(options.to);
    const run = async (): Promise<CommandReport> => {
      const files = this.files();
      const history = await this.store.readHistory();
      const warnings = this.verify(files, history, true);
      const pending = this.pendingForUp(files, history, options.to);
      const migrations = await Promise.all(pending.map((p) => this.planWithResume(p.file, p.phases, p.rec)));
      const report: CommandReport = { command: 'up', execute: options.execute, migrations, ran: [], nothingToDo: pending.length === 0, warnings };
      if (!options.execute) return report;
      for (const p of pending) {
        const rec = p.rec ? { ...p.rec } : emptyRecord(p.file.version, p.file.name, p.file.checksum, p.file.kind, this.store.appliedBy, hostname());
        report.ran.push(await this.runMigration(p.file, rec, p.phases));
      }
      return report;
    };
    return options.execute ? this.withLock(run) : run();
  }

  async contract(options: { to?: string; execute: boolean }): Promise<CommandReport> {
    this.checkTo(options.to);
    const run = async (): Promise<CommandReport> => {
      const files = this.files();
      const history = await this.store.readHistory();
      const warnings = this.verify(files, history, false);
      const stuck = history.filter((h) => h.reached === 'expanded' && (options.to === undefined || compareVersions(h.version, options.to) <= 0));
      for (const h of stuck) warnings.push(`${h.version}_${h.name} is expanded but its backfill has not finished; run \`migrate up\` first — it is not contracted`);
      const list = this.contractable(files, history, options.to);
      const migrations = await Promise.all(list.map((x) => this.planFile(x.file, ['contract'])));
      const report: CommandReport = { command: 'contract', execute: options.execute, migrations, ran: [], nothingToDo: list.length === 0, warnings };
      if (!options.execute) return report;
      for (const x of list) report.ran.push(await this.runMigration(x.file, { ...x.rec }, ['contract']));
      return report;
    };
    return options.execute ? this.withLock(run) : run();
  }

  async down(options: { to?: string; execute: boolean }): Promise<CommandReport> {
    this.checkTo(options.to);
    const run = async (): Promise<CommandReport> => {
      const files = this.files();
      const history = await this.store.readHistory();
      const warnings = this.verify(files, history, false);
      const byFile = new Map(files.map((f) => [f.version, f]));
      const expanded = history
        .filter((h) => h.reached === 'expanded' || h.reached === 'backfilled' || (h.reached === null && h.status !== 'ok'))
        .sort((a, b) => compareVersions(b.version, a.version));
      let targets: HistoryRecord[];
      if (options.to !== undefined) targets = expanded.filter((h) => compareVersions(h.version, options.to!) > 0);
      else targets = expanded.slice(0, 1);
      const floor = options.to ?? (targets.length ? targets[targets.length - 1]!.version : null);
      if (floor !== null && targets.length > 0) {
        const contractedAbove = history.filter((h) => h.reached === 'contracted' && compareVersions(h.version, floor) > 0);
        if (contractedAbove.length) {
          throw new MigrationRefusedError(
            `cannot roll back to below ${contractedAbove.map((h) => h.version).join(', ')}: ${contractedAbove.length === 1 ? 'it is' : 'they are'} contracted (contract cannot be undone). Pass --to ${contractedAbove.map((h) => h.version).sort(compareVersions).pop()} or higher.`,
          );
        }
      }
      for (const h of targets) {
        if (h.reached === null) {
          throw new MigrationRefusedError(
            `${h.version}_${h.name} failed during expand (statement ${h.statementsDone + 1}); its down phase assumes a complete expand. Fix it and run \`migrate up\`, or undo its first ${h.statementsDone} statement(s) by hand.`,
          );
        }
        const f = byFile.get(h.version);
        if (!f) throw new MigrationRefusedError(`${h.version}_${h.name} has no file in ${this.options.dir}; restore it to roll it back`);
        const has = f.kind === 'sql' ? Boolean(f.phases.down) : definedPhases(await this.loadDefinition(f)).has('down');
        if (!has) throw new MigrationRefusedError(`${f.file} has no down phase; add "-- shadowshift:down" with statements that undo its expand, or roll back by hand`);
      }
      const migrations = await Promise.all(targets.map((h) => this.planFile(byFile.get(h.version)!, ['down'])));
      const report: CommandReport = { command: 'down', execute: options.execute, migrations, ran: [], nothingToDo: targets.length === 0, warnings };
      if (!options.execute) return report;
      for (const h of targets) report.ran.push(await this.runMigration(byFile.get(h.version)!, { ...h }, ['down']));
      return report;
    };
    return options.execute ? this.withLock(run) : run();
  }

  async baseline(version: string): Promise<CommandReport> {
    if (!/^\d+$/.test(version)) throw new UsageError(`baseline version "${version}" must be digits, like the migration file versions`);
    return this.withLock(async () => {
      const history = await this.store.readHistory();
      const applied = history.filter((h) => h.reached !== null && h.reached !== 'rolled back');
      if (applied.length > 0) {
        throw new MigrationRefusedError(
          `the history already has applied migrations (${applied.map((h) => h.version).join(', ')}); baseline is only for a database that has none. Use \`migrate status\` to see them.`,
        );
      }
      const files = this.files();
      const f = files.find((x) => compareVersions(x.version, version) === 0);
      const rec = emptyRecord(version, f?.name ?? 'baseline', f?.checksum ?? '0'.repeat(64), 'baseline', this.store.appliedBy, hostname());
      const now = nowIso();
      Object.assign(rec, { reached: 'baseline', status: 'ok', startedAt: now, finishedAt: now, durationMs: 0 });
      await this.store.saveHistory(rec);
      const covered = files.filter((x) => compareVersions(x.version, version) <= 0);
      this.progress(`baseline at ${version}: ${covered.length} file(s) at or below it count as applied`);
      return { command: 'baseline', execute: true, migrations: [], ran: [], nothingToDo: false, warnings: [] };
    });
  }

  private checkTo(to: string | undefined): void {
    if (to !== undefined && !/^\d+$/.test(to)) throw new UsageError(`--to "${to}" must be a version (digits), e.g. --to 20250101120000`);
  }

  // ---------------------------------------------------------------- running

  private async runMigration(f: MigrationFile, rec: HistoryRecord, phases: Phase[]): Promise<MigrationRun> {
    const started = Date.now();
    const run: MigrationRun = { version: f.version, name: f.name, file: f.file, phases: [], statements: [], seconds: 0 };
    const wasRolledBack = rec.reached === 'rolled back';
    if (wasRolledBack) Object.assign(rec, { reached: null, statementsDone: 0, doneChecksum: null, backfillCursor: null, currentPhase: null, phaseChecksums: null });
    // The file may have been fixed after a failure: its checksum is recorded anew.
    rec.checksum = f.checksum;
    rec.name = f.name;
    rec.kind = f.kind;
    rec.appliedBy = this.store.appliedBy;
    rec.host = hostname();
    rec.startedAt = nowIso();
    rec.finishedAt = null;
    const def = f.kind === 'ts' ? await this.loadDefinition(f) : null;
    for (const phase of phases) {
      if (this.stopReason) throw new AbortedError(`${this.stopReason}: stopped before ${f.file} ${phase}; run the command again to continue`);
      const resuming = rec.currentPhase === phase && (rec.status === 'failed' || rec.status === 'running');
      if (!resuming) Object.assign(rec, { statementsDone: 0, doneChecksum: null, backfillCursor: null });
      rec.currentPhase = phase;
      rec.status = 'running';
      rec.error = null;
      rec.failedStatement = null;
      await this.store.saveHistory(rec);
      if (def || f.phases[phase]) this.progress(`${f.file}: ${phase}${resuming ? ` (resuming at statement ${rec.statementsDone + 1})` : ''}`);
      if (def) await this.runTsPhase(f, def, phase, rec, run);
      else await this.runSqlPhase(f, phase, rec, run);
      run.phases.push(phase);
      rec.phaseChecksums = JSON.stringify({ ...parsePhaseChecksums(rec.phaseChecksums), [phase]: phaseChecksum(f, phase) });
      rec.reached = phase === 'expand' ? 'expanded' : phase === 'backfill' ? 'backfilled' : phase === 'contract' ? 'contracted' : 'rolled back';
      Object.assign(rec, { status: 'ok', currentPhase: null, statementsDone: 0, doneChecksum: null, backfillCursor: null });
      rec.finishedAt = nowIso();
      rec.durationMs = Date.now() - started;
      await this.store.saveHistory(rec);
    }
    run.seconds = Math.round((Date.now() - started) / 100) / 10;
    this.progress(`${f.file}: ${rec.reached} in ${run.seconds}s`);
    return run;
  }

  private async fail(f: MigrationFile, rec: HistoryRecord, phase: Phase, index: number, line: number | null, statement: string, err: unknown): Promise<never> {
    const e = err as Error & { code?: string; errno?: number };
    const code = e.code ?? (e.errno !== undefined ? String(e.errno) : undefined);
    const message = `${e.message}${code ? ` (${code})` : ''}`;
    Object.assign(rec, { status: 'failed', error: message.slice(0, 60_000), failedStatement: statement.slice(0, 1_000_000), finishedAt: nowIso() });
    rec.durationMs = rec.startedAt ? Date.now() - Date.parse(rec.startedAt) : null;
    await this.store.saveHistory(rec).catch((x: Error) => this.log.error({ err: x.message }, 'could not record the failure in the history table'));
    const where = f.kind === 'sql' ? `statement ${index + 1}${line ? ` (line ${line})` : ''}` : 'its code';
    throw new MigrationFailedError(
      `${f.file}: ${phase} failed at ${where}: ${message}\n  statement: ${statement.split('\n').join('\n             ')}\n` +
        `The failure is recorded in ${this.store.historyTable}. Fix the cause (or the statement) and run the command again: ` +
        (f.kind === 'sql' ? 'it resumes at this statement; the ones before it are not run again.' : 'the phase runs again from its start (TS phases must be idempotent).'),
      { version: f.version, name: f.name, phase, statementIndex: index, statement, error: message },
      { cause: err, exitCode: err instanceof ShadowshiftError && [3, 4, 130].includes(err.exitCode) ? err.exitCode : undefined },
    );
  }

  private async runSqlPhase(f: MigrationFile, phase: Phase, rec: HistoryRecord, run: MigrationRun): Promise<void> {
    const text = f.phases[phase];
    if (!text) return;
    const statements = splitStatements(text.sql, this.dialect, text.firstLine - 1);
    const done = rec.statementsDone;
    if (done > 0) {
      const prefix = sha(statements.slice(0, done).map((s) => s.text));
      if (done > statements.length || prefix !== rec.doneChecksum) {
        throw new MigrationRefusedError(
          `${f.file}: the ${done} ${phase} statement(s) that already ran were changed since the failed run (recorded ${rec.doneChecksum}, file ${prefix}). ` +
            'Only the failed statement and those after it may be edited; restore the others.',
        );
      }
    }
    this.tableCache.clear();
    for (let i = done; i < statements.length; i++) {
      const st = statements[i]!;
      if (this.stopReason) await this.fail(f, rec, phase, i, st.line, st.text, new AbortedError(`${this.stopReason}: stopped before this statement`));
      // Plan just before running: earlier statements may have created the table.
      this.tableCache.clear();
      const [planned] = await planPhase([st], phase, { dialect: this.dialect, stats: (t) => this.stats(t), threshold: this.threshold });
      const started = Date.now();
      let ran: string;
      try {
        ran = await this.runSteps(planned!, rec, i);
      } catch (err) {
        await this.fail(f, rec, phase, i, st.line, st.text, err);
        return;
      }
      run.statements.push({ phase, index: i, line: st.line, class: planned!.class, how: planned!.how, ran, seconds: Math.round((Date.now() - started) / 100) / 10 });
      this.progress(`  ${phase} ${i + 1}/${statements.length} line ${st.line}: ${planned!.class}, ${ran}`);
      rec.statementsDone = i + 1;
      rec.doneChecksum = sha(statements.slice(0, i + 1).map((s) => s.text));
      rec.backfillCursor = null;
      await this.store.saveHistory(rec);
    }
  }

  private ddlOptions() {
    return {
      lockTimeoutMs: this.ddlLockTimeoutMs,
      retries: this.ddlRetries,
      onRetry: (attempt: number, error: string) => this.progress(`    lock not granted (${error}); retry ${attempt}/${this.ddlRetries}`),
    };
  }

  private async runSteps(planned: PlannedStatement, rec: HistoryRecord, statementIndex: number): Promise<string> {
    const said: string[] = [];
    const many = planned.steps.length > 1;
    for (const step of planned.steps) {
      const r = await this.runStep(step, rec, statementIndex);
      said.push(many && 'sql' in step ? `${short(step.sql)} (${r})` : r);
    }
    return said.join('; ');
  }

  private async runStep(step: Step, rec: HistoryRecord, statementIndex: number): Promise<string> {
    switch (step.kind) {
      case 'exec':
        await this.store.exec(step.sql);
        return 'ran as written';
      case 'ddl':
        await this.store.runDdl(step.sql, this.ddlOptions());
        return 'ran under lock timeout';
      case 'concurrent-index':
        try {
          await this.store.exec(step.sql);
        } catch (err) {
          if (step.index && this.store.dropInvalidIndex) {
            const dropped = await this.store.dropInvalidIndex(step.index).catch(() => false);
            if (dropped) (err as Error).message += ` (the INVALID index ${step.index} it left was dropped)`;
          }
          throw err;
        }
        return 'CREATE INDEX CONCURRENTLY';
      case 'engine': {
        this.progress(`    through the online engine: ${step.table} ${step.alter}`);
        const r = await this.onlineAlter(step.table, step.alter);
        return `online engine: ${r.rowsCopied} rows copied, ${r.eventsApplied} changes applied, cut over${r.backupTable ? ` (old table kept as ${r.backupTable})` : ''}`;
      }
      case 'mysql-alter': {
        const refused: string[] = [];
        for (const alg of step.algorithms) {
          const r = await this.store.tryAlgorithm!(step.sql, alg, this.ddlOptions());
          if (r.ok) return `ALGORITHM=${alg}${alg === 'INPLACE' ? ', LOCK=NONE' : ''}`;
          refused.push(`${alg} refused`);
        }
        if (step.otherwise === 'engine') {
          this.progress(`    ${refused.join(', ')}; through the online engine: ${step.table} ${step.alter}`);
          const r = await this.onlineAlter(step.table, step.alter);
          return `${refused.join(', ')}; online engine: ${r.rowsCopied} rows copied, ${r.eventsApplied} changes applied`;
        }
        await this.store.runDdl(step.sql, this.ddlOptions());
        return `${refused.length ? refused.join(', ') + '; ' : ''}ran as written`;
      }
      case 'batched': {
        const saved = this.cursorFor(rec, `s${statementIndex}`);
        const r = await this.backfill(
          { table: step.table, key: step.key, head: step.head, where: step.where },
          {
            batchSize: this.backfillBatch,
            resumeAfter: saved,
            onBatch: async (cursor) => {
              this.setCursor(rec, `s${statementIndex}`, cursor);
              await this.store.saveHistory(rec);
            },
          },
        );
        return `${r.batches} batch(es), ${r.rowsAffected} row(s)${saved ? ' (resumed)' : ''}`;
      }
    }
  }

  /**
   * One batched backfill under the run's throttle: started for it, stopped on every
   * exit (closing its probes, removing its heartbeat row). A stop (SIGINT, critical
   * load) takes effect before the next batch; the cursor of the last one is saved.
   */
  private async backfill(target: BackfillTarget, options: Pick<BackfillOptions, 'batchSize' | 'resumeAfter' | 'onBatch' | 'silenceSyncTriggers'>): Promise<BackfillResult> {
    const throttle = await this.throttles.start(target.table);
    try {
      return await runBackfill(this.store, target, {
        ...options,
        throttle,
        stopRequested: () => this.stopReason ?? throttle?.stopReason() ?? null,
        onPause: (reason) => this.progress(`    backfill of ${target.table} paused: ${reason}`),
        onResume: (seconds) => this.progress(`    backfill of ${target.table} resumed after ${seconds}s`),
      });
    } finally {
      await throttle?.stop();
    }
  }

  private cursorFor(rec: HistoryRecord, id: string): KeyValue[] | null {
    if (!rec.backfillCursor) return null;
    try {
      const all = JSON.parse(rec.backfillCursor) as Record<string, KeyValue[]>;
      return all[id] ?? null;
    } catch {
      return null;
    }
  }

  private setCursor(rec: HistoryRecord, id: string, cursor: KeyValue[]): void {
    let all: Record<string, KeyValue[]> = {};
    try {
      all = rec.backfillCursor ? (JSON.parse(rec.backfillCursor) as Record<string, KeyValue[]>) : {};
    } catch {
      all = {};
    }
    all[id] = cursor;
    rec.backfillCursor = JSON.stringify(all);
  }

  // ---------------------------------------------------------------- TS migrations

  private async loadDefinition(f: MigrationFile): Promise<MigrationDefinition> {
    let mod: { default?: unknown };
    try {
      const { tsImport } = await import('tsx/esm/api');
      mod = (await tsImport(pathToFileURL(f.path).href, import.meta.url)) as { default?: unknown };
    } catch (err) {
      throw new UsageError(`${f.file}: cannot load the TS migration: ${(err as Error).message}`);
    }
    const def = (mod.default as { default?: unknown } | undefined)?.default ?? mod.default;
    validateDefinition(def, f.file);
    return def;
  }

  private async runTsPhase(f: MigrationFile, def: MigrationDefinition, phase: Phase, rec: HistoryRecord, run: MigrationRun): Promise<void> {
    if (!definedPhases(def).has(phase)) return;
    const started = Date.now();
    let last = '(no statement yet)';
    const track = (sql: string) => {
      last = sql;
    };
    const db = this.handle(rec, track);
    try {
      await runDefinitionPhase(def, phase, db);
    } catch (err) {
      await this.fail(f, rec, phase, 0, null, last, err);
    }
    run.statements.push({ phase, index: 0, line: 0, class: 'code', how: 'TS migration', ran: 'ran', seconds: Math.round((Date.now() - started) / 100) / 10 });
  }

  private handle(rec: HistoryRecord, track: (sql: string) => void): MigrationDb {
    const store = this.store;
    const runner = this;
    return {
      dialect: store.dialect,
      log: this.log,
      query: async <T = Record<string, unknown>>(sql: string, params?: unknown[]) => {
        track(sql);
        return store.query<T>(sql, params);
      },
      exec: async (sql, params) => {
        track(sql);
        return store.exec(sql, params);
      },
      param: (i) => store.placeholder(i),
      quote: (name) => store.quoteIdent(name),
      async ddl(sql) {
        track(sql);
        runner.tableCache.clear();
        const [planned] = await planPhase(splitStatements(sql, store.dialect), 'expand', { dialect: store.dialect, stats: (t) => runner.stats(t), threshold: runner.threshold });
        if (!planned) return;
        const ran = await runner.runSteps(planned, rec, 0);
        runner.progress(`    ${planned.class}: ${ran}: ${sql.split('\n')[0]}`);
        runner.tableCache.clear();
      },
      async backfill(spec: BackfillSpec) {
        const stats = await store.tableStats(spec.table);
        if (!stats) throw new UsageError(`backfill: table ${spec.table} does not exist`);
        if (stats.primaryKey.length === 0) throw new UsageError(`backfill: ${spec.table} has no primary key to walk in batches`);
        const table = `${stats.schema}.${stats.name}`;
        const head = `UPDATE ${store.quoteIdent(stats.schema)}.${store.quoteIdent(stats.name)} SET ${spec.set}`;
        track(`${head}${spec.where ? ` WHERE ${spec.where}` : ''}`);
        const id = `ts:${spec.id ?? `${spec.table}:${spec.set}`}`;
        const saved = runner.cursorFor(rec, id);
        return runner.backfill({ table, key: stats.primaryKey, head, where: spec.where ?? null }, {
          batchSize: spec.batchSize ?? runner.backfillBatch,
          resumeAfter: saved,
          silenceSyncTriggers: spec.silenceSyncTriggers,
          onBatch: async (cursor) => {
            runner.setCursor(rec, id, cursor);
            await store.saveHistory(rec);
          },
        });
      },
      table: (name) => store.tableStats(name),
      async atomically(table, statements) {
        for (const s of statements) track(s);
        if (store.dialect === 'postgres') {
          // One simple-protocol message without BEGIN/COMMIT runs as one implicit transaction.
          await store.runDdl(statements.join(';\n'), runner.ddlOptions());
          return;
        }
        const dot = table.indexOf('.');
        const t = dot > 0 ? `${store.quoteIdent(table.slice(0, dot))}.${store.quoteIdent(table.slice(dot + 1))}` : store.quoteIdent(table);
        await store.runDdl(`LOCK TABLES ${t} WRITE`, runner.ddlOptions());
        try {
          for (const s of statements) await store.exec(s);
        } finally {
          await store.exec('UNLOCK TABLES');
        }
      },
      syncTriggers: (spec) => store.syncTriggers(spec),
    };
  }
}

// ---------------------------------------------------------------- migrate new

const SQL_TEMPLATE = (name: string) => `-- ${name}
-- Phases: expand runs before the new application version is deployed,
-- backfill right after it (in key-range batches), contract after every
-- instance runs the new version (\`shadowshift migrate contract\`), down undoes expand.

-- shadowshift:expand


-- shadowshift:backfill


-- shadowshift:contract


-- shadowshift:down

`;

const TS_TEMPLATE = (name: string) => `// ${name}
import { defineMigration } from 'shadowshift/migrations';

export default defineMigration({
  // operations: [renameColumn({ table: 'users', from: 'name', to: 'full_name' })],
  async expand(db) {
    // await db.ddl('ALTER TABLE ...');
  },
  async backfill(db) {
    // await db.backfill({ table: 'users', set: 'full_name = name', where: 'full_name IS NULL' });
  },
  async contract(db) {},
  async down(db) {},
});
`;

/** Writes a new migration file from the template; returns its path. */
export function newMigrationFile(dir: string, name: string, kind: 'sql' | 'ts', now = new Date()): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9_-]*$/.test(name)) {
    throw new UsageError(`migration name "${name}" may only hold letters, digits, _ and -, e.g. add_order_status`);
  }
  if (!existsSync(dir)) mkdirSync(dir, { recursive: true });
  let version = timestampVersion(now);
  const taken = new Set(discoverMigrations(dir).map((f) => BigInt(f.version)));
  while (taken.has(BigInt(version))) version = (BigInt(version) + 1n).toString();
  const file = `${version}_${name}.${kind}`;
  if (!parseFileName(file)) throw new UsageError(`cannot build a valid file name from "${name}"`);
  const path = join(dir, file);
  writeFileSync(path, kind === 'sql' ? SQL_TEMPLATE(name) : TS_TEMPLATE(name), { flag: 'wx' });
  return path;
}
