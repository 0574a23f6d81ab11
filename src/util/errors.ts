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
}

/** One cut-over attempt failed and the pre-cut-over state was restored; the engine may retry. */
export class CutoverAttemptError extends ShadowshiftError {}

/** The operator (ctl abort, SIGINT, SIGTERM) stopped the job. */
export class AbortedError extends ShadowshiftError {
  override readonly exitCode = 130;
}

/**
 * A failure worth retrying after a pause: deadlock, lock wait timeout, a dropped
 * connection. Dialects wrap driver errors in it; the engine decides whether and
 * when to retry.
 */
export class TransientDatabaseError extends ShadowshiftError {}
