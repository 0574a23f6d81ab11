// How long a job keeps retrying what a lost database connection interrupted.
//
// Counting attempts alone is not enough: a database restart keeps the server away for
// seconds to tens of seconds (PostgreSQL's fast shutdown waits for its WAL senders and a
// checkpoint, and says "the database system is shutting down" meanwhile; MariaDB flushes
// InnoDB), and five quick attempts were used up long before it came back: the job failed
// ("server restart" in test/acceptance/fault-matrix-mysql.test.ts and
// test/acceptance/fault-matrix-postgres.test.ts). So a transient failure is
// retried for at least a number of attempts AND for as long as the failures in a row
// started less than RECONNECT_WINDOW_MS ago. A server gone for good still ends the job.

/** How long failures in a row may go on before the job gives up (a restart fits in it). */
export const RECONNECT_WINDOW_MS = 60_000;
/** Longest pause between two attempts. */
const MAX_BACKOFF_MS = 2000;

/** The pause before attempt `attempt + 1`: doubling from `firstMs`, at most 2 s. */
export function backoffMs(attempt: number, firstMs = 200): number {
  return Math.min(MAX_BACKOFF_MS, firstMs * 2 ** Math.max(0, attempt - 1));
}

/** Failures in a row of one piece of work: whether another attempt is due. */
export class RetryBudget {
  private firstFailureAt: number | null = null;

  constructor(
    private readonly minAttempts: number,
    private readonly windowMs = RECONNECT_WINDOW_MS,
  ) {}

  /** Call after failed attempt `attempt` (1-based); true when the work should be tried again. */
  retryAfter(attempt: number): boolean {
    this.firstFailureAt ??= Date.now();
    return attempt < this.minAttempts || Date.now() - this.firstFailureAt < this.windowMs;
  }

  /** The work succeeded: the next failure starts a new window. */
  reset(): void {
    this.firstFailureAt = null;
  }
}
