// What `AlterJob.prepare()` finds out and reports, without changing anything: the
// preview of the ALTER on a temporary copy of the definition, the copy plan built from
// it, the `alter` checks, and the report the CLI prints (and `--execute` requires ok).

import type { AlterAnalysis, ColumnMap, CopyPlan, DialectSession, PreflightCheck, TableInfo, WeakenedUniqueIndex } from '../dialects/dialect.js';
import { buildCopyPlan, type PlanOptions } from './copy-plan.js';
import { runChecks, type CheckOutcome } from './preflight.js';
import type { AlterJobOptions } from './job-options.js';
import { DEFAULT_REVERT_WINDOW_SECONDS } from './revert-point.js';

export interface AlterPlanReport {
  jobId: string;
  dialect: string;
  server: string;
  table: string;
  estimatedRows: number;
  key: ColumnMap[] | null;
  columns: ColumnMap[];
  /** Columns of the original whose data is not carried across. */
  columnsNotCopied: string[];
  /** Columns of the shadow that start from their default. */
  columnsNew: string[];
  newUniqueIndexes: string[];
  /** Of newUniqueIndexes, those the original has too but the ALTER makes compare less finely. */
  weakenedUniqueIndexes: WeakenedUniqueIndex[];
  /** Whether the shadow is checksummed against the original before the cut-over. */
  checksum: 'on' | 'off';
  /** Whether the shadow's secondary indexes are built after the copy instead of before. */
  deferredIndexes: 'on' | 'off' | 'not built for this dialect';
  /** What building them after the copy costs beyond the job (session.indexDeferralConcern), when anything. */
  deferredIndexesConcern: string | null;
  checks: CheckOutcome[];
  ok: boolean;
  /** A revert: the ALTER it undoes and its revert point (`swappedBefore`: a stopped run of it had swapped already). */
  revert?: { alter: string; oldTable: string; swappedAt: string; ageSeconds: number; windowSeconds: number; swappedBefore: boolean };
  /** --revertible: the job records a revert point at its swap. */
  revertible?: { windowSeconds: number };
}

export const planOptions = (session: DialectSession): PlanOptions => ({
  containedKeys: session.matchesByContainedKey,
  columnNamesIgnoreCase: session.columnNamesIgnoreCase,
});

/**
 * Deferred only when the copy key is the shadow's primary key, which the shadow
 * always keeps: any other key the copy walks (standing in for a missing primary
 * key, or for one the ALTER moves or makes compare less finely) must exist during the copy.
 * `deferIndexes` unset: deferred unless the dialect has a `concern`; true: deferred anyway.
 */
function defersIndexes(session: DialectSession, plan: CopyPlan | null, deferIndexes: boolean | undefined, concern: string | null): boolean {
  const primary = plan?.shadow.indexes.find((i) => i.primary);
  const keyIsPrimary =
    plan !== null && primary !== undefined && primary.columns.length === plan.key.length && plan.key.every((k, i) => k.target.toLowerCase() === primary.columns[i]!.toLowerCase());
  if (deferIndexes === false || !session.finishShadow || !keyIsPrimary) return false;
  return deferIndexes === true || concern === null;
}

/** The dialect's concern about deferring (none asked when --no-defer-indexes says no anyway); a replica the job throttles on is one. */
async function indexDeferralConcern(session: DialectSession, deferIndexes: boolean | undefined, replicaUrls: readonly string[] | undefined): Promise<string | null> {
  if (deferIndexes === false || !session.indexDeferralConcern) return null;
  if (replicaUrls?.length) return `the job throttles on ${replicaUrls.length} replica${replicaUrls.length === 1 ? '' : 's'} (--throttle-replicas)`;
  return session.indexDeferralConcern().catch((err: Error) => `cannot tell whether replicas read the binlog (${err.message})`);
}

/**
 * Previews the ALTER and runs the `alter` checks, adding their outcomes to `outcomes`;
 * returns the copy plan, or null where there is none (a refusal says why). After a
 * resumed job's swap the table already has the new definition: nothing to preview.
 */
