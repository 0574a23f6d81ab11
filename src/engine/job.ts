// One online ALTER of one table, as a state machine:
//   preflight → shadow → stream → copy ⇄ apply → catch-up → (postponed) → cut-over → cleanup
// The job decides policy only; every statement comes from the dialect.

import { randomBytes } from 'node:crypto';
import type {
  AlterAnalysis,
  ArtefactNames,
  BeforeChunkCommit,
  Checkpoint,
  ColumnMap,
  CopyPlan,
  DialectSession,
  TableInfo,
  TableRef,
  Value,
} from '../dialects/dialect.js';
import { openDialect } from '../dialects/open-dialect.js';
import { AbortedError, CutoverAttemptError, PreflightError, ShadowshiftError, TransientDatabaseError, UsageError } from '../util/errors.js';
import type { ConnectionConfig } from '../util/connection-url.js';
import type { Logger } from '../util/logger.js';
import { JobControls } from '../control/job-controls.js';
import { CopyRate } from '../control/progress.js';
import { createJobThrottle, needsProbes, type JobThrottle, type LiveThrottleSettings, type ThrottleConfig } from '../control/throttle-signals.js';
import type { HookEvent, HookRunner } from '../control/hooks.js';
import { buildCopyPlan } from './copy-plan.js';
import { ChunkSizer } from './chunk-sizer.js';
import { EventPump } from './event-pump.js';
import type { JobState, JobStatus } from './job-state.js';
import { decodeKey, encodeKey } from './checkpoint-codec.js';
import { sameKey } from './keys.js';
import { verifyShadow } from './verifier.js';
import { failuresOf, runChecks, type CheckOutcome } from './preflight.js';

export interface AlterJobOptions {
  connection: ConnectionConfig;
  table: string;
  alter: string;
  /** Target duration of one chunk; the chunk size adapts to it. */
  chunkTimeMs: number;
  /** Fixed chunk size; turns adaptation off. */
  chunkSize?: number;
  cutoverLockTimeoutMs: number;
  cutoverRetries: number;
  /** End the sessions that block the cut-over's lock after this long (off by default). */
  killBlockersAfterMs?: number;
  dropOldTable: boolean;
  postponeCutoverFlagFile?: string;
  log: Logger;
  throttle?: Partial<ThrottleConfig>;
  /** Replica lag above which the copy pauses (seconds). */
  maxLagSeconds?: number;
  /** Status thresholds above which the copy pauses, e.g. Threads_running=25. */
  maxLoad?: Map<string, number>;
  /** PostgreSQL: WAL bytes the job's slot may hold back before the copy pauses. */
  maxSlotLagBytes?: number;
  hooks?: HookRunner;
  /** Write checkpoints and keep the job's state on failure so `resume` can continue it. */
  resumable?: boolean;
  /** Continue the job recorded in the table's checkpoint instead of starting over. */
  resume?: boolean;
  checkpointIntervalSeconds?: number;
  /** A checkpoint older than this is refused (the binlog/WAL it needs may be gone). */
  checkpointMaxAgeSeconds?: number;
  /** Compare original and shadow before the cut-over (default on where the dialect supports it). */
  checksum?: boolean;
  /** While postponed, checksum again this often. */
  checksumIntervalSeconds?: number;
  /** Build the shadow's secondary indexes after the copy (default on where the dialect supports it). */
  deferIndexes?: boolean;
  /** Told about chunks, cut-over attempts and errors (metrics). */
  observer?: JobObserver;
  /** For tests that need a deterministic interleaving (invariant 3). */
  testHooks?: { beforeChunkCommit?: BeforeChunkCommit };
}

export interface JobObserver {
  chunkCopied?(rows: number, seconds: number): void;
  cutoverAttempt?(result: 'ok' | 'failed', blockedSeconds: number): void;
  error?(where: string): void;
}

