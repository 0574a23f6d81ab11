// Moves changes from the stream into the shadow. It is the only writer of
// stream events, and the job calls it between chunks, so copy and apply never
// race on a row from two of our own connections (gh-ost's single writer).

import type { Applier, ChangeBatch, ChangeEvent, ChangeStream, CopyPlan, Row, StreamPosition, Value } from '../dialects/dialect.js';
import { CutoverAttemptError, DataLossError, ShadowshiftError, TransientDatabaseError } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import { RetryBudget, backoffMs } from '../util/reconnect.js';

const MAX_BATCH_EVENTS = 2000;
/** How long one round of applying takes at most before the job looks at its own work again. */
export const APPLY_BUDGET_MS = 1000;
/** The pause between rounds of a wait that keeps applying (a control ends it early). */
const WAIT_ROUND_PAUSE_MS = 100;
const APPLY_RETRIES = 5;
/** Rows one batch may take back from the original (EventPump.recoverRows) before the job gives up. */
const MAX_RECOVERED_ROWS = 1000;

const keyId = (values: Value[]) => JSON.stringify(values.map((v) => (Buffer.isBuffer(v) ? `0x${v.toString('hex')}` : v === null || v === undefined ? null : String(v))));

/**
 * `keys`, and every key an event of `events` moves a row between with one of them (an
 * update of the key: its old key must be taken back too), and the events that touch none.
 */
export function withoutRows(plan: CopyPlan, events: ChangeEvent[], keys: Value[][]): { keys: Value[][]; rest: ChangeEvent[] } {
  const keyOf = (row: Row) => plan.key.map((k) => row[k.source] ?? null);
  const touched = (e: ChangeEvent) => (e.kind === 'truncate' || e.kind === 'cascade' ? [] : e.kind === 'insert' ? [keyOf(e.after)] : e.kind === 'delete' ? [keyOf(e.before)] : [keyOf(e.after), ...(e.before ? [keyOf(e.before)] : [])]);
  const all = new Map(keys.map((k) => [keyId(k), k]));
  for (let grew = true; grew; ) {
    grew = false;
    for (const e of events) {
      const ks = touched(e);
      if (!ks.some((k) => all.has(keyId(k)))) continue;
      for (const k of ks) if (!all.has(keyId(k))) grew = Boolean(all.set(keyId(k), k));
    }
  }
  return { keys: [...all.values()], rest: events.filter((e) => !touched(e).some((k) => all.has(keyId(k)))) };
}

/** Reconnects in a row before the job gives up on the stream. */
const STREAM_RESTARTS = 5;

/** What the stream saw between the cut-over's drain marker and the swap (changesBeforeSwap). */
export type SwapWitness =
  | { t: 'seen'; events: ChangeEvent[]; afterSwap: StreamPosition | null }
  /** This stream cannot see the swap (PostgreSQL: it is not a step of its own). */
  | { t: 'blind' }
  /** The swap did not come through: the check could not be made. */
  | { t: 'lost'; reason: string };

/** What a wait that keeps applying needs of the job: its safe point, and a pause a control ends early (JobControls). */
export interface WaitControls {
  throwIfAborted(): void;
  sleep(ms: number): Promise<void>;
}

export interface ApplyWhileOptions {
  /** Wait at most until this moment (epoch ms): each round's apply and pause are cut to what is left. */
  until?: number;
  /** Runs in each round after the apply (postponed: a checkpoint, the checksum again). */
  eachRound?: () => Promise<void>;
  /** Ends a round's pause early (the work the job waits for has settled). */
  pauseEndsWith?: Promise<unknown>;
  /** No pause between rounds (the catch-up: apply as fast as the stream delivers). */
  noPause?: boolean;
}

