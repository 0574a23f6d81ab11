// One online ALTER of one table, as a state machine:
//   preflight → shadow → stream → copy ⇄ apply → catch-up → (postponed) → cut-over → cleanup
// The job decides policy only; every statement comes from the dialect. A revert
// (options.revert) is the same machine resumed at its catch-up, the old table its shadow
// (revert-point.ts, revert-preflight.ts).
//
// Why it is over 400 lines (about 490): it is one thing, the run's phase sequence (execute)
// and the state the phases share, which status() reads all of; a revert is this same
// sequence with a few branches (where it starts, what it keeps, what it records after the
// swap), not a second machine. Everything that is a role of its own lives beside it:
// job-prepare.ts (what prepare() finds, the shadow and its plan), job-options.ts (options
// and result), plan-report.ts, copy-loop.ts, index-build.ts, checksum-runs.ts,
// cutover-loop.ts (catch-up, postponed, hook hold, attempts), throttle-wiring.ts,
// checkpointing.ts, resume.ts, cleanup.ts, swap-proof.ts, revert-point.ts, revert-steps.ts.

import { randomBytes } from 'node:crypto';
import type {
  AlterAnalysis,
  ArtefactNames,
  Checkpoint,
  CheckpointPhase,
  CopyPlan,
  DialectSession,
  TableInfo,
  TableRef,
} from '../dialects/dialect.js';
import { openDialect } from '../dialects/open-dialect.js';
import { AbortedError, PreflightError, UsageError } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import { JobControls } from '../control/job-controls.js';
import type { JobThrottle, LiveThrottleSettings } from '../control/throttle-signals.js';
import type { HookEvent } from '../control/hooks.js';
import type { AlterPlanReport } from './plan-report.js';
import { ChunkSizer } from './chunk-sizer.js';
import { EventPump } from './event-pump.js';
import type { JobPhase, JobState, JobStatus } from './job-state.js';
import { jobTables, passiveWait, WaitWatcher } from './wait-watcher.js';
import { ChecksumRuns } from './checksum-runs.js';
import { failuresOf, runChecks } from './preflight.js';
import { buildDeferredIndexes, buildsBeforeDrain } from './index-build.js';
import { catchUp, CutoverLoop } from './cutover-loop.js';
import { CopyLoop, withRetries } from './copy-loop.js';
import { proveSwap } from './swap-proof.js';
import { abortLeftBehind, cleanUpJob } from './cleanup.js';
import { Checkpointer, DEFAULT_CHECKPOINT_INTERVAL_SECONDS } from './checkpointing.js';
import { DEFAULT_MAX_SLOT_LAG_BYTES, liveThrottleSettings, startJobThrottle } from './throttle-wiring.js';
import { resultAfterSwap, SWAPPED_BEFORE_THE_STOP } from './resume.js';
import { fanOutObserver, type AlterJobOptions, type AlterResult, type JobObserver } from './job-options.js';
import { DEFAULT_COPY_SNAPSHOT_MAX_SECONDS } from './settings.js';
import type { RevertPlan } from './revert-preflight.js';
import { prepareAlter, prepareRevertJob, shadowPlan } from './job-prepare.js';
import { describeRevert, wayBackNames } from './revert-point.js';
import { afterStoppedSwap, afterSwap, closePreviousWindow } from './revert-steps.js';

export type { AlterJobOptions, AlterResult, JobObserver } from './job-options.js';
export type { AlterPlanReport };