export interface AlterPlanReport {
  jobId: string;
  dialect: string;
  server: string;
  table: string;
  estimatedRows: number;
  key: ColumnMap[] | null;
  columns: ColumnMap[];
  /** Columns of the original whose data is not carried across. */
  columnsNotCopied: string[];
  /** Columns of the shadow that start from their default. */
  columnsNew: string[];
  newUniqueIndexes: string[];
  /** Whether the shadow is checksummed against the original before the cut-over. */
  checksum: 'on' | 'off' | 'not built for this dialect';
  /** Whether the shadow's secondary indexes are built after the copy instead of before. */
  deferredIndexes: 'on' | 'off' | 'not built for this dialect';
  checks: CheckOutcome[];
  ok: boolean;
}

export interface AlterResult {
  table: string;
  backupTable: string | null;
  rowsCopied: number;
  eventsApplied: number;
  cutoverAttempts: number;
  seconds: number;
}

/** How long the loop applies pending events before it copies the next chunk. */
const APPLY_BUDGET_MS = 1000;
/** Backlog under which the copy counts as caught up and the cut-over may start. */
const CAUGHT_UP_BACKLOG = 1000;
const CHUNK_RETRIES = 5;

export class AlterJob {
  readonly id = randomBytes(4).toString('hex');
  readonly controls: JobControls;
  private readonly log: Logger;
  private state: JobState = 'preflight';
  private session: DialectSession | null = null;
  private ref: TableRef | null = null;
  private original: TableInfo | null = null;
  private analysis: AlterAnalysis | null = null;
  private previewPlan: CopyPlan | null = null;
  private names: ArtefactNames | null = null;
  private pump: EventPump | null = null;
  private readonly sizer: ChunkSizer;
  private readonly rate = new CopyRate();
  private rowsCopied = 0;
  private cutoverAttempts = 0;
  private error: string | null = null;
  private startedAt = Date.now();
  private jobThrottle: JobThrottle | null = null;
  private checkpoint: Checkpoint | null = null;
  private lastCheckpointAt = 0;
  readonly liveSettings: LiveThrottleSettings;

  constructor(private readonly options: AlterJobOptions) {
    this.log = options.log.child({ job: this.id });
    this.controls = new JobControls(options.postponeCutoverFlagFile);
    this.sizer = new ChunkSizer({ targetMs: options.chunkTimeMs, fixedSize: options.chunkSize });
    this.liveSettings = { maxLagSeconds: options.maxLagSeconds ?? 1.5, maxLoad: options.maxLoad ?? new Map(), maxSlotLagBytes: options.maxSlotLagBytes };
  }

  throttledSeconds(): Map<string, number> {
    return this.jobThrottle?.throttler.secondsThrottled() ?? new Map();
  }

  replicaLagSeconds(): number | null {
    return this.jobThrottle?.replicaLag?.lastLagSeconds ?? null;
  }

  /** Re-reads throttle signals at once, so an operator's command takes effect now. */
  async refreshThrottle(): Promise<void> {
    await this.jobThrottle?.throttler.poll();
  }

  get chunkSizer(): ChunkSizer {
    return this.sizer;
  }

  status(): JobStatus {
    const estimated = Math.max(this.original?.estimatedRows ?? 0, this.rowsCopied);
    const copying = this.state === 'copying';
    return {
      jobId: this.id,
      state: this.state,
      table: this.ref ? `${this.ref.schema}.${this.ref.name}` : this.options.table,
      shadowTable: this.names?.shadow ?? null,
      backupTable: this.names?.backup ?? null,
      rowsCopied: this.rowsCopied,
      rowsEstimated: estimated,
      rowsPerSecond: copying ? this.rate.rowsPerSecond() : null,
      eventsApplied: this.pump?.eventsApplied ?? 0,
      backlog: this.pump?.backlog() ?? 0,
      lagSeconds: this.pump?.lagSeconds() ?? null,
      throttled: this.jobThrottle?.throttler.reason() ?? (this.controls.manualThrottle ? 'manual: ctl throttle' : null),
      etaSeconds: copying ? this.rate.etaSeconds(this.rowsCopied, estimated) : this.state === 'done' ? 0 : null,
      chunkSize: this.sizer.size,
      cutoverAttempts: this.cutoverAttempts,
      error: this.error,
    };
  }

