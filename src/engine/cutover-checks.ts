// What the engine makes sure of before a cut-over attempt, beyond the dialect's own
// checks inside the swap: work that reads whole tables or waits on other sessions, so
// it runs while the stream keeps being applied (the shadow must not fall behind, or the
// drain under the swap's lock grows).

import type { ArtefactNames, CopyPlan, Cutover, SnapshotHolder } from '../dialects/dialect.js';
import type { JobControls } from '../control/job-controls.js';
import type { Logger } from '../util/logger.js';
import { CutoverAttemptError, DataLossError } from '../util/errors.js';
import { APPLY_BUDGET_MS, type EventPump } from './event-pump.js';

/** Rounds of apply-then-ask-again before a foreign key violation counts. */
const FK_RECHECKS = 3;
/** How long a drain to a marker outside the lock may take (the backlog is small by then). */
const DRAIN_TIMEOUT_MS = 60_000;
/** A wait for old snapshots longer than this is followed by another fence (see waitForOlderSnapshots). */
const SETTLED_WAIT_MS = 1000;
const MAX_FENCES = 3;

export interface GuardContext {
  pump: EventPump;
  controls: JobControls;
  log: Logger;
  jobId: string;
}

/**
 * Waits for `work` while the stream keeps being applied. When the job stops meanwhile
 * (an abort, a lost job lock, a failed stream) the work is cancelled through the signal
 * and waited for before the error goes on to the cleanup: a statement left running holds
 * locks the cleanup's DROP waits for, and CREATE INDEX CONCURRENTLY, which waits for
 * every older snapshot, deadlocks with that DROP (issue 11: the shadow was left).
 */
export async function whileApplying<T>(pump: EventPump, controls: JobControls, start: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const cancel = new AbortController();
  const work = start(cancel.signal);
  let settled = false;
  const done = work.then(
    () => void (settled = true),
    () => void (settled = true),
  );
  try {
    await pump.applyWhile(() => !settled, controls, { pauseEndsWith: done });
  } catch (err) {
    cancel.abort();
    await done;
    throw err;
  }
  return work;
}

/**
 * Where the dialect validates foreign keys only after the swap commits (when a failure
 * can no longer be undone), looks for rows that would violate them first and fails the
 * job with the original untouched. A row written a moment ago may only look orphaned
 * because the stream has not brought its parent yet: the keys found are asked about
 * again after everything committed before the answer is applied, and only keys that
 * survive every round count.
 */
export async function checkForeignKeys(g: GuardContext, cutover: Cutover, plan: CopyPlan, names: ArtefactNames): Promise<void> {
  if (!cutover.foreignKeyViolations) return;
  const started = Date.now();
  let found = await whileApplying(g.pump, g.controls, () => cutover.foreignKeyViolations!(plan, names));
  for (let round = 1; found.length > 0 && round <= FK_RECHECKS; round++) {
    await g.pump.applyUntilMarker(`fk-${g.jobId}-${round}`, DRAIN_TIMEOUT_MS);
    const recheck = found;
    found = await whileApplying(g.pump, g.controls, () => cutover.foreignKeyViolations!(plan, names, recheck));
  }
  if (found.length > 0) {
    throw new DataLossError(
      `the new table would leave foreign keys violated, so it is not swapped in:\n${found.map((v) => `  - ${v.description}`).join('\n')}\n` +
        'The ALTER changes the values these keys compare (a native ALTER TABLE refuses it the same way), or the new table lacks rows. The original table is untouched.',
    );
  }
  g.log.info({ seconds: (Date.now() - started) / 1000 }, 'checked the foreign keys of and to the new table');
}

/** What the job tells the operator while it waits for old snapshots. */
export interface SnapshotWait {
  seconds: number;
  sessions: SnapshotHolder[];
}

/** Where the last fence stood, for the log line of the cut-over: what the remaining window was. */
export interface FenceMark {
  at: number;
  eventsApplied: number;
}