export class AlterJob {
  readonly id = randomBytes(4).toString('hex');
  readonly controls: JobControls;
  private readonly log: Logger;
  private state: JobState = 'preflight';
  private phase: JobPhase = 'preflight';
  /** What the job waits for outside itself (status `waitingFor`, log, progress line). */
  private readonly waits: WaitWatcher;
  private session: DialectSession | null = null;
  private ref: TableRef | null = null;
  private original: TableInfo | null = null;
  private analysis: AlterAnalysis | null = null;
  private previewPlan: CopyPlan | null = null;
  private names: ArtefactNames | null = null;
  private pump: EventPump | null = null;
  private readonly sizer: ChunkSizer;
  private readonly copy: CopyLoop;
  private readonly checksums: ChecksumRuns;
  private cutover: CutoverLoop | null = null;
  /** Set once the shadow is the table: from then on the old table is never dropped by a failing job. */
  private swapped = false;
  private error: string | null = null;
  private startedAt = Date.now();
  private jobThrottle: JobThrottle | null = null;
  private checkpoint: Checkpoint | null = null;
  private checkpointer: Checkpointer | null = null;
  /** The phase a checkpoint records (where a resume continues); `phase` is the finer one status shows. */
  private checkpointPhase: CheckpointPhase = 'copying';
  /** --resume of a job whose interrupted cut-over had swapped: only its finish is left. */
  private resumeAfterSwap = false;
  /** --resume, or resumeIfSameAlter found this ALTER's checkpoint. */
  private resuming: boolean;
  /** Taken by prepare() on --resume (before it ends the stopped run's statements), else by execute(). */
  private jobLockHeld = false;
  /** A revert (options.revert): the old table is the shadow, the stream starts at the swap. */
  private revert: RevertPlan | null = null;
  /** What prepareWayBack made before the swap (a revertible job or a revert), until the swap: dropped if it does not come. */
  private wayBack: ArtefactNames | null = null;
  /** The table has a revert point of an earlier ALTER: this job closes its window when it starts. */
  private closesRevertWindow = false;
  readonly liveSettings: LiveThrottleSettings;

  private readonly options: AlterJobOptions;
  /** Observers added after construction (`migrate --http`'s dashboard), told after options.observer. */
  private readonly observers = new Set<JobObserver>();

  constructor(options: AlterJobOptions) {
    this.options = options = { ...options, observer: fanOutObserver(options.observer, this.observers) };
    this.log = options.log.child({ job: this.id });
    this.controls = new JobControls(options.postponeCutoverFlagFile);
    this.resuming = Boolean(options.resume);
    this.sizer = new ChunkSizer({ targetMs: options.chunkTimeMs, fixedSize: options.chunkSize });
    this.waits = new WaitWatcher({
      log: this.log,
      observe: async () => (this.session ? this.session.observeWaits(jobTables(this.ref, this.names)) : null),
      passive: () => passiveWait({ phase: this.phase, snapshotWait: this.cutover?.snapshotWait ?? null, throttle: this.jobThrottle?.throttler.active() ?? null, controls: this.controls }),
    });
    this.liveSettings = liveThrottleSettings(options);
    this.copy = new CopyLoop({
      log: this.log,
      controls: this.controls,
      sizer: this.sizer,
      waits: this.waits,
      options,
      liveSettings: this.liveSettings,
      throttler: () => this.jobThrottle?.throttler ?? null,
      checkpointer: () => this.checkpointer,
    });
    this.checksums = new ChecksumRuns({
      jobId: this.id,
      options,
      controls: this.controls,
      log: this.log,
      run: (work) => this.inPhase('checksum', () => this.withRetries('the checksum', work)),
    });
  }

  /** Tells `observer` about the job from now on too; returns the function that stops it. */
  observe(observer: JobObserver): () => void {
    this.observers.add(observer);
    return () => void this.observers.delete(observer);
  }

  throttledSeconds(): Map<string, number> {
    return this.jobThrottle?.throttler.secondsThrottled() ?? new Map();
  }

  replicaLagSeconds(): number | null {
    return this.jobThrottle?.replicaLag?.lastLagSeconds ?? null;
  }

  /** The last lag read from each watched replica (URL without credentials). */
  replicaLags(): Map<string, number> {
    return new Map(this.jobThrottle?.replicaLag?.lags ?? []);
  }

  /** Re-reads throttle signals at once, so an operator's command takes effect now. */
  async refreshThrottle(): Promise<void> {
    await this.jobThrottle?.throttler.poll();
  }

  get chunkSizer(): ChunkSizer {
    return this.sizer;
  }

