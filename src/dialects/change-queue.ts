// The buffer between a change stream's reader (binlog, replication connection) and
// take(): decoded changes wait here until the engine's event pump takes them.
//
// - Bounded: once `maxEvents` events (or `maxBytes` of values) wait, the source is
//   paused, which stops reading its socket (TCP backpressure to the server); it is
//   resumed once the backlog is below `resumeBelow` of the bounds. Decoded events are
//   never dropped: only reading stops.
// - waitForData() waiters are woken by every push, by a failure and by the stream's stop,
//   so the pump never sleeps through something it could take.
// - `failed` rejects once the stream cannot go on; the engine races it against its work.
//
// Each stream keeps its own protocol (what an item is besides an event, positions,
// acknowledgements); this file only knows events, their weight and the order of items.

import type { ChangeEvent } from './dialect.js';

/** Events a stream holds by default before it pauses reading. */
export const DEFAULT_MAX_QUEUED = 50_000;

/**
 * What a stream queues: its events (`t: 'event'`, whose `bytes`, if given, count towards
 * `maxBytes`) and its own items between them (markers, commits, ...).
 */
export interface QueueItem {
  t: string;
  event?: ChangeEvent;
  bytes?: number;
}

/** What reading is paused and resumed on (a socket). */
export interface Pausable {
  pause(): void;
  resume(): void;
}

export interface QueueLimits {
  maxEvents: number;
  maxBytes?: number;
  /** Reading resumes once the backlog is below this fraction of the bounds (1: as soon as it is not full). */
  resumeBelow?: number;
}

export class ChangeQueue<Item extends QueueItem> {
  readonly failed: Promise<never>;
  private rejectFailed!: (err: Error) => void;
  private readonly items: Array<Item> = [];
  private events = 0;
  private bytes = 0;
  private paused = false;
  private waiters: Array<() => void> = [];

  constructor(
    private readonly limits: QueueLimits,
    /** The source to pause, or null while there is none (then nothing is paused or resumed). */
    private readonly source: () => Pausable | null,
  ) {
    this.failed = new Promise<never>((_, reject) => {
      this.rejectFailed = reject;
    });
    this.failed.catch(() => undefined);
  }

  push(item: Item): void {
    this.items.push(item);
    if (item.t === 'event') {
      this.events++;
      this.bytes += item.bytes ?? 0;
    }
    this.updatePause();
    this.wake();
  }

  pushAll(items: Array<Item>): void {
    for (const i of items) this.push(i);
  }

  /**
   * Removes items from the front: events up to `maxEvents` (at least one), and the items
   * between them. `visit` sees each item removed and returns false to end the batch after it.
   */
  take(maxEvents: number, visit: (item: Item) => boolean): ChangeEvent[] {
    const events: ChangeEvent[] = [];
    let n = 0;
    while (n < this.items.length) {
      const item = this.items[n]!;
      if (item.t === 'event') {
        if (events.length >= Math.max(1, maxEvents)) break;
        events.push(item.event!);
        this.events--;
        this.bytes -= item.bytes ?? 0;
      }
      n++;
      if (!visit(item)) break;
    }
    this.items.splice(0, n);
    this.updatePause();
    return events;
  }

  /** Items waiting, oldest first. */
  get waiting(): ReadonlyArray<Item> {
    return this.items;
  }

  /** Events waiting to be taken. */
  backlog(): number {
    return this.events;
  }

  get isPaused(): boolean {
    return this.paused;
  }

  /** A new source (a reconnect) starts out reading: the next push pauses it if need be. */
  sourceReplaced(): void {
    this.paused = false;
  }

  private updatePause(): void {
    const { maxEvents, maxBytes = Infinity, resumeBelow = 1 } = this.limits;
    const full = this.events >= maxEvents || this.bytes >= maxBytes;
    const low = this.events < maxEvents * resumeBelow && this.bytes < maxBytes * resumeBelow;
    const change = full && !this.paused ? 'pause' : this.paused && low ? 'resume' : null;
    const source = change && this.source();
    if (!source) return;
    // Set first: a resumed source may deliver what it buffered at once, re-entering here.
    this.paused = change === 'pause';
    source[change!]();
  }

  /** Resolves when there is something to take, or after `ms`. */
  waitForData(ms: number): Promise<void> {
    if (this.items.length > 0) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.waiters.push(done);
    });
  }

  wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  fail(err: Error): void {
    this.rejectFailed(err);
    this.wake();
  }
}
