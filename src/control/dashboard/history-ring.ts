// A bounded history of samples for the dashboard's charts: at most `capacity` points
// however long the job runs. When it is full, neighbouring points are combined in pairs
// (halving the resolution) and from then on every two raw samples make one point, then
// four, and so on, so a page opened late still gets the whole job, coarser. Pure.

export class HistoryRing<T> {
  private readonly points: T[] = [];
  /** Raw samples not yet combined into a point at the current resolution. */
  private pending: T[] = [];
  /** Raw samples per point. */
  private stride = 1;

  /**
   * @param capacity most points kept (an even number, at least 2)
   * @param combine one point for several neighbouring ones (equal weight each), oldest first
   */
  constructor(
    readonly capacity: number,
    private readonly combine: (points: T[]) => T,
  ) {
    if (!Number.isInteger(capacity) || capacity < 2 || capacity % 2 !== 0) throw new Error(`HistoryRing capacity must be an even whole number >= 2 (got ${capacity})`);
  }

  push(sample: T): void {
    this.pending.push(sample);
    if (this.pending.length < this.stride) return;
    this.points.push(this.pending.length === 1 ? this.pending[0]! : this.combine(this.pending));
    this.pending = [];
    if (this.points.length >= this.capacity) this.halve();
  }

  /** Raw samples each point stands for now. */
  get resolution(): number {
    return this.stride;
  }

  /** The points, oldest first, with the samples not yet combined as one last point. */
  snapshot(): T[] {
    if (this.pending.length === 0) return [...this.points];
    return [...this.points, this.pending.length === 1 ? this.pending[0]! : this.combine(this.pending)];
  }

  get length(): number {
    return this.points.length + (this.pending.length ? 1 : 0);
  }

  private halve(): void {
    const merged: T[] = [];
    for (let i = 0; i + 1 < this.points.length; i += 2) merged.push(this.combine([this.points[i]!, this.points[i + 1]!]));
    this.points.splice(0, this.points.length, ...merged);
    this.stride *= 2;
  }
}

/** The mean of the numbers that are not null, or null when none is. */
export function meanOf(values: Array<number | null | undefined>): number | null {
  let sum = 0;
  let n = 0;
  for (const v of values) {
    if (v === null || v === undefined || !Number.isFinite(v)) continue;
    sum += v;
    n++;
  }
  return n ? sum / n : null;
}

/** The largest number that is not null, or null. */
export function maxOf(values: Array<number | null | undefined>): number | null {
  let best: number | null = null;
  for (const v of values) if (v !== null && v !== undefined && Number.isFinite(v) && (best === null || v > best)) best = v;
  return best;
}
