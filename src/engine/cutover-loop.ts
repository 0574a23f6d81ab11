// The way into the cut-over and its attempts: catch-up, the postponed wait, the
// on-before-cutover hook's hold, then attempts with retries and back-off. The stream is
// applied all the while (EventPump.applyWhile), so the drain under the lock stays short.
// The job (job.ts) decides when this runs; the dialect's Cutover writes every statement.

import type { ArtefactNames, CopyPlan, DialectSession, StreamPosition } from '../dialects/dialect.js';
import type { JobControls } from '../control/job-controls.js';
import type { HookEvent } from '../control/hooks.js';
import type { Logger } from '../util/logger.js';
import { CutoverAttemptError, ShadowshiftError, TransientDatabaseError } from '../util/errors.js';
import { APPLY_BUDGET_MS, type EventPump } from './event-pump.js';
import type { JobState } from './job-state.js';
import type { AlterJobOptions } from './job.js';
import type { Checkpointer } from './checkpointing.js';
import type { WaitWatcher } from './wait-watcher.js';
import { checkForeignKeys, waitForOlderSnapshots, type FenceMark, type SnapshotWait } from './cutover-checks.js';
import { BlockerKiller } from './blocker-killer.js';

/** Backlog under which the copy counts as caught up and the cut-over may start. */
const CAUGHT_UP_BACKLOG = 1000;

/** Applies the stream until the backlog is small, then what has arrived meanwhile. */
export async function catchUp(pump: EventPump, controls: JobControls): Promise<void> {
  await pump.applyWhile(() => pump.backlog() > CAUGHT_UP_BACKLOG, controls, { noPause: true });
  await pump.applyAvailable(APPLY_BUDGET_MS);
}

/** What the cut-over takes from the job. */
export interface CutoverJob {
  jobId: string;
  session: DialectSession;
  plan: CopyPlan;
  names: ArtefactNames;
  pump: EventPump;
  controls: JobControls;
  log: Logger;
  waits: WaitWatcher;
  checkpointer: Checkpointer;
  options: Pick<
    AlterJobOptions,
    | 'cutoverRetries'
    | 'cutoverLockTimeoutMs'
    | 'killBlockersAfterMs'
    | 'cutoverSnapshotWaitMs'
    | 'postponeCutoverFlagFile'
    | 'checksumIntervalSeconds'
    | 'observer'
    | 'testHooks'
  >;
  /** What a native ALTER would leave (the preview): a shadow that differs is refused before any lock. */
  expectedShadow: CopyPlan['shadow'] | undefined;
  /** MySQL: raise the new table's AUTO_INCREMENT to the original's (not when the ALTER sets it). */
  raiseCounter: boolean;
  setState(state: JobState): void;
  fire(event: HookEvent): Promise<number>;
  /** The checksum (a no-op when it is off), run again every interval while postponed. */
  verify(): Promise<void>;
  /** When the checksum last finished (epoch ms; 0: never). */
  lastChecksumAt(): number;
}

export class CutoverLoop {
  /** The attempt under way or last made (status `cutoverAttempts`). */
  attempts = 0;
  /** Where the writes to the new table begin, when the dialect's swap says so (CutoverTiming.afterSwap). */
  afterSwap: StreamPosition | null = null;
  /** Sessions the attempt waits for before its lock (status `snapshotWait`), null when none. */
  snapshotWait: SnapshotWait | null = null;

  constructor(private readonly job: CutoverJob) {}

  /** While postponed the stream keeps being applied, so the shadow stays current. */
  async waitWhilePostponed(): Promise<void> {
    const { controls, options } = this.job;
    if (!controls.cutoverPostponed()) return;
    this.job.setState('postponed');
    this.job.log.info({ flagFile: options.postponeCutoverFlagFile }, 'cut-over postponed; remove the flag file or run `shadowshift ctl cutover` to proceed');
    await this.job.fire('on-postponed');
    await this.job.pump.applyWhile(() => controls.cutoverPostponed(), controls, {
      eachRound: async () => {
        await this.job.checkpointer.maybe();
        if (Date.now() - this.job.lastChecksumAt() > (options.checksumIntervalSeconds ?? 600) * 1000) await this.job.verify();
      },
    });
    this.job.setState('catching-up');
    await catchUp(this.job.pump, controls);
  }