  private setState(state: JobState): void {
    if (this.state === state) return;
    this.log.info({ from: this.state, to: state }, `state: ${state}`);
    this.state = state;
  }

  /** Connects, inspects, previews the ALTER and runs every preflight check. Changes nothing. */
  async prepare(): Promise<AlterPlanReport> {
    if (!this.options.alter.trim()) throw new UsageError('--alter is empty; give the ALTER TABLE clauses, e.g. --alter "ADD COLUMN x INT"');
    const session = (this.session = await openDialect(this.options.connection, this.log));
    const checks = session.preflightChecks();
    const ref = (this.ref = session.resolveTable(this.options.table));
    const outcomes = await runChecks(checks, 'connect', { table: ref, info: null, alter: null, plan: null });

    const info = await session.inspectTable(ref);
    if (!info) {
      throw new UsageError(`table ${ref.schema}.${ref.name} does not exist; check --table and the database in the URL`);
    }
    this.original = info;
    if (this.options.resume) this.checkpoint = await this.loadCheckpoint(session, ref);
    const analysis = (this.analysis = session.analyzeAlter(this.options.alter));
    outcomes.push(...(await runChecks(checks, 'table', { table: ref, info, alter: analysis, plan: null })));

    let plan: CopyPlan | null = null;
    let planProblem: string | null = null;
    if (!analysis.renamesTable) {
      const preview = await session.previewShadow(info, this.options.alter);
      const built = buildCopyPlan(info, preview, analysis);
      plan = built.plan;
      if (!built.plan) planProblem = built.reason;
    }
    outcomes.push(...(await runChecks(checks, 'alter', { table: ref, info, alter: analysis, plan })));
    if (planProblem) outcomes.push({ check: 'shared-unique-key', phase: 'alter', ok: false, message: planProblem });
    this.previewPlan = plan;

    const carried = new Set((plan?.columns ?? []).map((c) => c.source));
    const fed = new Set((plan?.columns ?? []).map((c) => c.target));
    return {
      jobId: this.id,
      dialect: session.name,
      server: `${session.server.flavor} ${session.server.version}`,
      table: `${ref.schema}.${ref.name}`,
      estimatedRows: info.estimatedRows,
      key: plan?.key ?? null,
      columns: plan?.columns ?? [],
      columnsNotCopied: info.columns.filter((c) => !carried.has(c.name)).map((c) => c.name),
      columnsNew: plan ? plan.shadow.columns.filter((c) => !fed.has(c.name)).map((c) => c.name) : [],
      newUniqueIndexes: plan?.newUniqueIndexes ?? [],
      checksum: this.options.checksum === false ? 'off' : session.checksummer ? 'on' : 'not built for this dialect',
      deferredIndexes: !session.finishShadow ? 'not built for this dialect' : this.defersIndexes(session, info) ? 'on' : 'off',
      checks: outcomes,
      ok: outcomes.every((o) => o.ok) && plan !== null,
    };
  }

