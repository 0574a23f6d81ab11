// Errors users see. Each names the cause and the fix; the CLI prints `message`
// and exits with `exitCode` without a stack trace.

export class ShadowshiftError extends Error {
  readonly exitCode: number = 1;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Bad flags or input; nothing was touched. */
export class UsageError extends ShadowshiftError {
  override readonly exitCode = 2;
}

/** A preflight check refused the job; nothing was touched. */
export class PreflightError extends ShadowshiftError {
  override readonly exitCode = 3;
  constructor(readonly failures: Array<{ check: string; message: string }>) {
    super(
      'preflight refused the job:\n' + failures.map((f) => `  - ${f.check}: ${f.message}`).join('\n'),
    );
  }
}

/** Copying or applying would drop or change data (truncation, NULL into NOT NULL, duplicate on a new unique key). */
export class DataLossError extends ShadowshiftError {
  override readonly exitCode = 4;
  /**
   * The original's rows whose change could not be applied, by key (in the copy plan's key
   * order), when the applier knows them: a revert takes such a row back from the live
   * table instead (EventPump.recoverRows).
   */
  keys?: unknown[][];
}

/** `err` with the rows it names, when it is a DataLossError. */
export function withKeys<E>(err: E, keys: unknown[][]): E {
  if (err instanceof DataLossError) err.keys = keys;
  return err;
}

/**
 * The swap happened (the new table is live), but writes reached the old table after
 * the cut-over's drain: they are in the backup table only. Reconciling them needs a
 * person, because rows written to the new table since may be newer.
 */
export class WritesAfterDrainError extends DataLossError {
  constructor(
    message: string,
    readonly writes: number,
    readonly backupTable: string,
  ) {
    super(message);
  }
}

/** The swap happened, but whether a write reached the old table after the drain could not be checked. */
export class SwapUnverifiedError extends ShadowshiftError {}

/** One cut-over attempt failed and the pre-cut-over state was restored; the engine may retry. */
export class CutoverAttemptError extends ShadowshiftError {}

/** The operator (ctl abort, SIGINT, SIGTERM) stopped the job. */
export class AbortedError extends ShadowshiftError {
  override readonly exitCode = 130;
}

/**
 * The operator stopped the job, but something it made could not be removed (another
 * session held it past the drops' lock timeout): the message names each one.
 */
export class AbortLeftBehindError extends ShadowshiftError {
  override readonly exitCode = 5;
}

/**
 * A failure worth retrying after a pause: deadlock, lock wait timeout, a dropped
 * connection. Dialects wrap driver errors in it; the engine decides whether and
 * when to retry.
 */
export class TransientDatabaseError extends ShadowshiftError {}
