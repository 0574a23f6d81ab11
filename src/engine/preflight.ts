// Runs a dialect's registry of preflight checks for one phase and collects
// every failure, so the user sees all problems at once rather than one per run.

import type { CheckPhase, PreflightCheck, PreflightContext } from '../dialects/dialect.js';

export interface CheckOutcome {
  check: string;
  phase: CheckPhase;
  ok: boolean;
  message: string;
  /** Passed with something to say (see CheckResult.warning). */
  warning?: boolean;
}

export async function runChecks(checks: PreflightCheck[], phase: CheckPhase, ctx: PreflightContext): Promise<CheckOutcome[]> {
  const outcomes: CheckOutcome[] = [];
  for (const check of checks.filter((c) => c.phase === phase)) {
    try {
      const result = await check.run(ctx);
      outcomes.push({ check: check.name, phase, ok: result.ok, message: result.message, ...(result.ok && result.warning ? { warning: true } : {}) });
    } catch (err) {
      outcomes.push({ check: check.name, phase, ok: false, message: `the check itself failed: ${(err as Error).message}` });
    }
  }
  return outcomes;
}

export function failuresOf(outcomes: CheckOutcome[]): Array<{ check: string; message: string }> {
  return outcomes.filter((o) => !o.ok).map((o) => ({ check: o.check, message: o.message }));
}