/**
 * Waits, applying the stream all the while, until no session of the database holds a
 * snapshot taken before a fence set now: such a transaction would read the new table
 * with a snapshot older than its rows, i.e. empty or partial, if it touched it only
 * after the swap. Snapshots taken after the fence see every row the shadow had then.
 * A long wait (a report running for minutes) lets new snapshots be taken meanwhile,
 * each seeing the shadow as it was at that moment, a little behind the original: so
 * after a wait over SETTLED_WAIT_MS another fence is set and waited for (up to
 * MAX_FENCES), which leaves only snapshots taken since the last fence. Over `boundMs`
 * in all the attempt fails naming the sessions (CutoverAttemptError: the engine backs
 * off and tries again, the original untouched); `boundMs` 0 does not wait but says who
 * would have been waited for.
 */
export async function waitForOlderSnapshots(
  g: GuardContext,
  cutover: Cutover,
  plan: CopyPlan,
  boundMs: number,
  report: (wait: SnapshotWait | null) => void,
): Promise<FenceMark | null> {
  if (!cutover.snapshotFence) return null;
  // Snapshots taken after the fence see the shadow as it is then, behind the original by
  // what the stream has not applied yet: bring it up to now first (a marker round trip,
  // not only what has arrived), and again after any wait.
  let drains = 0;
  const drain = () => g.pump.applyUntilMarker(`fence-${g.jobId}-${Date.now()}-${++drains}`, DRAIN_TIMEOUT_MS);
  await drain();
  const started = Date.now();
  let mark: FenceMark = { at: started, eventsApplied: g.pump.eventsApplied };
  try {
    for (let fences = 1; ; fences++) {
      const fenced = fences === 1 ? started : Date.now();
      mark = { at: fenced, eventsApplied: g.pump.eventsApplied };
      const fence = await cutover.snapshotFence(plan);
      let said = '';
      for (;;) {
        const sessions = await fence.holders();
        if (!sessions.length) break;
        const waited = Date.now() - started;
        report({ seconds: Math.round(waited / 100) / 10, sessions });
        const who = sessions.map((s) => s.pid).join(', ');
        if (boundMs <= 0) {
          g.log.warn({ table: plan.original.ref.name, sessions }, `--cutover-snapshot-wait 0: not waiting for session(s) ${who}, whose snapshot is older than the new table's rows; if they read the table after the swap they see it empty or partial`);
          return mark;
        }
        if (waited >= boundMs) {
          throw new CutoverAttemptError(
            `session(s) ${sessions.map((s) => `${s.pid} (${s.user ?? '?'}, ${s.application || '-'}, transaction ${s.ageSeconds ?? '?'}s old, ${s.state ?? '?'}: ${s.query})`).join('; ')} ` +
              `still hold a snapshot older than the new table's rows after ${Math.round(waited / 1000)}s (--cutover-snapshot-wait ${boundMs / 1000}s); ` +
              'after the swap they would read the table empty or partial. End those transactions, or raise --cutover-snapshot-wait',
          );
        }
        if (who !== said) {
          g.log.warn({ table: plan.original.ref.name, sessions, waitedSeconds: Math.round(waited / 100) / 10 }, `waiting for session(s) ${who}: their snapshot is older than the new table's rows, which they would read empty or partial after the swap`);
          said = who;
        }
        g.controls.throwIfAborted();
        await g.pump.applyAvailable(APPLY_BUDGET_MS);
        await g.controls.sleep(100);
      }
      const waited = Date.now() - fenced;
      if (!said) return mark;
      g.log.info({ table: plan.original.ref.name, waitedSeconds: waited / 1000, fence: fences }, 'no session holds a snapshot older than the fence any more');
      await drain();
      if (waited <= SETTLED_WAIT_MS || fences >= MAX_FENCES) return mark;
    }
  } finally {
    report(null);
  }
}
