// Moves changes from the stream into the shadow. It is the only writer of
// stream events, and the job calls it between chunks, so copy and apply never
// race on a row from two of our own connections (gh-ost's single writer).

import type { Applier, ChangeBatch, ChangeStream, CopyPlan, StreamPosition } from '../dialects/dialect.js';
import { CutoverAttemptError, ShadowshiftError, TransientDatabaseError } from '../util/errors.js';
import type { Logger } from '../util/logger.js';

const MAX_BATCH_EVENTS = 2000;
const APPLY_RETRIES = 5;

export class EventPump {
  eventsApplied = 0;
  private readonly seenMarkers = new Set<string>();
  private streamError: Error | null = null;

  constructor(
    private readonly stream: ChangeStream,
    private readonly applier: Applier,
    private readonly plan: CopyPlan,
    private readonly log: Logger,
    onStreamFailure: () => void,
    /** Where the stream started: nothing is applied yet, so a resume would begin here. */
    public appliedPosition: StreamPosition,
  ) {
    stream.failed.catch((err: Error) => {
      this.streamError = err;
      onStreamFailure();
    });
  }

  backlog(): number {
    return this.stream.backlog();
  }

  throwIfStreamFailed(): void {
    if (this.streamError) {
      throw new ShadowshiftError(`the change stream failed: ${this.streamError.message}`, { cause: this.streamError });
    }
  }

  /** Applies whatever has arrived, for at most `budgetMs`; returns the number of events applied. */
  async applyAvailable(budgetMs: number): Promise<number> {
    const deadline = Date.now() + budgetMs;
    let applied = 0;
    do {
      this.throwIfStreamFailed();
      const batch = this.stream.take(MAX_BATCH_EVENTS);
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
    await this.stream.writeMarker(id);
    const deadline = Date.now() + timeoutMs;
    while (!this.seenMarkers.has(id)) {
      this.throwIfStreamFailed();
      if (Date.now() > deadline) {
        throw new CutoverAttemptError(`the change stream did not reach the cut-over marker within ${timeoutMs} ms (backlog ${this.backlog()})`);
      }
      const batch = this.stream.take(MAX_BATCH_EVENTS);
      if (batch) await this.applyBatch(batch);
      else await this.stream.waitForData(Math.min(50, Math.max(1, deadline - Date.now())));
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
    await this.stream.acknowledge(batch.position);
    this.appliedPosition = batch.position;
  }
}
