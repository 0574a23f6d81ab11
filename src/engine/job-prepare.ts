// What AlterJob.prepare() finds once the table is known: for an ALTER, whether it resumes
// a stopped run (and where), the revert window it closes or keeps, the table checks and the
// preview; for a revert, its point and plan (revert-preflight.ts). It changes nothing but
// the job lock (taken first by a resume or a revert, so a stopped run's statements can be
// ended) and returns what the job goes on with. Also the first step of execute(): the
// shadow the job works on and the plan over it (shadowPlan).

import type { AlterAnalysis, ArtefactNames, Checkpoint, CopyPlan, DialectSession, PreflightCheck, TableInfo } from '../dialects/dialect.js';
import { ShadowshiftError, UsageError } from '../util/errors.js';
import { buildCopyPlan, keepingOtherColumns } from './copy-plan.js';
import type { Logger } from '../util/logger.js';
import { loadCheckpoint } from './checkpointing.js';
import type { AlterJobOptions } from './job-options.js';
import { planOptions, planReport, previewAlter, type AlterPlanReport } from './plan-report.js';
import { runChecks, type CheckOutcome } from './preflight.js';
import { cannotResume, endStoppedRun, swapHappened } from './resume.js';
import { capacityOutcome, loadRevertPoint, prepareRevert, retentionOutcome, type RevertPlan } from './revert-preflight.js';
import { ageSeconds, DEFAULT_REVERT_WINDOW_SECONDS, revertNames } from './revert-point.js';
import { closesWindowOutcome } from './revert-steps.js';

export interface PreparedJob {
  report: AlterPlanReport;
  analysis: AlterAnalysis;
  /** The ALTER's preview; null when only a finish after the swap is left, or the revert has no plan. */
  previewPlan: CopyPlan | null;
  checkpoint: Checkpoint | null;
  resuming: boolean;
  /** The stopped run (or a killed revert) had swapped: only its finish is left. */
  resumeAfterSwap: boolean;
  jobLockHeld: boolean;
  revert: RevertPlan | null;
  /** The table has a revert point of an earlier ALTER: the job closes its window when it starts. */
  closesRevertWindow: boolean;
}

export interface PrepareContext {
  jobId: string;
  session: DialectSession;
  checks: PreflightCheck[];
  info: TableInfo;
  /** The connect-phase outcomes; the table's are added. */
  outcomes: CheckOutcome[];
  options: AlterJobOptions;
  log: Logger;
}

/** prepare() of an ALTER: resume or not, the revert window, the table checks, the preview. */
export async function prepareAlter(c: PrepareContext, resumeAsked: boolean): Promise<PreparedJob> {
  const { session, info, outcomes, options, log } = c;
  const ref = info.ref;
  const revertible = options.revertible && session.revert;
  if (revertible) outcomes.push(await retentionOutcome(session.revert!, options.revertWindowSeconds ?? DEFAULT_REVERT_WINDOW_SECONDS));
  let resuming = resumeAsked;
  if (!resuming && options.resumeIfSameAlter) {
    const kept = await session.checkpoints.load(ref);
    if (kept && kept.alter.trim() === options.alter.trim()) {
      resuming = true;
      log.info({ savedAt: kept.savedAt, phase: kept.phase }, 'an earlier run of this ALTER left a checkpoint: continuing it');
    }
  }
  let checkpoint: Checkpoint | null = null;
  if (resuming) {
    checkpoint = await loadCheckpoint(session.checkpoints, session.name, ref, options.alter, options.checkpointMaxAgeSeconds);
    // The stopped run's statements still on the server go first, under the job lock (so no live
    // job owns them): a cut-over lock request of a dead run stays queued for its whole lock
    // timeout, and every read of the table below (preflight, preview) would queue behind it.
    await session.acquireJobLock(ref);
    await endStoppedRun(session, ref, checkpoint, log);
  }
  // A resume's own stream slot exists already.
  if (revertible) outcomes.push(await capacityOutcome(session.revert!, !resuming));
  const previous = await session.revert?.points.load(ref);
  // A resumed job's own point (it was stopped after its swap) is not a previous ALTER's.
  const closesRevertWindow = Boolean(previous && previous.jobId !== (checkpoint?.jobId ?? c.jobId));
  if (closesRevertWindow) outcomes.push(closesWindowOutcome(previous!));
  const analysis = session.analyzeAlter(options.alter);
  outcomes.push(...(await runChecks(c.checks, 'table', { table: ref, info, alter: analysis, plan: null, resuming: checkpoint?.names ?? null, revertible: Boolean(revertible), lockTimeoutMs: options.cutoverLockTimeoutMs })));
  // The table already has the new definition: nothing to preview, only the finish is left.
  const resumeAfterSwap = checkpoint !== null && (await swapHappened(session, ref, checkpoint));
  // Refused here, before anything is created or applied; after a swap the stream is not needed.
  if (checkpoint && !resumeAfterSwap && session.streamPositionProblem) {
    const problem = await session.streamPositionProblem(checkpoint.streamPosition, checkpoint.names);
    if (problem) outcomes.push({ check: 'stream-position', phase: 'table', ok: false, message: cannotResume(problem, checkpoint.names) });
  }
  const previewPlan = await previewAlter({ session, checks: c.checks, info, analysis, alter: options.alter, resumeAfterSwap, outcomes });
  const report = await planReport({ jobId: c.jobId, session, info, plan: previewPlan, outcomes, options, resumeAfterSwap });
  return { report, analysis, previewPlan, checkpoint, resuming, resumeAfterSwap, jobLockHeld: resuming, revert: null, closesRevertWindow };
}