  status(): JobStatus {
    const estimated = Math.max(this.original?.estimatedRows ?? 0, this.copy.rowsCopied);
    const copying = this.state === 'copying';
    return {
      jobId: this.id,
      state: this.state,
      phase: this.phase,
      waitingFor: this.waits.waitingFor(),
      lastCheckpoint: this.checkpointer?.last ?? null,
      table: this.ref ? `${this.ref.schema}.${this.ref.name}` : this.options.table,
      shadowTable: this.names?.shadow ?? null,
      backupTable: this.names?.backup ?? null,
      rowsCopied: this.copy.rowsCopied,
      rowsEstimated: estimated,
      rowsPerSecond: copying ? this.copy.rate.rowsPerSecond() : null,
      eventsApplied: this.pump?.eventsApplied ?? 0,
      backlog: this.pump?.backlog() ?? 0,
      lagSeconds: this.pump?.lagSeconds() ?? null,
      throttled: this.jobThrottle?.throttler.reason() ?? (this.controls.manualThrottle ? 'manual: ctl throttle' : null),
      copyAtStreamStart: this.pump?.copySnapshotState() === 'held',
      etaSeconds: copying ? this.copy.rate.etaSeconds(this.copy.rowsCopied, estimated) : this.state === 'done' ? 0 : null,
      chunkSize: this.sizer.size,
      cutoverAttempts: this.cutover?.attempts ?? 0,
      repairedChunks: this.checksums.tally.repairedChunks,
      snapshotWait: this.cutover?.snapshotWait ?? null,
      swapped: this.swapped,
      error: this.error,
    };
  }

  private setState(state: JobState): void {
    if (this.state === state) return;
    this.log.info({ from: this.state, to: state }, `state: ${state}`);
    this.state = this.phase = state;
    if (state === 'copying' || state === 'catching-up' || state === 'postponed' || state === 'cutting-over') this.checkpointPhase = state;
    this.options.observer?.stateChanged?.(state);
  }

  /** Runs `work` as `phase` (within the state), watching what it waits for on other sessions. */
  private async inPhase<T>(phase: JobPhase, work: () => Promise<T>): Promise<T> {
    const before = this.phase;
    this.phase = phase;
    try {
      return await this.waits.during(phase, work);
    } finally {
      if (this.phase === phase) this.phase = before === phase ? this.state : before;
    }
  }

  /** Connects, inspects, and leaves the rest to job-prepare.ts (the resume, the revert, the checks, the preview). Changes nothing. */
  async prepare(): Promise<AlterPlanReport> {
    if (!this.options.revert && !this.options.alter.trim()) throw new UsageError('--alter is empty; give the ALTER TABLE clauses, e.g. --alter "ADD COLUMN x INT"');
    const session = (this.session = await openDialect(this.options.connection, this.log));
    const checks = session.preflightChecks();
    const typed = (this.ref = session.resolveTable(this.options.table));
    const outcomes = await runChecks(checks, 'connect', { table: typed, info: null, alter: null, plan: null });

    const info = await session.inspectTable(typed);
    if (!info) {
      throw new UsageError(`table ${typed.schema}.${typed.name} does not exist; check --table and the database in the URL`);
    }
    // From here on the name as the server stores it (MySQL lower_case_table_names=1 folds
    // what was typed): artefacts, the stream's filter, the job lock and checkpoints use it.
    this.ref = info.ref;
    this.original = info;
    const context = { jobId: this.id, session, checks, info, outcomes, options: this.options, log: this.log };
    const p = this.options.revert ? await prepareRevertJob(context) : await prepareAlter(context, this.resuming);
    this.analysis = p.analysis;
    this.previewPlan = p.previewPlan;
    this.checkpoint = p.checkpoint;
    this.resuming = p.resuming;
    this.resumeAfterSwap = p.resumeAfterSwap;
    this.jobLockHeld = p.jobLockHeld;
    this.revert = p.revert;
    this.closesRevertWindow = p.closesRevertWindow;
    return p.report;
  }

  /** The id the revert point of this job's swap carries: the same in every run of the job (a resume's, a revert's re-run). */
  private get pointJobId(): string {
    return this.checkpoint?.jobId ?? this.id;
  }

  /** The ALTER the job applies; a revert's, said in words. */
  private get alterText(): string {
    return this.revert ? describeRevert(this.revert.point) : this.options.alter;
  }

  /** What the dashboard's header shows: the ALTER, the dialect and the server (null before prepare connects). */
  describe(): { alter: string; dialect: string | null; server: string | null } {
    const server = this.session?.server;
    return { alter: this.alterText, dialect: server?.dialect ?? null, server: server ? `${server.flavor} ${server.version}` : null };
  }

