// The migration runner: which migrations are pending, in what order, and
// running their phases safely. MigrationRunner holds what a whole run shares
// (the store, the settings, a stop request) and hands it to the parts:
// commands.ts, history.ts, plan-files.ts, executor.ts, ts-migrations.ts
// (docs/ARCHITECTURE.md says what each does).
//
// Safety: one runner at a time (advisory lock, waits --lock-wait); an applied
// file that changed is refused naming the file and both checksums; a pending
// version older than an applied one is refused unless --out-of-order; a failed
// statement is recorded, and the next run resumes at it (statements before it
// are not run again, and must not have changed).

import type { LiveThrottleSettings } from '../control/throttle-signals.js';
import type { AlterJob } from '../engine/job.js';
import { engineSettings, type EngineSettingsInput } from '../engine/settings.js';
import type { DialectName } from '../dialects/dialect.js';
import { syntaxOf } from '../dialects/registry.js';
import type { ConnectionConfig } from '../util/connection-url.js';
import { ShadowshiftError } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import { BackfillThrottles } from './backfill-throttle.js';
import { MigrationCommands, type CommandReport } from './commands.js';
import { MigrationExecutor } from './executor.js';
import type { MigrationStatus } from './history.js';
import type { MigrationFile, Phase } from './migration-files.js';
import { openMigrationStore, type MigrationStore } from './migration-store.js';
import { engineAlter, engineRevert, type OnlineAlter, type OnlineRevert } from './online-alter.js';
import { FilePlanner, type PlannedMigration } from './plan-files.js';
import { DEFAULT_ONLINE_THRESHOLD, type OnlineThreshold } from './planner.js';

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
   * The settings of the engine jobs the run starts, as `alter` takes them. Its throttle
   * (flag file, query, critical load, replica lag, --max-lag, --max-load) governs the
   * run's backfills too: critical load stops a backfill after its batch, recorded, and
   * aborts an engine job.
   */
  engine?: EngineSettingsInput;
  /** Called with each engine job once it exists (the CLI installs its signal handlers); returns a detach function. */
  attachEngineJob?: (job: AlterJob) => () => void;
  /** Progress lines for humans (the CLI prints them to stderr). */
  onProgress?: (line: string) => void;
  /** Tests: replace the engine. */
  onlineAlter?: OnlineAlter;
  onlineRevert?: OnlineRevert;
}

export class MigrationRunner {
  private readonly throttles: BackfillThrottles;
  private readonly planner: FilePlanner;
  private readonly commands: MigrationCommands;
  /** The live thresholds backfills (and, for --max-load, engine jobs) read at every poll. */
  readonly throttleSettings: LiveThrottleSettings;
  private stopReason: string | null = null;

  private constructor(
    private readonly options: RunnerOptions,
    readonly store: MigrationStore,
  ) {
    const log = options.log;
    const engine = engineSettings(options.engine);
    // The engine jobs share this maxLoad map, so a change reaches backfills and jobs alike;
    // no slot lag: a backfill has no slot.
    this.throttleSettings = { maxLagSeconds: engine.throttle.maxLagSeconds, maxLoad: engine.throttle.maxLoad };
    const onlineAlter: OnlineAlter = options.onlineAlter ?? engineAlter(options.connection, engine, log, options.attachEngineJob);
    const onlineRevert: OnlineRevert = options.onlineRevert ?? engineRevert(options.connection, engine, log, options.attachEngineJob);
    this.throttles = new BackfillThrottles({ connection: options.connection, schema: store.schema, config: engine.throttle.signals, live: this.throttleSettings, log });
    this.planner = new FilePlanner(store, options.threshold ?? DEFAULT_ONLINE_THRESHOLD);
    const progress = (line: string) => this.progress(line);
    const executor = new MigrationExecutor({
      store,
      log,
      planner: this.planner,
      onlineAlter,
      onlineRevert,
      throttles: this.throttles,
      ddlLockTimeoutMs: options.ddlLockTimeoutMs ?? syntaxOf(store.dialect).lockTimeout.defaultMs,
      ddlRetries: options.ddlRetries ?? 8,
      backfillBatch: options.backfillBatch ?? 1000,
      progress,
      stopReason: () => this.stopReason,
    });
    this.commands = new MigrationCommands({
      store,
      log,
      dir: options.dir,
      lockWaitMs: options.lockWaitMs ?? 30_000,
      outOfOrder: options.outOfOrder ?? false,
      planner: this.planner,
      executor,
      onlineRevert,
      progress,
    });
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
    this.options.log.debug(line);
  }

  status(): Promise<{ migrations: MigrationStatus[]; warnings: string[] }> {
    return this.commands.status();
  }

  /** `migrate plan`: what up and contract would run now. */
  plan(options: { to?: string } = {}): Promise<{ up: PlannedMigration[]; contract: PlannedMigration[]; warnings: string[] }> {
    return this.commands.plan(options);
  }

  planFile(f: MigrationFile, phases: Phase[]): Promise<PlannedMigration> {
    return this.planner.file(f, phases);
  }

  up(options: { to?: string; execute: boolean }): Promise<CommandReport> {
    return this.commands.up(options);
  }

  contract(options: { to?: string; execute: boolean }): Promise<CommandReport> {
    return this.commands.contract(options);
  }

  down(options: { to?: string; execute: boolean }): Promise<CommandReport> {
    return this.commands.down(options);
  }

  baseline(version: string): Promise<CommandReport> {
    return this.commands.baseline(version);
  }
}