export async function previewAlter(a: {
  session: DialectSession;
  checks: PreflightCheck[];
  info: TableInfo;
  analysis: AlterAnalysis;
  alter: string;
  resumeAfterSwap: boolean;
  outcomes: CheckOutcome[];
}): Promise<CopyPlan | null> {
  const { session, info, analysis, outcomes } = a;
  let plan: CopyPlan | null = null;
  let planProblem: string | null = null;
  if (analysis.secondStatement !== undefined) {
    // Never previewed: the server would run the second statement too, or refuse the text.
    const second = analysis.secondStatement.replace(/\s+/g, ' ').slice(0, 80);
    outcomes.push({
      check: 'single-statement',
      phase: 'table',
      ok: false,
      message: `--alter holds more than one statement: after ';' comes "${second}". Give only the ALTER TABLE clauses of one statement (e.g. --alter "ADD COLUMN x INT, ADD INDEX (x)"), and run other statements on their own.`,
    });
  } else if (!analysis.renamesTable && analysis.partitionMaintenance === undefined && analysis.foreignKeyClause === undefined && !a.resumeAfterSwap) {
    // A table rename or partition maintenance is never previewed: a check refuses either, and
    // EXCHANGE PARTITION run on the preview would take another table's rows.
    const preview = await session.previewShadow(info, a.alter);
    const built = buildCopyPlan(info, preview, analysis, planOptions(session));
    plan = built.plan;
    if (!built.plan) planProblem = built.reason;
  }
  if (!a.resumeAfterSwap) outcomes.push(...(await runChecks(a.checks, 'alter', { table: info.ref, info, alter: analysis, plan, planProblem })));
  // A dialect's own check may already have reported it: say it once.
  if (planProblem && !outcomes.some((o) => !o.ok && o.message === planProblem)) {
    outcomes.push({ check: 'shared-unique-key', phase: 'alter', ok: false, message: planProblem });
  }
  return plan;
}

export async function planReport(a: {
  jobId: string;
  session: DialectSession;
  info: TableInfo;
  plan: CopyPlan | null;
  outcomes: CheckOutcome[];
  options: Pick<AlterJobOptions, 'checksum' | 'deferIndexes' | 'throttle' | 'revertible' | 'revertWindowSeconds'>;
  resumeAfterSwap: boolean;
}): Promise<AlterPlanReport> {
  const { session, info, plan, outcomes, options } = a;
  const deferralConcern = await indexDeferralConcern(session, options.deferIndexes, options.throttle?.replicaUrls);
  const ref = info.ref;
  const carried = new Set((plan?.columns ?? []).map((c) => c.source));
  const fed = new Set((plan?.columns ?? []).map((c) => c.target));
  return {
    jobId: a.jobId,
    dialect: session.name,
    server: `${session.server.flavor} ${session.server.version}`,
    table: `${ref.schema}.${ref.name}`,
    estimatedRows: info.estimatedRows,
    key: plan?.key ?? null,
    columns: plan?.columns ?? [],
    columnsNotCopied: info.columns.filter((c) => !carried.has(c.name)).map((c) => c.name),
    columnsNew: plan ? plan.shadow.columns.filter((c) => !fed.has(c.name)).map((c) => c.name) : [],
    newUniqueIndexes: plan?.newUniqueIndexes ?? [],
    weakenedUniqueIndexes: plan?.weakenedUniqueIndexes ?? [],
    checksum: options.checksum === false ? 'off' : 'on',
    deferredIndexes: !session.finishShadow ? 'not built for this dialect' : defersIndexes(session, plan, options.deferIndexes, deferralConcern) ? 'on' : 'off',
    deferredIndexesConcern: deferralConcern,
    checks: outcomes,
    ok: outcomes.every((o) => o.ok) && (plan !== null || a.resumeAfterSwap),
    ...(options.revertible ? { revertible: { windowSeconds: options.revertWindowSeconds ?? DEFAULT_REVERT_WINDOW_SECONDS } } : {}),
  };
}