/** prepare() of a revert: the same checks, the old table as the shadow, nothing to preview. */
export async function prepareRevertJob(c: PrepareContext): Promise<PreparedJob> {
  const { session, info } = c;
  const point = await loadRevertPoint(session, info);
  // As a resume: the job lock first, then what a killed run of this revert still runs on the server.
  await session.acquireJobLock(info.ref);
  // Not by the old table's name: it is the user's, and other sessions may read it.
  const names = revertNames(session, point);
  const ended = await session.endStoppedRun({ ...names, shadow: names.backup }, info.ref);
  if (ended.length > 0) c.log.warn({ sessions: ended }, "ended a stopped revert's statements still running on the server");
  const r = await prepareRevert({ session, checks: c.checks, info, point, outcomes: c.outcomes });
  const report = await planReport({ jobId: c.jobId, session, info, plan: r.plan, outcomes: c.outcomes, options: { ...c.options, deferIndexes: false }, resumeAfterSwap: r.swappedBefore });
  return {
    report: { ...report, revert: { alter: point.alter, oldTable: point.oldTable, swappedAt: point.swappedAt, ageSeconds: ageSeconds(point), windowSeconds: point.windowSeconds, swappedBefore: r.swappedBefore } },
    analysis: r.analysis,
    previewPlan: r.plan,
    checkpoint: r.checkpoint,
    resuming: true,
    resumeAfterSwap: r.swappedBefore,
    jobLockHeld: true,
    revert: r,
    closesRevertWindow: false,
  };
}

/**
 * execute()'s first step: the shadow (created now; a resume's or a revert's found again,
 * a revert's old table readied for its stream) and the copy plan over it. A revert's plan
 * keeps the old table's other columns (CopyPlan.keepsOtherColumns).
 */
export async function shadowPlan(a: {
  session: DialectSession;
  original: TableInfo;
  analysis: AlterAnalysis;
  names: ArtefactNames;
  alter: string;
  resumed: boolean;
  revert: boolean;
  deferIndexes: boolean;
  log: Logger;
}): Promise<CopyPlan> {
  const { session, names } = a;
  let shadow: TableInfo | null;
  if (a.resumed) {
    shadow = await session.inspectTable({ schema: a.original.ref.schema, name: names.shadow });
    if (!shadow) throw new UsageError(`the checkpoint's shadow table ${names.shadow} is gone; run \`shadowshift cleanup --execute\` to remove what the stopped run left, and start again without --resume`);
    await session.cutover.settleStoppedCutover?.(a.original.ref, names, false, a.log);
    if (a.revert) await session.revert!.prepareStream(names);
  } else {
    a.log.info({ shadow: names.shadow }, 'creating shadow table');
    shadow = await session.createShadow(a.original, a.alter, names, { deferIndexes: a.deferIndexes });
  }
  const built = buildCopyPlan(a.original, shadow, a.analysis, planOptions(session));
  if (!built.plan) throw new ShadowshiftError(built.reason);
  return a.revert ? keepingOtherColumns(built.plan, planOptions(session)) : built.plan;
}
