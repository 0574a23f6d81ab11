// Chunk size that aims each chunk at a target duration (Spirit's approach):
// short chunks hold row locks briefly; long enough ones keep the copy fast.

export interface ChunkSizerOptions {
  targetMs: number;
  /** A fixed size disables adaptation (--chunk-size). */
  fixedSize?: number;
  initialSize?: number;
  minSize?: number;
  maxSize?: number;
}

export class ChunkSizer {
  private current: number;
  private readonly min: number;
  private readonly max: number;

  constructor(private readonly options: ChunkSizerOptions) {
    this.min = options.minSize ?? 100;
    this.max = options.maxSize ?? 200_000;
    this.current = options.fixedSize ?? options.initialSize ?? 1000;
  }

  get size(): number {
    return this.current;
  }

  get targetMs(): number {
    return this.options.targetMs;
  }

  setTarget(ms: number): void {
    this.options.targetMs = ms;
  }

  setFixed(size: number | undefined): void {
    this.options.fixedSize = size;
    if (size !== undefined) this.current = size;
  }

  /** Feeds back one chunk: how many rows it covered and how long it took. */
  observe(rows: number, elapsedMs: number): void {
    if (this.options.fixedSize !== undefined || rows <= 0) return;
    const perRowMs = Math.max(elapsedMs, 1) / rows;
    const ideal = this.options.targetMs / perRowMs;
    // Move at most 2x per chunk, and slow down harder than we speed up, so one
    // lucky or stalled chunk does not swing the size.
    const next = ideal > this.current ? Math.min(ideal, this.current * 2) : Math.max(ideal, this.current / 4);
    this.current = Math.round(Math.min(this.max, Math.max(this.min, next)));
  }
}
