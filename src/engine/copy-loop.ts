// The copy: one loop, one writer (docs/ARCHITECTURE.md, "One job", step 4). Before every
// chunk the event pump applies what the stream has delivered, so events have priority;
// then one chunk `(after, upTo]` is copied, its size adapted to the chunk time. Where the
// copy stands (range, watermark, rows) is what a checkpoint records and a resume takes back.
//
// Where the stream exported the snapshot of its start (PostgreSQL), the chunks read in it
// and nothing is applied until the copy is done (invariant 3): the snapshot phase.
// Rounds of several chunks (--copy-threads) read the same snapshot. It ends
// early when it has lasted --copy-snapshot-max, when the slot holds more WAL than the
// slot-lag limit (applying is the only way to free it), or when the snapshot is lost; the
// rest of the copy then locks rows while the stream is applied.

import type { Checkpoint, CopyPlan, DialectSession, KeyRange, Value } from '../dialects/dialect.js';
import type { JobControls } from '../control/job-controls.js';
import { CopyRate } from '../control/progress.js';
import type { Throttler } from '../control/throttler.js';
import type { Logger } from '../util/logger.js';
import { TransientDatabaseError } from '../util/errors.js';
import { RetryBudget, backoffMs } from '../util/reconnect.js';
import { APPLY_BUDGET_MS, type EventPump } from './event-pump.js';
import type { ChunkSizer } from './chunk-sizer.js';
import type { WaitWatcher } from './wait-watcher.js';
import type { Checkpointer } from './checkpointing.js';
import type { AlterJobOptions } from './job.js';
import { decodeKey, encodeKey } from './checkpoint-codec.js';
import { sameKey } from './keys.js';
import { DEFAULT_COPY_SNAPSHOT_MAX_SECONDS, DEFAULT_COPY_THREADS } from './settings.js';
import type { LiveThrottleSettings } from '../control/throttle-signals.js';

const CHUNK_RETRIES = 5;

/** Transient failures are retried for a few attempts and through a database restart (util/reconnect.ts). */
export async function withRetries<T>(
  what: string,
  work: () => Promise<T>,
  job: { log: Logger; controls: JobControls; pump: EventPump | null },
  /** Runs before each new attempt (a chunk: apply what the stream brought, as between chunks). */
  beforeRetry?: () => Promise<unknown>,
): Promise<T> {
  const budget = new RetryBudget(CHUNK_RETRIES);
  for (let attempt = 1; ; attempt++) {
    try {
      return await work();
    } catch (err) {
      if (!(err instanceof TransientDatabaseError) || !budget.retryAfter(attempt)) throw err;
      job.log.warn({ err: err.message, attempt }, `${what} failed; retrying`);
      if (attempt >= 2) await job.pump?.suspend(err, `${what} keeps failing`);
      await job.controls.sleep(backoffMs(attempt, 400));
      job.controls.throwIfAborted();
      await beforeRetry?.();
    }
  }
}

/** Waits for every chunk of a round, then fails with the first failure: none is left running behind the job's cleanup. */
async function allCommitted<T>(work: Array<Promise<T>>): Promise<T[]> {
  const settled = await Promise.allSettled(work);
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) throw failed.reason;
  return settled.map((s) => (s as PromiseFulfilledResult<T>).value);
}

/** What the copy takes from the job. */
export interface CopyJob {
  log: Logger;
  controls: JobControls;
  sizer: ChunkSizer;
  waits: WaitWatcher;
  options: Pick<AlterJobOptions, 'observer' | 'testHooks' | 'copyThreads' | 'copyRowLocks'>;
  /** The settings `ctl set` changes (copy-snapshot-max, nice-ratio). */
  liveSettings: Pick<LiveThrottleSettings, 'copySnapshotMaxSeconds' | 'niceRatio'>;
  /** Null until the throttle has started. */
  throttler(): Throttler | null;
  checkpointer(): Checkpointer | null;
}

export class CopyLoop {
  readonly rate = new CopyRate();
  rowsCopied = 0;
  ceiling: Value[] | null = null;
  watermark: Value[] | null = null;
  /** Ceiling and watermark mean something (read, or from the checkpoint): before, a checkpoint would say "empty table". */
  rangeKnown = false;

  constructor(private readonly job: CopyJob) {}

  /** Range, watermark and counters from the checkpoint, before anything can save one. */
  takeProgressFrom(cp: Checkpoint): void {
    this.ceiling = decodeKey(cp.ceiling);
    this.watermark = decodeKey(cp.watermark);
    this.rangeKnown = true;
    this.rowsCopied = cp.rowsCopied;
  }

  /** Where the copy stands, as a checkpoint records it; null until the range is known. */
  position(): Pick<Checkpoint, 'watermark' | 'ceiling' | 'rowsCopied'> | null {
    if (!this.rangeKnown) return null;
    return { watermark: encodeKey(this.watermark), ceiling: encodeKey(this.ceiling), rowsCopied: this.rowsCopied };
  }

  /**
   * Copies every chunk after the watermark (all of them unless `resumed`), applying the
   * stream before each. Resolves to whether every row was copied at the stream's start
   * (the snapshot phase never ended early): the shadow then holds the original exactly as
   * of the stream's start, with no row ahead of the stream.
   */
  async run(session: DialectSession, plan: CopyPlan, pump: EventPump, resumed: Checkpoint | null, startedAt: number): Promise<{ atStreamStart: boolean }> {
    const snapshotSince = Date.now();
    session.copier.rowLocks = Boolean(this.job.options.copyRowLocks);
    if (pump.copySnapshotState()) this.job.log.info("copying the table as of the job's start, without row locks; the changes since then are applied after the copy");
    await this.copyAll(session, plan, pump, resumed, startedAt, snapshotSince);
    const atStreamStart = pump.copySnapshotState() === 'held';
    await pump.endCopySnapshot('the copy is complete');
    return { atStreamStart };
  }

