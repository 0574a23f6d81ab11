// Running one migration's phases: each statement planned just before it runs
// and run as planned (as written, under a lock timeout, with an explicit MySQL
// algorithm, through the online engine, in backfill batches), or a TS phase's
// code; progress recorded in the history after every statement and batch, so a
// failed or stopped run resumes where it stopped.

import { hostname } from 'node:os';
import type { AlterResult } from '../engine/job.js';
import { isRevertOf } from '../engine/revert-point.js';
import { AbortedError, ShadowshiftError } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import { runBackfill, type BackfillOptions, type BackfillResult, type BackfillTarget, type KeyValue } from './backfill.js';
import type { BackfillThrottles } from './backfill-throttle.js';
import { definedPhases, runDefinitionPhase, type MigrationDefinition } from './define-migration.js';
import { MigrationFailedError, MigrationRefusedError } from './errors.js';
import { nowIso, parsePhaseChecksums, phaseChecksum, statementsChecksum } from './history.js';
import type { MigrationFile, Phase } from './migration-files.js';
import type { DdlOptions, HistoryRecord, MigrationStore } from './migration-store.js';
import { describeEngineRun, type OnlineAlter, type OnlineRevert } from './online-alter.js';
import type { FilePlanner } from './plan-files.js';
import type { PlannedStatement, Step } from './planner.js';
import { splitStatements } from './statement-splitter.js';
import { loadDefinition, migrationDb } from './ts-migrations.js';

export interface StatementRun {
  phase: Phase;
  index: number;
  line: number;
  class: string;
  how: string;
  /** What actually ran (e.g. ALGORITHM=INSTANT accepted, engine, batches). */
  ran: string;
  seconds: number;
  /** The results of the engine jobs the statement ran (repairedChunks, checksum, ...), when it ran any. */
  engine?: AlterResult[];
}

export interface MigrationRun {
  version: string;
  name: string;
  file: string;
  phases: Phase[];
  statements: StatementRun[];
  seconds: number;
}

export interface ExecutorSettings {
  store: MigrationStore;
  log: Logger;
  planner: FilePlanner;
  onlineAlter: OnlineAlter;
  onlineRevert: OnlineRevert;
  throttles: BackfillThrottles;
  /** Lock wait per DDL attempt and retries after a lock timeout. */
  ddlLockTimeoutMs: number;
  ddlRetries: number;
  backfillBatch: number;
  progress: (line: string) => void;
  /** Why the run is to stop before its next statement or backfill batch; null to go on. */
  stopReason: () => string | null;
}