  /** A non-zero on-before-cutover hook holds the cut-over; the stream keeps being applied meanwhile. */
  private async holdWhileHookRefuses(): Promise<void> {
    for (;;) {
      const code = await this.job.fire('on-before-cutover');
      if (code === 0) return;
      this.job.log.warn({ exitCode: code }, 'on-before-cutover hook failed: holding the cut-over, asking again in 1s');
      await this.job.pump.applyWhile(() => true, this.job.controls, { until: Date.now() + 1000 });
    }
  }

  /** Returns the locked milliseconds once the swap happened. Failed attempts restore the pre-cut-over state and back off. */
  async run(): Promise<number> {
    const { session, plan, names, pump, controls, log, options } = this.job;
    const retries = Math.max(1, options.cutoverRetries);
    const guard = { pump, controls, log, jobId: this.job.jobId };
    await this.job.waits.during('cutting-over', () => checkForeignKeys(guard, session.cutover, plan, names));
    const afterMs = options.killBlockersAfterMs;
    const killBlockers = afterMs === undefined ? undefined : new BlockerKiller({ afterMs, table: plan.original.ref.name, log });
    let lastReason = '';
    for (let attempt = 1; attempt <= retries; attempt++) {
      controls.throwIfAborted();
      await catchUp(pump, controls);
      await this.holdWhileHookRefuses();
      this.job.setState('cutting-over');
      // Saved before the lock: a resume must know to look for a swap that may have happened.
      await this.job.checkpointer.now();
      this.attempts = attempt;
      const markerId = `cutover-${this.job.jobId}-${attempt}`;
      // Writes are blocked from the lock request on, not while the attempt waits for old snapshots.
      let started = Date.now();
      let fence: FenceMark | null = null;
      try {
        const { lockedMs, afterSwap } = await this.job.waits.during('cutting-over', () => session.cutover.swap(plan, names, {
          beforeLock: async () => {
            fence = await waitForOlderSnapshots(guard, session.cutover, plan, options.cutoverSnapshotWaitMs ?? 60_000, (w) => (this.snapshotWait = w));
            await options.testHooks?.afterSnapshotWait?.();
            started = Date.now();
          },
          lockTimeoutMs: options.cutoverLockTimeoutMs,
          drainUnderLock: async () => {
            await pump.applyUntilMarker(markerId, options.cutoverLockTimeoutMs, { underLock: true });
            await options.testHooks?.afterCutoverDrain?.(attempt);
          },
          killBlockers,
          beforeSwapForTests: options.testHooks?.beforeSwap,
          beforeOwnNamesForTests: options.testHooks?.beforeOwnNames,
          expectedShadow: this.job.expectedShadow,
          raiseCounter: this.job.raiseCounter,
          log,
        }));
        // A snapshot taken between the last fence and the drain's end may miss changes applied
        // after it was taken: at most those applied since the fence. How long, and how many.
        const f = fence as FenceMark | null;
        const window = f && { snapshotWindowMs: Date.now() - f.at, eventsSinceFence: pump.eventsApplied - f.eventsApplied };
        log.info({ attempt, blockedMs: Date.now() - started, lockedMs, backup: names.backup, ...window }, 'cut-over done');
        options.observer?.cutoverAttempt?.('ok', (Date.now() - started) / 1000);
        this.afterSwap = afterSwap ?? null;
        return lockedMs;
      } catch (err) {
        options.observer?.cutoverAttempt?.('failed', (Date.now() - started) / 1000);
        // A connection lost before the swap (the server restarting) fails the attempt, not the job:
        // the dialects tell an ambiguous commit apart themselves and never report it as transient.
        if (!(err instanceof CutoverAttemptError) && !(err instanceof TransientDatabaseError)) throw err;
        lastReason = err.message;
        const backoffMs = Math.min(30_000, 500 * 2 ** (attempt - 1));
        log.warn({ attempt, of: retries, reason: err.message, retryInMs: backoffMs }, 'cut-over attempt failed; the original is as it was');
        if (attempt === retries) break;
        this.job.setState('catching-up');
        await pump.applyWhile(() => true, controls, { until: Date.now() + backoffMs });
      }
    }
    throw new ShadowshiftError(
      `cut-over failed ${retries} times (see the warnings above; the last: ${lastReason}); the original table is untouched. ` +
        'Find what holds locks on the table (long transactions), then run again, or raise --cutover-lock-timeout / --cutover-retries',
    );
  }
}