  /** Runs the job to the end. `prepare()` must have passed. Cleans up on every exit path. */
  async execute(report: AlterPlanReport): Promise<AlterResult> {
    const failures = failuresOf(report.checks);
    if (failures.length > 0 || !report.ok) throw new PreflightError(failures);
    const session = this.session;
    if (!session || !this.ref || !this.original || !this.analysis || !this.previewPlan) {
      throw new Error('execute() called before a successful prepare()');
    }

    this.startedAt = Date.now();
    await session.acquireJobLock(this.ref);
    session.jobLockLost?.(this.ref).catch((err: Error) => this.controls.fail(err));
    let swapped = false;
    const resumed = this.checkpoint;
    try {
      let shadowInfo: TableInfo | null;
      let names: ArtefactNames;
      if (resumed) {
        names = this.names = resumed.names;
        shadowInfo = await session.inspectTable({ schema: this.ref.schema, name: names.shadow });
        if (!shadowInfo) throw new UsageError(`the checkpoint's shadow table ${names.shadow} is gone; run \`shadowshift cleanup\` and start again without --resume`);
      } else {
        names = this.names = session.artefactNames(this.ref, this.id, { resumable: this.resumable });
        this.log.info({ shadow: names.shadow }, 'creating shadow table');
        shadowInfo = await session.createShadow(this.original, this.options.alter, names, { deferIndexes: this.defersIndexes(session, this.original) });
      }
      const built = buildCopyPlan(this.original, shadowInfo, this.analysis);
      if (!built.plan) throw new ShadowshiftError(built.reason);
      const plan = built.plan;

      const streamJobId = resumed?.jobId ?? this.id;
      this.pump = new EventPump(() => session.openChangeStream(plan, names, streamJobId), session.applier, plan, this.log, () => this.controls.wake());
      const position = await this.pump.start(resumed?.streamPosition);
      this.log.info({ position, resumed: Boolean(resumed) }, resumed ? 'change stream resumed from the checkpoint' : 'change stream started');
      this.startThrottler(session, names);
      await this.fire('on-start');
      await this.fire('on-validated');

      this.setState('copying');
      await this.copyAll(session, plan);
      await this.finishShadow(session, plan);
      await this.fire('on-copy-complete');
      this.setState('catching-up');
      await this.catchUp();
      await this.verify(session, plan);
      await this.waitWhilePostponed(session, plan);
      swapped = await this.cutOver(session, plan, names);
      this.setState('done');
      if (this.resumable) await session.checkpoints!.remove(this.ref).catch((e: Error) => this.log.warn({ err: e.message }, 'could not remove the checkpoint'));
      await this.fire('on-success');
      return {
        table: this.status().table,
        backupTable: this.options.dropOldTable ? null : names.backup,
        rowsCopied: this.rowsCopied,
        eventsApplied: this.pump.eventsApplied,
        cutoverAttempts: this.cutoverAttempts,
        seconds: Math.round((Date.now() - this.startedAt) / 100) / 10,
      };
    } catch (err) {
      this.error = (err as Error).message;
      this.setState(err instanceof AbortedError ? 'aborted' : 'failed');
      this.options.observer?.error?.('job');
      await this.fire('on-failure');
      throw err;
    } finally {
      await this.jobThrottle?.stop();
      const keepForResume = !swapped && this.resumable && this.state !== 'done' && (this.state === 'failed' || this.controls.keepStateOnAbort);
      await this.cleanUp(session, swapped, keepForResume);
    }
  }

  /** Runs the on-status hook (the CLI calls this every --status-interval). */
  async reportStatus(): Promise<void> {
    await this.fire('on-status');
  }

  private async fire(event: HookEvent): Promise<number> {
    if (!this.options.hooks) return 0;
    return this.options.hooks.run(event, { dialect: this.session?.name ?? '', alter: this.options.alter, status: this.status() });
  }

  private startThrottler(session: DialectSession, names: ArtefactNames): void {
    const wanted = needsProbes(this.options.throttle ?? {}, this.liveSettings);
    const probes = wanted ? session.openProbes?.(names) : undefined;
    if (wanted && !probes) {
      throw new UsageError(`load and lag throttling (--max-load, --critical-load, --throttle-query, --throttle-replicas, --max-slot-lag) is not built for ${session.name} yet; leave those flags out`);
    }
    this.jobThrottle = createJobThrottle({ config: this.options.throttle ?? {}, live: this.liveSettings, controls: this.controls, probes, log: this.log });
  }