function short(sql: string): string {
  // The table is named by the statement already: keep the part that says what this step does.
  const one = sql.replace(/\s+/g, ' ').trim().replace(/^ALTER TABLE (?:"[^"]*"|`[^`]*`|[\w$]+)(?:\.(?:"[^"]*"|`[^`]*`|[\w$]+))? /i, '');
  return one.length > 90 ? one.slice(0, 40) + ' ... ' + one.slice(-45) : one;
}

function secondsSince(started: number): number {
  return Math.round((Date.now() - started) / 100) / 10;
}

/** A history record keeps one resume point per batched backfill of the running phase, by id. */
function cursors(rec: HistoryRecord): Record<string, KeyValue[]> {
  try {
    const all = rec.backfillCursor ? (JSON.parse(rec.backfillCursor) as Record<string, KeyValue[]> | null) : null;
    return all && typeof all === 'object' ? all : {};
  } catch {
    return {};
  }
}

export class MigrationExecutor {
  readonly store: MigrationStore;
  readonly log: Logger;
  readonly planner: FilePlanner;
  readonly progress: (line: string) => void;
  /** Results of the engine jobs the current statement ran, reported with it. */
  private engineRuns: AlterResult[] = [];

  constructor(private readonly settings: ExecutorSettings) {
    this.store = settings.store;
    this.log = settings.log;
    this.planner = settings.planner;
    this.progress = settings.progress;
  }

  /** `revertTables`: a down without a down phase, run as the engine's revert of these tables, in this order. */
  async runMigration(f: MigrationFile, rec: HistoryRecord, phases: Phase[], revertTables?: string[]): Promise<MigrationRun> {
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
    const def = f.kind === 'ts' ? await loadDefinition(f) : null;
    for (const phase of phases) {
      const stop = this.settings.stopReason();
      if (stop) throw new AbortedError(`${stop}: stopped before ${f.file} ${phase}; run the command again to continue`);
      const resuming = rec.currentPhase === phase && (rec.status === 'failed' || rec.status === 'running');
      if (!resuming) Object.assign(rec, { statementsDone: 0, doneChecksum: null, backfillCursor: null });
      rec.currentPhase = phase;
      rec.status = 'running';
      rec.error = null;
      rec.failedStatement = null;
      await this.store.saveHistory(rec);
      if (def || f.phases[phase]) this.progress(`${f.file}: ${phase}${resuming ? ` (resuming at statement ${rec.statementsDone + 1})` : ''}`);
      if (phase === 'down' && revertTables) await this.runReverts(f, revertTables, rec, run);
      else if (def) await this.runTsPhase(f, def, phase, rec, run);
      else await this.runSqlPhase(f, phase, rec, run);
      run.phases.push(phase);
      rec.phaseChecksums = JSON.stringify({ ...parsePhaseChecksums(rec.phaseChecksums), [phase]: phaseChecksum(f, phase) });
      rec.reached = phase === 'expand' ? 'expanded' : phase === 'backfill' ? 'backfilled' : phase === 'contract' ? 'contracted' : 'rolled back';
      Object.assign(rec, { status: 'ok', currentPhase: null, statementsDone: 0, doneChecksum: null, backfillCursor: null });
      rec.finishedAt = nowIso();
      rec.durationMs = Date.now() - started;
      await this.store.saveHistory(rec);
    }
    run.seconds = secondsSince(started);
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
    const statements = splitStatements(text.sql, this.store.dialect, text.firstLine - 1);
    const done = rec.statementsDone;
    if (done > 0) {
      const prefix = statementsChecksum(statements.slice(0, done).map((s) => s.text));
      if (done > statements.length || prefix !== rec.doneChecksum) {
        throw new MigrationRefusedError(
          `${f.file}: the ${done} ${phase} statement(s) that already ran were changed since the failed run (recorded ${rec.doneChecksum}, file ${prefix}). ` +
            'Only the failed statement and those after it may be edited; restore the others.',
        );
      }
    }
    this.planner.forgetTables();
    for (let i = done; i < statements.length; i++) {
      const st = statements[i]!;
      const stop = this.settings.stopReason();
      if (stop) await this.fail(f, rec, phase, i, st.line, st.text, new AbortedError(`${stop}: stopped before this statement`));
      // Plan just before running: earlier statements may have created the table.
      this.planner.forgetTables();
      const [planned] = await this.planner.statements([st], phase);
      const started = Date.now();
      let ran: string;
      this.engineRuns = [];
      try {
        ran = await this.runSteps(planned!, rec, i);
      } catch (err) {
        await this.fail(f, rec, phase, i, st.line, st.text, err);
        return;
      }
      run.statements.push({ phase, index: i, line: st.line, class: planned!.class, how: planned!.how, ran, seconds: secondsSince(started), ...this.takeEngineRuns() });
      this.progress(`  ${phase} ${i + 1}/${statements.length} line ${st.line}: ${planned!.class}, ${ran}`);
      rec.statementsDone = i + 1;
      rec.doneChecksum = statementsChecksum(statements.slice(0, i + 1).map((s) => s.text));
      rec.backfillCursor = null;
      await this.store.saveHistory(rec);
    }
  }

  /** A revert of each table; one that fails is recorded as the failed statement, and a new run reverts what is left. */
  private async runReverts(f: MigrationFile, tables: string[], rec: HistoryRecord, run: MigrationRun): Promise<void> {
    for (let i = rec.statementsDone; i < tables.length; i++) {
      const table = tables[i]!;
      const started = Date.now();
      let result: AlterResult;
      try {
        // A run that failed or was killed on a later table: reverting this one again would go forward.
        if (isRevertOf((await this.settings.onlineRevert.pointOf(table)) ?? '')) {
          const ran = `${table} is reverted already (by an earlier run of this down that stopped on a later table, or by hand): skipped`;
          run.statements.push({ phase: 'down', index: i, line: 0, class: 'online', how: `shadowshift revert --table ${table}`, ran, seconds: 0 });
          this.progress(`  down ${i + 1}/${tables.length}: ${ran}`);
          rec.statementsDone = i + 1;
          await this.store.saveHistory(rec);
          continue;
        }
        result = await this.settings.onlineRevert.run(table);
      } catch (err) {
        await this.fail(f, rec, 'down', i, null, `shadowshift revert --table ${table}`, err);
        return;
      }
      const ran = `revert through the engine: ${result.eventsApplied} changes applied, checksum ${result.repairedChunks ? `REPAIRED ${result.repairedChunks} chunk(s)` : 'clean'}; the replaced table is kept as ${result.backupTable}`;
      run.statements.push({ phase: 'down', index: i, line: 0, class: 'online', how: `shadowshift revert --table ${table}`, ran, seconds: secondsSince(started), engine: [result] });
      this.progress(`  down ${i + 1}/${tables.length}: ${ran}`);
      rec.statementsDone = i + 1;
      await this.store.saveHistory(rec);
    }
  }

  private async runTsPhase(f: MigrationFile, def: MigrationDefinition, phase: Phase, rec: HistoryRecord, run: MigrationRun): Promise<void> {
    if (!definedPhases(def).has(phase)) return;
    const started = Date.now();
    let last = '(no statement yet)';
    const track = (sql: string) => {
      last = sql;
    };
    const db = migrationDb(this, rec, track);
    this.engineRuns = [];
    try {
      await runDefinitionPhase(def, phase, db);
    } catch (err) {
      await this.fail(f, rec, phase, 0, null, last, err);
    }
    run.statements.push({ phase, index: 0, line: 0, class: 'code', how: 'TS migration', ran: 'ran', seconds: secondsSince(started), ...this.takeEngineRuns() });
  }

  private takeEngineRuns(): { engine?: AlterResult[] } {
    const runs = this.engineRuns;
    this.engineRuns = [];
    return runs.length ? { engine: runs } : {};
  }

  ddlOptions(): DdlOptions {
    const { ddlLockTimeoutMs, ddlRetries } = this.settings;
    return {
      lockTimeoutMs: ddlLockTimeoutMs,
      retries: ddlRetries,
      onRetry: (attempt: number, error: string) => this.progress(`    lock not granted (${error}); retry ${attempt}/${ddlRetries}`),
    };
  }

  async runSteps(planned: PlannedStatement, rec: HistoryRecord, statementIndex: number): Promise<string> {
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
        const r = await this.settings.onlineAlter(step.table, step.alter);
        this.engineRuns.push(r);
        return `${describeEngineRun(r)}, cut over${r.backupTable ? ` (old table kept as ${r.backupTable})` : ''}`;
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
          const r = await this.settings.onlineAlter(step.table, step.alter);
          this.engineRuns.push(r);
          return `${refused.join(', ')}; ${describeEngineRun(r)}`;
        }
        await this.store.runDdl(step.sql, this.ddlOptions());
        return `${refused.length ? refused.join(', ') + '; ' : ''}ran as written`;
      }
      case 'batched': {
        const { result: r, resumed } = await this.resumableBackfill(rec, `s${statementIndex}`, { table: step.table, key: step.key, head: step.head, where: step.where }, {});
        return `${r.batches} batch(es), ${r.rowsAffected} row(s)${resumed ? ' (resumed)' : ''}`;
      }
    }
  }

  /**
   * A batched backfill that saves its cursor (under `id`) in the history record
   * after every batch, and starts after the saved one when a run stopped in it.
   */
  async resumableBackfill(
    rec: HistoryRecord,
    id: string,
    target: BackfillTarget,
    options: { batchSize?: number; silenceSyncTriggers?: boolean },
  ): Promise<{ result: BackfillResult; resumed: boolean }> {
    const saved = cursors(rec)[id] ?? null;
    const result = await this.backfill(target, {
      batchSize: options.batchSize ?? this.settings.backfillBatch,
      resumeAfter: saved,
      silenceSyncTriggers: options.silenceSyncTriggers,
      onBatch: async (cursor) => {
        rec.backfillCursor = JSON.stringify({ ...cursors(rec), [id]: cursor });
        await this.store.saveHistory(rec);
      },
    });
    return { result, resumed: saved !== null };
  }

  /**
   * One batched backfill under the run's throttle: started for it, stopped on every
   * exit (closing its probes, removing its heartbeat row). A stop (SIGINT, critical
   * load) takes effect before the next batch; the cursor of the last one is saved.
   */
  private async backfill(target: BackfillTarget, options: Pick<BackfillOptions, 'batchSize' | 'resumeAfter' | 'onBatch' | 'silenceSyncTriggers'>): Promise<BackfillResult> {
    const throttle = await this.settings.throttles.start(target.table);
    try {
      return await runBackfill(this.store, target, {
        ...options,
        throttle,
        stopRequested: () => this.settings.stopReason() ?? throttle?.stopReason() ?? null,
        onPause: (reason) => this.progress(`    backfill of ${target.table} paused: ${reason}`),
        onResume: (seconds) => this.progress(`    backfill of ${target.table} resumed after ${seconds}s`),
      });
    } finally {
      await throttle?.stop();
    }
  }
}
