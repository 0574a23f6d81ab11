// Errors the migration runner and lint raise. Each names the cause and the fix;
// the CLI prints `message` and exits with `exitCode` (documented in docs/migrations.md).

import { ShadowshiftError } from '../util/errors.js';

/**
 * The runner refused to start: an applied file was edited, a pending version is
 * older than an applied one, history and files disagree. Nothing was run.
 */
export class MigrationRefusedError extends ShadowshiftError {
  override readonly exitCode = 5;
}

/** Another runner held the migration lock for longer than --lock-wait. Nothing was run. */
export class LockWaitError extends ShadowshiftError {
  override readonly exitCode = 6;
}

/** A statement of a migration failed; the failure is recorded in the history table. */
export class MigrationFailedError extends ShadowshiftError {
  override readonly exitCode: number;
  constructor(
    message: string,
    readonly details: { version: string; name: string; phase: string; statementIndex: number; statement: string; error: string },
    options?: { cause?: unknown; exitCode?: number },
  ) {
    super(message, options);
    // The engine's preflight refusal (3), data-loss stop (4) and operator abort (130) keep their codes.
    this.exitCode = options?.exitCode ?? 7;
  }
}

/** Lint found at least one error-level finding. */
export class LintFailedError extends ShadowshiftError {
  override readonly exitCode = 1;
}
