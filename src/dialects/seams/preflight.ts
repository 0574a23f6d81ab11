// Preflight checks: small and listed by each dialect (Spirit's check registry).
// Part of the seam between the engine and a database: see ../dialect.ts.

import type { CopyPlan } from './copy.js';
import type { AlterAnalysis, ArtefactNames, TableInfo, TableRef } from './table.js';

export type CheckPhase = 'connect' | 'table' | 'alter';

export interface PreflightContext {
  table: TableRef;
  /** null in the `connect` phase, and when the table does not exist. */
  info: TableInfo | null;
  alter: AlterAnalysis | null;
  /** The ALTER applied to a temporary copy of the definition (`alter` phase only). */
  plan: CopyPlan | null;
  /** Why `plan` is null when the ALTER leaves no key to copy by (`alter` phase only). */
  planProblem?: string | null;
  /** With --resume: the artefacts of the checkpoint's job, which this job continues (not leftovers). */
  resuming?: ArtefactNames | null;
  /** The job keeps a way back after its swap (--revertible): checks refuse what a revert cannot carry. */
  revertible?: boolean;
  /** How long the cut-over may hold the table (--cutover-lock-timeout). */
  lockTimeoutMs?: number;
}

export interface CheckResult {
  ok: boolean;
  /** On failure: the cause and the fix, in one or two sentences. */
  message: string;
  /** Passed, but the user should read `message`: something the job cannot see or do here. */
  warning?: boolean;
}

/** One small check; dialects register a list of them (Spirit's check registry). */
export interface PreflightCheck {
  name: string;
  phase: CheckPhase;
  run(ctx: PreflightContext): Promise<CheckResult>;
}