  /** Why the snapshot phase must end before the next chunk, or null. */
  private snapshotPhaseOver(pump: EventPump, since: number): string | null {
    const state = pump.copySnapshotState();
    if (!state) return null;
    if (state === 'lost') return "the connection holding the copy's snapshot ended";
    const max = this.job.liveSettings.copySnapshotMaxSeconds ?? DEFAULT_COPY_SNAPSHOT_MAX_SECONDS;
    if (Date.now() - since >= max * 1000) return `the copy has read at the snapshot for copy-snapshot-max (${max} s), which holds back vacuum`;
    const throttle = this.job.throttler()?.active();
    if (throttle?.signal === 'slot-lag') return `${throttle.reason}: only applying the changes frees it`;
    return null;
  }

  private async copyAll(session: DialectSession, plan: CopyPlan, pump: EventPump, resumed: Checkpoint | null, startedAt: number, snapshotSince: number): Promise<void> {
    const { log, controls, sizer, options } = this.job;
    const retrying = <T>(what: string, work: () => Promise<T>) => withRetries(what, work, { log, controls, pump });
    const threads = Math.max(1, Math.floor(options.copyThreads ?? DEFAULT_COPY_THREADS));
    let ceiling: Value[] | null;
    let after: Value[] | null = null;
    if (resumed) {
      // takeProgressFrom() set the range and the counters when the job started.
      ceiling = this.ceiling;
      after = this.watermark;
      log.info({ rowsCopied: this.rowsCopied, watermark: resumed.watermark }, 'resuming the copy after the checkpoint\'s watermark, not from the start');
    } else {
      ceiling = (await retrying('reading the key range', () => session.copier.keyBounds(plan)))?.max ?? null;
      this.ceiling = ceiling;
      this.watermark = after;
      this.rangeKnown = true;
    }
    if (!ceiling || (after && sameKey(after, ceiling))) {
      log.info(ceiling ? 'the copy was already complete' : 'the table is empty; nothing to copy');
      return;
    }
    this.rate.record(this.rowsCopied);
    let lastRound = { endedAt: 0, ms: 0 };
    for (;;) {
      controls.throwIfAborted();
      await this.job.checkpointer()?.maybe();
      if (this.job.throttler()?.hibernating()) {
        // Critical load with --critical-load-hibernate: even the stream rests.
        await controls.sleep(250);
        continue;
      }
      const over = this.snapshotPhaseOver(pump, snapshotSince);
      if (over) await pump.endCopySnapshot(over);
      if (!pump.copySnapshotState()) await pump.applyAvailable(APPLY_BUDGET_MS);
      if (this.job.throttler()?.reason()) {
        await controls.sleep(100);
        continue;
      }
      // --nice-ratio: the rest after the last round, in short sleeps so that the stream
      // keeps being applied and a new ratio (`ctl set`) counts at once.
      const restLeft = lastRound.endedAt + (this.job.liveSettings.niceRatio ?? 0) * lastRound.ms - Date.now();
      if (restLeft > 0) {
        await controls.sleep(Math.min(restLeft, 100));
        continue;
      }
      // A round: up to --copy-threads consecutive chunks at once, each on its own
      // connection. Their ranges are disjoint, so each chunk's argument (invariant 3) holds
      // on its own; the stream is applied only between rounds, so copy and apply still
      // never overlap; the watermark moves only once the whole round has committed.
      const ranges: KeyRange[] = [];
      for (let from = after; ranges.length < threads && !(from && sameKey(from, ceiling)); ) {
        const f = from;
        const end = await retrying('finding the end of a chunk', () => session.copier.chunkEnd(plan, f, sizer.size, ceiling));
        ranges.push({ after: f, upTo: end });
        from = end;
      }
      const copyOne = async (range: KeyRange) => {
        const started = Date.now();
        // Between attempts the stream is applied, as between chunks: a chunk whose rows
        // collided with a change not applied yet (mysql-copier.ts) then meets it applied.
        // Never while other chunks of the round are open: only with one chunk a round.
        const { rowsCopied } = await withRetries('copying a chunk', () => session.copier.copyChunk(plan, range, options.testHooks?.beforeChunkCommit), { log, controls, pump }, () =>
          ranges.length === 1 && !pump.copySnapshotState() ? pump.applyAvailable(APPLY_BUDGET_MS) : Promise.resolve(),
        );
        return { rows: rowsCopied, ms: Date.now() - started };
      };
      const roundStarted = Date.now();
      const copied = await this.job.waits.during('copying', () => allCommitted(ranges.map(copyOne)));
      lastRound = { endedAt: Date.now(), ms: Date.now() - roundStarted };
      for (const c of copied) {
        sizer.observe(Math.max(c.rows, 1), c.ms);
        options.observer?.chunkCopied?.(c.rows, c.ms / 1000);
        this.rowsCopied += c.rows;
      }
      this.rate.record(this.rowsCopied);
      const end = ranges[ranges.length - 1]!.upTo!;
      after = this.watermark = end;
      await this.job.checkpointer()?.maybe();
      // The chunk in flight when an abort came has committed: no further step of the copy.
      controls.throwIfAborted();
      if (sameKey(end, ceiling)) break;
    }
    log.info({ rowsCopied: this.rowsCopied, seconds: Math.round((Date.now() - startedAt) / 1000) }, 'copy complete');
  }
}