export class EventPump {
  eventsApplied = 0;
  /** Every event up to here is applied: a restarted stream (or a resume) begins here. */
  appliedPosition: StreamPosition = '';
  private stream: ChangeStream | null = null;
  private readonly seenMarkers = new Set<string>();
  private streamError: Error | null = null;
  private failuresInARow = 0;
  /** Runs after every applied batch (the job checkpoints there). */
  afterBatch: (() => Promise<void>) | null = null;
  /**
   * A revert: rows whose change the shadow cannot hold (a value the old column does not
   * fit, written since the swap and maybe changed again since) are taken back from the
   * original as they are now instead, as a copied row ahead of the stream is (invariant
   * 2): later events for them converge. A row that still does not fit fails the job.
   */
  recoverRows: ((keys: Value[][]) => Promise<void>) | null = null;
  /**
   * A batch that needs rows taken back (recoverRows) but came while the job held a lock on
   * the original (a cut-over's or a checksum's drain): the taking back reads the original,
   * so it would wait on that lock. It is kept, unacknowledged, and applied first once the
   * lock is gone; the drain gives up its attempt (CutoverAttemptError), which is retried.
   */
  private heldBack: ChangeBatch | null = null;
  private underLock = false;
  /** Stream restarts in a row: a few, and through a database restart (util/reconnect.ts). */
  private readonly restarts = new RetryBudget(STREAM_RESTARTS);

  constructor(
    private readonly openStream: () => ChangeStream,
    private readonly applier: Applier,
    private readonly plan: CopyPlan,
    private readonly log: Logger,
    private readonly onStreamFailure: () => void,
  ) {}

  /** Opens the stream at the end of the log, or at `from` (a checkpoint's position). */
  async start(from?: StreamPosition): Promise<StreamPosition> {
    const stream = this.openStream();
    this.stream = stream;
    stream.failed.catch((err: Error) => {
      if (this.stream !== stream) return;
      this.streamError = err;
      this.onStreamFailure();
    });
    this.appliedPosition = await stream.start(from);
    return this.appliedPosition;
  }

  async stop(options: { keepForResume?: boolean } = {}): Promise<void> {
    const stream = this.stream;
    this.stream = null;
    await stream?.stop(options);
  }

  /**
   * Closes the stream, keeping its position, when the database keeps failing the job's
   * statements: it may be restarting, and an open stream holds its shutdown (PostgreSQL's
   * logical walsender waits for the client to confirm what it sent; the job confirms only
   * what it applied, and the server refuses the connections to apply it). The next apply
   * opens it again at the last applied position (recoverStream, within the reconnect
   * window); what was not applied comes again.
   */
  async suspend(cause: Error, why: string): Promise<void> {
    if (!this.stream) return;
    this.log.warn({ err: cause.message, from: this.appliedPosition }, `${why}: closing the change stream to reopen it at the last applied position`);
    this.streamError ??= cause;
    await this.stop({ keepForResume: true }).catch(() => undefined);
  }

  backlog(): number {
    return this.stream?.backlog() ?? 0;
  }

  /** Whether the copy reads at the stream's start, and nothing is applied meanwhile (ChangeStream.copySnapshotState). */
  copySnapshotState(): 'held' | 'lost' | null {
    return this.stream?.copySnapshotState?.() ?? null;
  }

  /** Ends the copy's snapshot: the rest of the copy locks rows, and the stream is applied from its start. */
  async endCopySnapshot(why: string): Promise<void> {
    const stream = this.stream;
    if (!stream?.copySnapshotState?.()) return;
    this.log.info({ why }, "the copy stops reading at the stream's snapshot; applying the changes since the job's start");
    await stream.endCopySnapshot!();
  }

  lagSeconds(): number | null {
    return this.stream?.lagSeconds() ?? null;
  }

  /**
   * A dropped stream connection is re-opened from the last applied position:
   * events after it are delivered again (applying is idempotent), none is lost.
   */
  async recoverStream(): Promise<void> {
    while (this.streamError) {
      const cause = this.streamError;
      this.throwIfFinal();
      this.failuresInARow++;
      if (!this.restarts.retryAfter(this.failuresInARow)) {
        throw new ShadowshiftError(`the change stream failed ${this.failuresInARow} times in a row: ${cause.message}`, { cause });
      }
      this.log.warn({ err: cause.message, attempt: this.failuresInARow, from: this.appliedPosition }, 'change stream lost; reconnecting from the last applied position');
      await new Promise((r) => setTimeout(r, backoffMs(this.failuresInARow, 400)));
      this.streamError = null;
      await this.stop({ keepForResume: true }).catch(() => undefined);
      try {
        await this.start(this.appliedPosition);
        this.log.info({ from: this.appliedPosition }, 'change stream reconnected');
      } catch (err) {
        this.streamError = err as Error;
      }
    }
  }

