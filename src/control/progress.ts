// Copy rate over a recent window and the ETA derived from it. The ETA is shown
// only once the window holds enough history to mean something.

const WINDOW_MS = 30_000;
const MIN_HISTORY_MS = 3_000;

export class CopyRate {
  private samples: Array<{ at: number; rows: number }> = [];

  record(rowsCopied: number, at = Date.now()): void {
    this.samples.push({ at, rows: rowsCopied });
    while (this.samples.length > 2 && at - this.samples[0]!.at > WINDOW_MS) this.samples.shift();
  }

  /** Rows per second over the window, or null without enough history. */
  rowsPerSecond(): number | null {
    if (this.samples.length < 2) return null;
    const first = this.samples[0]!;
    const last = this.samples[this.samples.length - 1]!;
    const span = last.at - first.at;
    if (span < MIN_HISTORY_MS) return null;
    return ((last.rows - first.rows) * 1000) / span;
  }

  etaSeconds(rowsCopied: number, rowsEstimated: number): number | null {
    const rate = this.rowsPerSecond();
    if (rate === null || rate <= 0) return null;
    return Math.max(0, Math.round((Math.max(rowsEstimated, rowsCopied) - rowsCopied) / rate));
  }
}

export function percent(rowsCopied: number, rowsEstimated: number): number {
  if (rowsEstimated <= 0) return rowsCopied > 0 ? 100 : 0;
  return Math.min(100, Math.round((rowsCopied * 1000) / rowsEstimated) / 10);
}
