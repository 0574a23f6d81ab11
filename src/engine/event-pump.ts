// Moves changes from the stream into the shadow. It is the only writer of
// stream events, and the job calls it between chunks, so copy and apply never
// race on a row from two of our own connections (gh-ost's single writer).

import type { Applier, ChangeBatch, ChangeStream, CopyPlan, StreamPosition } from '../dialects/dialect.js';
import { CutoverAttemptError, ShadowshiftError, TransientDatabaseError } from '../util/errors.js';
import type { Logger } from '../util/logger.js';

const MAX_BATCH_EVENTS = 2000;
const APPLY_RETRIES = 5;
/** Reconnects in a row before the job gives up on the stream. */
const STREAM_RESTARTS = 5;

export class EventPump {
  eventsApplied = 0;
  /** Every event up to here is applied: a restarted stream (or a resume) begins here. */
  appliedPosition: StreamPosition = '';
  private stream: ChangeStream | null = null;
  private readonly seenMarkers = new Set<string>();
  private streamError: Error | null = null;
  private failuresInARow = 0;

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

  backlog(): number {
    return this.stream?.backlog() ?? 0;
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
      // A dialect's own verdict (the table was altered or truncated behind our back) is final.
      if (cause instanceof ShadowshiftError && !(cause instanceof TransientDatabaseError)) {
        throw new ShadowshiftError(`the change stream failed: ${cause.message}`, { cause });
      }
      this.failuresInARow++;
      if (this.failuresInARow > STREAM_RESTARTS) {
        throw new ShadowshiftError(`the change stream failed ${STREAM_RESTARTS} times in a row: ${cause.message}`, { cause });
      }
      this.log.warn({ err: cause.message, attempt: this.failuresInARow, from: this.appliedPosition }, 'change stream lost; reconnecting from the last applied position');
      await new Promise((r) => setTimeout(r, 200 * 2 ** this.failuresInARow));
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

  /** Applies whatever has arrived, for at most `budgetMs`; returns the number of events applied. */
  async applyAvailable(budgetMs: number): Promise<number> {
    const deadline = Date.now() + budgetMs;
    let applied = 0;
    do {
      await this.recoverStream();
      const batch = this.stream!.take(MAX_BATCH_EVENTS);
      if (!batch) break;
      await this.applyBatch(batch);
      applied += batch.events.length;
    } while (Date.now() < deadline);
    return applied;
  }

  /**
   * Writes a marker and applies the stream up to it. Everything committed before
   * the marker was written is then in the shadow. Fails the cut-over attempt
   * (not the job) when the marker does not come back within `timeoutMs`.
   */
  async applyUntilMarker(id: string, timeoutMs: number): Promise<void> {
    await this.recoverStream();
    await this.stream!.writeMarker(id);
    const deadline = Date.now() + timeoutMs;
    while (!this.seenMarkers.has(id)) {
      if (this.streamError) throw new CutoverAttemptError(`the change stream dropped while draining to the marker: ${this.streamError.message}`);
      if (Date.now() > deadline) {
        throw new CutoverAttemptError(`the change stream did not reach the cut-over marker within ${timeoutMs} ms (backlog ${this.backlog()})`);
      }
      const batch = this.stream!.take(MAX_BATCH_EVENTS);
      if (batch) await this.applyBatch(batch);
      else await this.stream!.waitForData(Math.min(50, Math.max(1, deadline - Date.now())));
    }
    this.seenMarkers.delete(id);
  }

  private async applyBatch(batch: ChangeBatch): Promise<void> {
    if (batch.events.some((e) => e.kind === 'truncate')) {
      throw new ShadowshiftError(
        `${this.plan.original.ref.name} was truncated while the job ran; the shadow can no longer be trusted. ` +
          'The original is untouched; run the job again once nothing truncates the table.',
      );
    }
    for (let attempt = 1; ; attempt++) {
      try {
        if (batch.events.length > 0) await this.applier.apply(this.plan, batch.events);
        break;
      } catch (err) {
        if (!(err instanceof TransientDatabaseError) || attempt >= APPLY_RETRIES) throw err;
        this.log.warn({ err: err.message, attempt }, 'applying changes failed; retrying');
        await new Promise((r) => setTimeout(r, 100 * 2 ** attempt));
      }
    }
    this.eventsApplied += batch.events.length;
    for (const m of batch.markers) this.seenMarkers.add(m);
    this.appliedPosition = batch.position;
    this.failuresInARow = 0;
    await this.stream?.acknowledge(batch.position);
  }
}