  /** A dialect's own verdict (the table was altered, truncated or written where the stream cannot see) is final. */
  private throwIfFinal(): void {
    const cause = this.streamError;
    if (cause instanceof ShadowshiftError && !(cause instanceof TransientDatabaseError)) {
      throw new ShadowshiftError(`the change stream failed: ${cause.message}`, { cause });
    }
  }

  /** Applies whatever has arrived, for at most `budgetMs`; returns the number of events applied. */
  async applyAvailable(budgetMs: number): Promise<number> {
    const deadline = Date.now() + budgetMs;
    let applied = 0;
    do {
      await this.recoverStream();
      const batch = this.takeBatch();
      if (!batch) break;
      await this.applyBatch(batch);
      applied += batch.events.length;
    } while (Date.now() < deadline);
    return applied;
  }

  /**
   * Keeps applying the stream while `condition` holds (and `until` is not reached), so the
   * shadow does not fall behind while the job waits: postponed, a hook holding the cut-over,
   * a cut-over's back-off, work run alongside (cutover-checks.ts whileApplying), the catch-up.
   * Every round starts at the job's safe point, so an abort ends the wait within one round.
   */
  async applyWhile(condition: () => boolean, controls: WaitControls, options: ApplyWhileOptions = {}): Promise<void> {
    const { until } = options;
    const left = () => (until === undefined ? Infinity : until - Date.now());
    while (condition() && left() > 0) {
      controls.throwIfAborted();
      await this.applyAvailable(Math.min(APPLY_BUDGET_MS, Math.max(1, left())));
      await options.eachRound?.();
      if (options.noPause) continue;
      const pause = controls.sleep(Math.min(WAIT_ROUND_PAUSE_MS, Math.max(0, left())));
      await (options.pauseEndsWith ? Promise.race([options.pauseEndsWith, pause]) : pause);
    }
  }

  /**
   * Writes a marker and applies the stream up to it. Everything committed before
   * the marker was written is then in the shadow. Fails the cut-over attempt
   * (not the job) when the marker does not come back within `timeoutMs`.
   */
  async applyUntilMarker(id: string, timeoutMs: number, options: { underLock?: boolean } = {}): Promise<void> {
    await this.recoverStream();
    await this.stream!.writeMarker(id);
    const deadline = Date.now() + timeoutMs;
    this.underLock = options.underLock ?? false;
    try {
      await this.applyToMarker(id, deadline, timeoutMs);
    } finally {
      this.underLock = false;
    }
  }

  private async applyToMarker(id: string, deadline: number, timeoutMs: number): Promise<void> {
    while (!this.seenMarkers.has(id)) {
      if (this.streamError) {
        // Retrying the cut-over cannot get past a final verdict; say it instead of "cut-over failed N times".
        this.throwIfFinal();
        throw new CutoverAttemptError(`the change stream dropped while draining to the marker: ${this.streamError.message}`);
      }
      if (Date.now() > deadline) {
        throw new CutoverAttemptError(`the change stream did not reach the cut-over marker within ${timeoutMs} ms (backlog ${this.backlog()})`);
      }
      const batch = this.takeBatch();
      if (batch) await this.applyBatch(batch);
      else await this.stream!.waitForData(Math.min(50, Math.max(1, deadline - Date.now())));
    }
    this.seenMarkers.delete(id);
  }

  private takeBatch(): ChangeBatch | null {
    const held = this.heldBack;
    this.heldBack = null;
    return held ?? this.stream!.take(MAX_BATCH_EVENTS);
  }