  /** Runs the job to the end. `prepare()` must have passed. Cleans up on every exit path. */
  async execute(report: AlterPlanReport): Promise<AlterResult> {
    const failures = failuresOf(report.checks);
    if (failures.length > 0 || !report.ok) throw new PreflightError(failures);
    const session = this.session;
    if (!session || !this.ref || !this.original || !this.analysis || (!this.previewPlan && !this.resumeAfterSwap)) {
      throw new Error('execute() called before a successful prepare()');
    }

    this.startedAt = Date.now();
    this.waits.start();
    if (!this.jobLockHeld) await session.acquireJobLock(this.ref);
    this.jobLockHeld = true;
    if (this.closesRevertWindow && session.revert) await closePreviousWindow(session.revert, session, this.ref, this.log);
    session.jobLockLost(this.ref).catch((err: Error) => this.controls.fail(err));
    const resumed = this.checkpoint;
    // A resumed job is where its checkpoint says from the first moment: its status counts
    // on from there, and a checkpoint it saves before its copy loop runs (a failure while
    // the stream starts) must not write back "nothing copied, empty table".
    if (resumed) {
      this.copy.takeProgressFrom(resumed);
      this.checkpointPhase = resumed.phase ?? 'copying';
    }
    const checkpointer = (this.checkpointer = new Checkpointer(
      // A revert always starts again from the swap (revert-point.ts): it keeps no checkpoint.
      this.revert ? undefined : session.checkpoints,
      (this.options.checkpointIntervalSeconds ?? DEFAULT_CHECKPOINT_INTERVAL_SECONDS) * 1000,
      () => this.checkpointState(),
      this.log,
    ));
    let stoppedBy: unknown = null;
    try {
      if (resumed && this.resumeAfterSwap) return await this.finishAfterSwap(session, resumed);
      const names = (this.names = resumed ? resumed.names : session.artefactNames(this.ref, this.id, { resumable: this.resumable, alter: this.options.alter }));
      const plan = await shadowPlan({ session, original: this.original, analysis: this.analysis, names, alter: this.options.alter, resumed: Boolean(resumed), revert: Boolean(this.revert), deferIndexes: report.deferredIndexes === 'on', log: this.log });

      const streamJobId = resumed?.jobId ?? this.id;
      // A resume has no snapshot of the stream's start to copy at (CopyLoop.run).
      const exportCopySnapshot = !resumed && !this.options.copyRowLocks && (this.options.copySnapshotMaxSeconds ?? DEFAULT_COPY_SNAPSHOT_MAX_SECONDS) > 0;
      this.pump = new EventPump(() => session.openChangeStream(plan, names, streamJobId, { exportCopySnapshot }), session.applier, plan, this.log, () => this.controls.wake());
      // Wherever the job applies the stream, a checkpoint every interval; not under the cut-over's lock.
      this.pump.afterBatch = () => (this.state === 'cutting-over' ? Promise.resolve() : checkpointer.maybe());
      // A revert replays every write since the swap: one the old table cannot hold may have been fixed since.
      if (this.revert) this.pump.recoverRows = (keys) => session.checksummer.recopyKeys(plan, keys);
      await this.options.testHooks?.beforeStreamStart?.();
      const pump = this.pump;
      // PostgreSQL: creating the slot waits for every transaction writing at that moment.
      const position = await this.waits.during('preflight', () => pump.start(resumed?.streamPosition));
      this.log.info({ position, resumed: Boolean(resumed) }, resumed ? 'change stream resumed from the checkpoint' : 'change stream started');
      this.jobThrottle = startJobThrottle({ session, names, options: this.options, live: this.liveSettings, controls: this.controls, log: this.log });
      // A signal that holds at the start (a flag file, ctl throttle, a loaded server) holds the first chunk too.
      await this.jobThrottle?.throttler.firstReading();
      await this.fire('on-start');
      await this.fire('on-validated');

      this.setState('copying');
      // A revert's shadow is the old table, which holds every row as of the swap.
      const copied = this.revert ? { atStreamStart: false } : await this.copy.run(session, plan, pump, resumed, this.startedAt);
      // Each phase change is saved at once: a crash after the copy re-copies nothing.
      await checkpointer.now();
      await this.finishShadow(session, plan, buildsBeforeDrain(copied.atStreamStart, this.previewPlan));
      await this.fire('on-copy-complete');
      this.setState('catching-up');
      await checkpointer.now();
      await this.options.testHooks?.catchingUp?.();
      const since = Date.now();
      await catchUp(pump, this.controls).then(() => this.log.info({ seconds: (Date.now() - since) / 1000 }, 'caught up with the change stream'));
      await this.verify(session, plan);
      const cutover = (this.cutover = new CutoverLoop({
        jobId: this.id,
        session,
        plan,
        names,
        pump,
        controls: this.controls,
        log: this.log,
        waits: this.waits,
        checkpointer,
        options: this.options,
        expectedShadow: this.previewPlan?.shadow,
        raiseCounter: !this.analysis.setsAutoIncrement,
        setState: (state) => this.setState(state),
        fire: (event) => this.fire(event),
        verify: () => this.verify(session, plan),
        lastChecksumAt: () => this.checksums.lastAt,
      }));
      await cutover.waitWhilePostponed();
      await checkpointer.now();
      // The way back, made before the swap so that it sees every write after it (RevertSupport.prepareWayBack).
      // Not with --drop-old-table: the way back needs the table the swap replaces.
      const revertSupport = (this.revert || this.options.revertible) && !this.options.dropOldTable ? session.revert : undefined;
      if (revertSupport) {
        const wayBack = (this.wayBack = wayBackNames(session, this.ref, this.pointJobId));
        // PostgreSQL: creating the slot waits for every transaction writing at that moment (status waitingFor says which).
        await this.waits.during('cutting-over', () => revertSupport.prepareWayBack({ schema: this.ref!.schema, name: names.shadow }, wayBack, this.ref!));
      }
      const cutoverLockedMs = await cutover.run();
      this.swapped = true;
      await this.options.testHooks?.afterSwap?.();
      const proven = await proveSwap({ pump: this.pump, table: this.status().table, backup: `${this.ref.schema}.${names.backup}`, keyColumns: plan.key.map((k) => k.source), log: this.log });
      if (revertSupport) {
        await afterSwap({
          support: revertSupport, wayBack: this.wayBack, isRevert: Boolean(this.revert), log: this.log,
          table: this.ref, jobId: this.pointJobId, oldTable: names.backup, afterSwap: cutover.afterSwap ?? proven, undone: this.revert?.point ?? null,
          alter: this.options.alter, renamedColumns: this.analysis.renamedColumns, windowSeconds: this.options.revertWindowSeconds,
          maxLogBytes: session.streamHoldsServerLog ? (this.options.maxSlotLagBytes ?? DEFAULT_MAX_SLOT_LAG_BYTES) : undefined,
        });
      }
      this.setState('done');
      if (checkpointer.enabled) await session.checkpoints.remove(this.ref).catch((e: Error) => this.log.warn({ err: e.message }, 'could not remove the checkpoint'));
      await this.fire('on-success');
      return {
        table: this.status().table,
        backupTable: this.options.dropOldTable ? null : names.backup,
        rowsCopied: this.copy.rowsCopied,
        eventsApplied: this.pump.eventsApplied,
        cutoverAttempts: cutover.attempts,
        cutoverLockedMs,
        seconds: Math.round((Date.now() - this.startedAt) / 100) / 10,
        repairedChunks: this.checksums.tally.repairedChunks,
        checksum: this.checksums.tally.summary(),
      };
    } catch (err) {
      stoppedBy = err;
      this.error = (err as Error).message;
      this.setState(err instanceof AbortedError ? 'aborted' : 'failed');
      this.options.observer?.error?.('job');
      await this.fire('on-failure');
      throw err;
    } finally {
      await this.jobThrottle?.stop();
      const swapped = this.swapped;
      if (this.wayBack && !swapped) {
        await session.revert?.dropWayBack(this.wayBack).catch((e: Error) => this.log.warn({ err: e.message }, 'could not drop the way back prepared for the swap; `shadowshift cleanup --execute` removes it'));
      }
      const left = await this.inPhase('cleanup', () => cleanUpJob({
        session,
        ref: this.ref,
        names: this.names,
        pump: this.pump,
        // Before the swap the backup name does not exist; after it, it is the user's
        // old table and is only dropped when asked to and the job succeeded.
        keepBackup: !(swapped && this.state === 'done' && this.options.dropOldTable),
        keepForResume: !this.revert && !swapped && this.resumable && this.state !== 'done' && (this.state === 'failed' || this.controls.keepStateOnAbort),
        // A revert's shadow is the user's old table: never dropped; and until its swap the
        // stream it reads is the way back, which the revert point still needs.
        keepShadow: this.revert !== null,
        keepStream: this.revert !== null && !swapped,
        checkpoints: Boolean(this.checkpointer?.enabled),
        saveCheckpoint: () => this.checkpointer?.now() ?? Promise.resolve(),
        swapped,
        log: this.log,
      }));
      this.waits.stop();
      const leftBehind = abortLeftBehind(stoppedBy, left);
      if (leftBehind) throw leftBehind;
    }
  }