  private async cleanUp(session: DialectSession, swapped: boolean, keepForResume: boolean): Promise<void> {
    try {
      await this.pump?.stop({ keepForResume });
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'stopping the change stream failed');
    }
    if (keepForResume && this.names) {
      await this.saveCheckpoint().catch((e: Error) => this.log.warn({ err: e.message }, 'could not write the final checkpoint'));
      this.log.warn(
        { shadow: this.names.shadow },
        'the job\'s state is kept for a resume: run the same command with --resume to continue, or `shadowshift cleanup --execute` to throw it away',
      );
    } else if (this.names) {
      try {
        // Before the swap the backup name does not exist; after it, it is the
        // user's old table and is only dropped when asked to and the job succeeded.
        await session.dropArtefacts(this.names, { keepBackup: !(swapped && this.state === 'done' && this.options.dropOldTable) });
        if (this.resumable) await session.checkpoints!.remove(this.ref!);
        this.log.info(swapped ? 'removed the job\'s working tables' : 'removed the shadow and every other artefact; the original is untouched');
      } catch (err) {
        this.log.error({ err: (err as Error).message }, 'cleanup failed: run `shadowshift cleanup` to list and remove leftovers');
      }
    }
    if (this.ref) await session.releaseJobLock(this.ref).catch(() => undefined);
  }

  async close(): Promise<void> {
    await this.session?.close();
    this.session = null;
  }

  private async copyAll(session: DialectSession, plan: CopyPlan): Promise<void> {
    const pump = this.pump!;
    const resumed = this.checkpoint;
    let ceiling: Value[] | null;
    let after: Value[] | null = null;
    if (resumed) {
      ceiling = decodeKey(resumed.ceiling);
      after = decodeKey(resumed.watermark);
      this.rowsCopied = resumed.rowsCopied;
      this.log.info({ rowsCopied: this.rowsCopied, watermark: resumed.watermark }, 'resuming the copy after the checkpoint\'s watermark, not from the start');
    } else {
      ceiling = (await this.withRetries('reading the key range', () => session.copier.keyBounds(plan)))?.max ?? null;
    }
    this.ceiling = ceiling;
    this.watermark = after;
    if (!ceiling || (after && sameKey(after, ceiling))) {
      this.log.info(ceiling ? 'the copy was already complete' : 'the table is empty; nothing to copy');
      return;
    }
    this.rate.record(this.rowsCopied);
    for (;;) {
      this.controls.throwIfAborted();
      await this.maybeCheckpoint();
      if (this.jobThrottle?.throttler.hibernating()) {
        // Critical load with --critical-load-hibernate: even the stream rests.
        await this.controls.sleep(250);
        continue;
      }
      await pump.applyAvailable(APPLY_BUDGET_MS);
      if (this.jobThrottle?.throttler.reason()) {
        await this.controls.sleep(100);
        continue;
      }
      const from = after;
      const end = await this.withRetries('finding the end of a chunk', () => session.copier.chunkEnd(plan, from, this.sizer.size, ceiling));
      const range = { after, upTo: end };
      const started = Date.now();
      const { rowsCopied } = await this.withRetries('copying a chunk', () =>
        session.copier.copyChunk(plan, range, this.options.testHooks?.beforeChunkCommit),
      );
      const elapsed = Date.now() - started;
      this.sizer.observe(Math.max(rowsCopied, 1), elapsed);
      this.options.observer?.chunkCopied?.(rowsCopied, elapsed / 1000);
      this.rowsCopied += rowsCopied;
      this.rate.record(this.rowsCopied);
      after = this.watermark = end;
      if (sameKey(end, ceiling)) break;
    }
    this.log.info({ rowsCopied: this.rowsCopied, seconds: Math.round((Date.now() - this.startedAt) / 1000) }, 'copy complete');
  }

  private async withRetries<T>(what: string, work: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await work();
      } catch (err) {
        if (!(err instanceof TransientDatabaseError) || attempt >= CHUNK_RETRIES) throw err;
        this.log.warn({ err: err.message, attempt }, `${what} failed; retrying`);
        await this.controls.sleep(200 * 2 ** attempt);
        this.controls.throwIfAborted();
      }
    }
  }

  private get resumable(): boolean {
    return Boolean(this.options.resumable || this.options.resume);
  }

  private ceiling: Value[] | null = null;
  private watermark: Value[] | null = null;

  private async loadCheckpoint(session: DialectSession, ref: TableRef): Promise<Checkpoint> {
    if (!session.checkpoints) throw new UsageError(`--resume is not built for ${session.name} yet`);
    const cp = await session.checkpoints.load(ref);
    if (!cp) throw new UsageError(`there is no checkpoint for ${ref.schema}.${ref.name} to resume; run without --resume to start a new job`);
    if (cp.alter.trim() !== this.options.alter.trim()) {
      throw new UsageError(
        `the checkpoint for ${ref.schema}.${ref.name} is for a different ALTER ("${cp.alter}"); resume with that exact --alter, ` +
          'or run `shadowshift cleanup --execute` and start again',
      );
    }
    const ageSeconds = (Date.now() - Date.parse(cp.savedAt)) / 1000;
    const maxAge = this.options.checkpointMaxAgeSeconds ?? 7 * 24 * 3600;
    if (ageSeconds > maxAge) {
      throw new UsageError(
        `the checkpoint for ${ref.schema}.${ref.name} is ${Math.round(ageSeconds)}s old, over --checkpoint-max-age ${maxAge}s; the log it needs may be gone. ` +
          'Run `shadowshift cleanup --execute` and start again',
      );
    }
    return cp;
  }

  private async saveCheckpoint(): Promise<void> {
    if (!this.resumable || !this.names || !this.ref || !this.pump || !this.session?.checkpoints) return;
    await this.session.checkpoints.save({
      version: 1,
      jobId: this.checkpoint?.jobId ?? this.id,
      table: this.ref,
      alter: this.options.alter,
      names: this.names,
      streamPosition: this.pump.appliedPosition,
      watermark: encodeKey(this.watermark),
      ceiling: encodeKey(this.ceiling),
      rowsCopied: this.rowsCopied,
      savedAt: new Date().toISOString(),
    });
    this.lastCheckpointAt = Date.now();
  }

  private async maybeCheckpoint(): Promise<void> {
    if (!this.resumable) return;
    if (Date.now() - this.lastCheckpointAt < (this.options.checkpointIntervalSeconds ?? 5) * 1000) return;
    await this.saveCheckpoint();
  }

  /**
   * Deferred only when the copy key is the primary key, which the shadow always keeps
   * (a replica-identity index standing in for a missing key must exist during the copy).
   */
  private defersIndexes(session: DialectSession, original: TableInfo): boolean {
    return this.options.deferIndexes !== false && Boolean(session.finishShadow) && original.indexes.some((i) => i.primary);
  }

  /** Builds the deferred indexes while the stream keeps being applied. */
  private async finishShadow(session: DialectSession, plan: CopyPlan): Promise<void> {
    if (!session.finishShadow) return;
    const started = Date.now();
    let finished = false;
    const build = session.finishShadow(plan.shadow.ref).finally(() => {
      finished = true;
    });
    build.catch(() => undefined);
    while (!finished) {
      this.controls.throwIfAborted();
      await this.pump!.applyAvailable(APPLY_BUDGET_MS);
      await Promise.race([build.then(() => undefined, () => undefined), this.controls.sleep(100)]);
    }
    const shadow = await build;
    if (shadow.indexes.length !== plan.shadow.indexes.length) {
      this.log.info({ indexes: shadow.indexes.length - plan.shadow.indexes.length, seconds: (Date.now() - started) / 1000 }, "built the new table's secondary indexes");
    }
  }

  private async catchUp(): Promise<void> {
    const pump = this.pump!;
    while (pump.backlog() > CAUGHT_UP_BACKLOG) {
      this.controls.throwIfAborted();
      await pump.applyAvailable(APPLY_BUDGET_MS);
    }
    await pump.applyAvailable(APPLY_BUDGET_MS);
  }

  private async verify(session: DialectSession, plan: CopyPlan): Promise<void> {
    if (this.options.checksum === false || !session.checksummer) return;
    const pump = this.pump!;
    await verifyShadow({
      checksummer: session.checksummer,
      copier: session.copier,
      plan,
      chunkSize: Math.max(1000, this.sizer.size * 4),
      lockTimeoutMs: this.options.cutoverLockTimeoutMs,
      drainUnderLock: () => pump.applyUntilMarker(`checksum-${this.id}-${Date.now()}`, this.options.cutoverLockTimeoutMs),
      between: () => this.catchUp(),
      log: this.log,
    });
    this.lastChecksumAt = Date.now();
  }

  private lastChecksumAt = 0;

  /** While postponed the stream keeps being applied, so the shadow stays current. */
  private async waitWhilePostponed(session: DialectSession, plan: CopyPlan): Promise<void> {
    if (!this.controls.cutoverPostponed()) return;
    this.setState('postponed');
    this.log.info({ flagFile: this.options.postponeCutoverFlagFile }, 'cut-over postponed; remove the flag file or run `shadowshift ctl cutover` to proceed');
    await this.fire('on-postponed');
    while (this.controls.cutoverPostponed()) {
      this.controls.throwIfAborted();
      await this.maybeCheckpoint();
      await this.pump!.applyAvailable(APPLY_BUDGET_MS);
      if (Date.now() - this.lastChecksumAt > (this.options.checksumIntervalSeconds ?? 600) * 1000) await this.verify(session, plan);
      await this.controls.sleep(100);
    }
    this.setState('catching-up');
    await this.catchUp();
  }

  /** A non-zero on-before-cutover hook holds the cut-over; the stream keeps being applied meanwhile. */
  private async holdWhileHookRefuses(): Promise<void> {
    for (;;) {
      const code = await this.fire('on-before-cutover');
      if (code === 0) return;
      this.log.warn({ exitCode: code }, 'on-before-cutover hook failed: holding the cut-over, asking again in 1s');
      const until = Date.now() + 1000;
      while (Date.now() < until) {
        this.controls.throwIfAborted();
        await this.pump!.applyAvailable(Math.max(1, until - Date.now()));
        await this.controls.sleep(Math.min(100, Math.max(0, until - Date.now())));
      }
    }
  }

  /** Returns true once the swap happened. Failed attempts restore the pre-cut-over state and back off. */
  private async cutOver(session: DialectSession, plan: CopyPlan, names: ArtefactNames): Promise<boolean> {
    const pump = this.pump!;
    const retries = Math.max(1, this.options.cutoverRetries);
    for (let attempt = 1; attempt <= retries; attempt++) {
      this.controls.throwIfAborted();
      await this.catchUp();
      await this.holdWhileHookRefuses();
      this.setState('cutting-over');
      this.cutoverAttempts = attempt;
      const markerId = `cutover-${this.id}-${attempt}`;
      const started = Date.now();
      try {
        await session.cutover.swap(plan, names, {
          lockTimeoutMs: this.options.cutoverLockTimeoutMs,
          drainUnderLock: () => pump.applyUntilMarker(markerId, this.options.cutoverLockTimeoutMs),
          killBlockersAfterMs: this.options.killBlockersAfterMs,
          log: this.log,
        });
        this.log.info({ attempt, blockedMs: Date.now() - started, backup: names.backup }, 'cut-over done');
        this.options.observer?.cutoverAttempt?.('ok', (Date.now() - started) / 1000);
        return true;
      } catch (err) {
        this.options.observer?.cutoverAttempt?.('failed', (Date.now() - started) / 1000);
        if (!(err instanceof CutoverAttemptError)) throw err;
        const backoffMs = Math.min(30_000, 500 * 2 ** (attempt - 1));
        this.log.warn({ attempt, of: retries, reason: err.message, retryInMs: backoffMs }, 'cut-over attempt failed; the original is as it was');
        if (attempt === retries) break;
        this.setState('catching-up');
        const until = Date.now() + backoffMs;
        while (Date.now() < until) {
          this.controls.throwIfAborted();
          await pump.applyAvailable(Math.min(APPLY_BUDGET_MS, until - Date.now()));
          await this.controls.sleep(Math.min(100, Math.max(0, until - Date.now())));
        }
      }
    }
    throw new ShadowshiftError(
      `cut-over failed ${retries} times (see the warnings above); the original table is untouched. ` +
        'Find what holds locks on the table (long transactions), then run again, or raise --cutover-lock-timeout / --cutover-retries',
    );
  }
}