  /**
   * After a swap: the changes logged between the last drain marker and the swap, taken
   * and NOT applied (the shadow is the live table now). Call it right after the swap,
   * with nothing applied since the drain: a batch ends at a marker, so whatever is still
   * queued came after it. The stream is not reconnected: a restart from the last applied
   * position would deliver the drained events again, and telling them apart is not worth
   * the risk of a wrong verdict here.
   */
  async changesBeforeSwap(timeoutMs: number): Promise<SwapWitness> {
    const stream = this.stream;
    if (!stream) return { t: 'lost', reason: 'the change stream was already stopped' };
    if (!stream.seesSwap) return { t: 'blind' };
    const events: ChangeEvent[] = [];
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      // Whatever is queued counts, even when the stream failed after queueing the swap.
      const batch = stream.take(MAX_BATCH_EVENTS);
      if (batch) {
        events.push(...batch.events);
        if (batch.swap) return { t: 'seen', events, afterSwap: batch.afterSwap ?? null };
        continue;
      }
      if (this.streamError) return { t: 'lost', reason: `the change stream failed before the swap came through: ${this.streamError.message}` };
      if (Date.now() > deadline) return { t: 'lost', reason: `the swap did not come through the change stream within ${Math.round(timeoutMs / 1000)} s` };
      await stream.waitForData(Math.min(50, Math.max(1, deadline - Date.now())));
    }
  }

  /**
   * Applies the stream up to a marker written now, however long the backlog takes (each
   * wait is bounded, and a dropped stream is reopened in between). Everything committed
   * before the call is then in the shadow.
   */
  async applyUntilNow(id: string, throwIfAborted: () => void): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.applyUntilMarker(`${id}-${attempt}`, 10_000);
        return;
      } catch (err) {
        if (!(err instanceof CutoverAttemptError)) throw err;
        throwIfAborted();
        this.log.info({ err: err.message, attempt }, 'still applying the stream up to a marker');
      }
    }
  }

  private async applyBatch(batch: ChangeBatch): Promise<void> {
    if (batch.swap) {
      // Only the cut-over swaps, and after it nothing is applied; someone else's swap leaves no shadow to apply to.
      throw new ShadowshiftError(
        `${this.plan.original.ref.name} was swapped with the shadow by a RENAME this job did not run while it was not cutting over; ` +
          'the job cannot continue. Check which table holds what, then run `shadowshift cleanup`.',
      );
    }
    if (batch.events.some((e) => e.kind === 'truncate')) {
      throw new ShadowshiftError(
        `${this.plan.original.ref.name} was truncated while the job ran; the shadow can no longer be trusted. ` +
          'The original is untouched; run the job again once nothing truncates the table.',
      );
    }
    let events = batch.events;
    let recovered = 0;
    for (let attempt = 1; ; attempt++) {
      try {
        if (events.length > 0) await this.applier.apply(this.plan, events);
        break;
      } catch (err) {
        if (err instanceof DataLossError && err.keys?.length && this.recoverRows && recovered < MAX_RECOVERED_ROWS) {
          if (this.underLock) {
            this.heldBack = { ...batch, events };
            throw new CutoverAttemptError('a change since the swap must be taken back from the live table, which this lock blocks; applied once it is released');
          }
          const { keys, rest } = withoutRows(this.plan, events, err.keys as Value[][]);
          recovered += keys.length;
          this.log.warn({ rows: keys.length, reason: err.message }, 'a change since the swap does not fit the old table: taking its row back from the live table as it is now');
          await this.recoverRows(keys);
          events = rest;
          attempt = 0;
          continue;
        }
        if (!(err instanceof TransientDatabaseError)) throw err;
        if (attempt >= APPLY_RETRIES) {
          // Still failing: the server may be going away (a restart). An open stream would hold
          // its shutdown (PostgreSQL's logical walsender waits for the client to confirm what it
          // sent, and the job confirms only what it applied, on a server that now refuses new
          // connections: both wait until the job gives up). So close it, keeping its position;
          // recoverStream opens it again at the last applied position once the server is back
          // (within the reconnect window), and this batch comes again.
          await this.suspend(err, 'applying changes keeps failing');
          return;
        }
        this.log.warn({ err: err.message, attempt }, 'applying changes failed; retrying');
        await new Promise((r) => setTimeout(r, backoffMs(attempt)));
      }
    }
    this.eventsApplied += batch.events.length;
    for (const m of batch.markers) this.seenMarkers.add(m);
    this.appliedPosition = batch.position;
    this.failuresInARow = 0;
    this.restarts.reset();
    await this.stream?.acknowledge(batch.position);
    await this.afterBatch?.();
  }
}