  /** Runs the on-status hook (the CLI calls this every --status-interval). */
  async reportStatus(): Promise<void> {
    await this.fire('on-status');
  }

  private async fire(event: HookEvent): Promise<number> {
    if (!this.options.hooks) return 0;
    return this.options.hooks.run(event, { dialect: this.session?.name ?? '', alter: this.alterText, status: this.status() });
  }

  async close(): Promise<void> {
    await this.session?.close();
    this.session = null;
  }

  private withRetries<T>(what: string, work: () => Promise<T>): Promise<T> {
    return withRetries(what, work, { log: this.log, controls: this.controls, pump: this.pump });
  }

  private get resumable(): boolean {
    return Boolean(this.options.resumable || this.resuming);
  }

  /** What a checkpoint saved now holds; null until it would mean something. */
  private checkpointState(): Omit<Checkpoint, 'version' | 'savedAt'> | null {
    const copy = this.copy.position();
    if (!copy || !this.names || !this.ref || !this.pump) return null;
    // Until the resumed stream has started, every event up to the checkpoint's position is still all that is applied.
    const streamPosition = this.pump.appliedPosition || this.checkpoint?.streamPosition;
    if (!streamPosition) return null;
    const jobId = this.checkpoint?.jobId ?? this.id;
    return { jobId, table: this.ref, alter: this.options.alter, names: this.names, streamPosition, ...copy, phase: this.checkpointPhase };
  }

  /** The interrupted cut-over had swapped: the new table is live; what is left is removing the job's working artefacts. */
  private async finishAfterSwap(session: DialectSession, cp: Checkpoint): Promise<AlterResult> {
    const names = (this.names = cp.names);
    this.swapped = true;
    this.log.warn({ table: this.status().table, backup: names.backup }, SWAPPED_BEFORE_THE_STOP);
    await session.cutover.settleStoppedCutover?.(this.ref!, names, true, this.log);
    if (session.revert && (this.revert || this.options.revertible)) {
      await afterStoppedSwap({ support: session.revert, session, table: this.ref!, pointJobId: this.pointJobId, isRevert: Boolean(this.revert), log: this.log });
    }
    this.setState('done');
    await session.checkpoints.remove(this.ref!).catch((e: Error) => this.log.warn({ err: e.message }, 'could not remove the checkpoint'));
    await this.fire('on-success');
    return resultAfterSwap({
      table: this.status().table,
      backupTable: this.options.dropOldTable ? null : names.backup,
      rowsCopied: this.copy.rowsCopied,
      startedAt: this.startedAt,
      checksum: this.checksums.tally.summary(),
    });
  }

  /** Builds the deferred indexes while the stream keeps being applied. */
  private finishShadow(session: DialectSession, plan: CopyPlan, buildFirst: boolean): Promise<void> {
    return buildDeferredIndexes(session, plan, {
      buildFirst,
      pump: this.pump!,
      controls: this.controls,
      jobId: this.id, log: this.log,
      enterPhase: async () => {
        this.checkpointPhase = 'indexes';
        await this.checkpointer?.now();
      },
      run: (work) => this.inPhase('building-indexes', () => this.withRetries("building the new table's indexes", work)),
    });
  }

  private verify(session: DialectSession, plan: CopyPlan): Promise<void> {
    return this.checksums.verify(session, plan, this.pump!, this.sizer.size);
  }
}
