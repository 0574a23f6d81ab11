// The last step of every job, whatever ended it: stop the stream, then drop what the
// job made (or keep it for --resume), then release the job lock. By then the job's own
// work has stopped (whileApplying cancels and waits for what it waited on; chunks and
// batches are awaited), so nothing of the job's own can hold a lock the drops wait for.
// What another session holds is waited for only so long, a few times: a job must end,
// and say exactly what it could not remove.

import { LEFTOVER_LABELS, type ArtefactLeft, type ArtefactNames, type DialectSession, type TableRef } from '../dialects/dialect.js';
import type { Logger } from '../util/logger.js';
import { AbortedError, AbortLeftBehindError } from '../util/errors.js';
import type { EventPump } from './event-pump.js';

/** How long one drop waits for its lock; a session holding the shadow (a reader's open transaction) must not stall the exit. */
const DROP_LOCK_TIMEOUT_MS = 2000;
const DROP_ATTEMPTS = 4;

export interface CleanupRequest {
  session: DialectSession;
  ref: TableRef | null;
  names: ArtefactNames | null;
  pump: EventPump | null;
  /** The shadow is the table now: the old table is the user's and stays unless `dropOldTable`. */
  keepBackup: boolean;
  /** Never drop the shadow: a revert's is the user's old table. */
  keepShadow?: boolean;
  /** Keep the stream's server-side state (PostgreSQL slot and publication): a revert's, until its swap, is the way back. */
  keepStream?: boolean;
  /** Keep shadow, stream state and checkpoint for `--resume` (saves a last checkpoint). */
  keepForResume: boolean;
  /** The job writes checkpoints: one goes with its artefacts, kept or removed with them. */
  checkpoints: boolean;
  saveCheckpoint(): Promise<void>;
  swapped: boolean;
  log: Logger;
}

/** Cleans up after a job; returns what could not be removed (never kept on purpose), [] when nothing is left. */
export async function cleanUpJob(r: CleanupRequest): Promise<ArtefactLeft[]> {
  const { session, names, log } = r;
  try {
    await r.pump?.stop({ keepForResume: r.keepForResume || r.keepStream });
  } catch (err) {
    // The drops below try the stream's server-side state (slot, publication) again.
    log.warn({ err: (err as Error).message }, 'stopping the change stream failed');
  }
  let left: ArtefactLeft[] = [];
  if (r.keepForResume && names) {
    await r.saveCheckpoint().catch((e: Error) => log.warn({ err: e.message }, 'could not write the final checkpoint'));
    log.warn(
      { shadow: names.shadow },
      'the job\'s state is kept for a resume: run the same command with --resume to continue, or `shadowshift cleanup --execute` to throw it away',
    );
  } else if (names) {
    left = await dropWithRetries(session, names, { keepBackup: r.keepBackup, keepShadow: r.keepShadow, keepStream: r.keepStream }, log);
    if (r.checkpoints && r.ref) {
      try {
        await session.checkpoints.remove(r.ref);
      } catch (err) {
        left.push({ kind: 'checkpoint', name: `${r.ref.schema}.${r.ref.name}`, reason: (err as Error).message });
      }
    }
    if (left.length === 0) log.info(r.swapped ? 'removed the job\'s working tables' : r.keepShadow ? "removed the job's working artefacts; the original is untouched" : 'removed the shadow and every other artefact; the original is untouched');
    else log.error({ left }, `cleanup left ${describeLeft(left)}: run \`shadowshift cleanup --execute\` to remove it`);
  }
  if (r.ref) await session.releaseJobLock(r.ref).catch(() => undefined);
  return left;
}

async function dropWithRetries(session: DialectSession, names: ArtefactNames, keep: { keepBackup: boolean; keepShadow?: boolean; keepStream?: boolean }, log: Logger): Promise<ArtefactLeft[]> {
  let left: ArtefactLeft[] = [];
  for (let attempt = 1; attempt <= DROP_ATTEMPTS; attempt++) {
    try {
      left = await session.dropArtefacts(names, { ...keep, lockTimeoutMs: DROP_LOCK_TIMEOUT_MS });
    } catch (err) {
      // dropArtefacts reports each failure in its result; this is the server gone before it could look.
      left = [{ kind: 'shadow', name: names.shadow, reason: `${(err as Error).message}; its other artefacts may be left too` }];
    }
    if (left.length === 0) return [];
    if (attempt < DROP_ATTEMPTS) {
      log.warn({ attempt, of: DROP_ATTEMPTS, left }, `could not drop ${describeLeft(left)} yet; trying again`);
      await new Promise((res) => setTimeout(res, 250 * 2 ** attempt));
    }
  }
  return left;
}

/**
 * Exit 130 says an abort left nothing of the job behind: when something is left, the
 * abort becomes an exit 5 that names each artefact and the fix. Null otherwise.
 */
export function abortLeftBehind(stoppedBy: unknown, left: ArtefactLeft[]): AbortLeftBehindError | null {
  if (!(stoppedBy instanceof AbortedError) || left.length === 0) return null;
  return new AbortLeftBehindError(
    `${stoppedBy.message}. The original table is untouched, but the job could not remove: ${describeLeft(left)}. ` +
      'Run `shadowshift cleanup --execute` to remove what is left (once the session holding it is gone)',
    { cause: stoppedBy },
  );
}

/** `shadow table public._ss_..._new_t (canceling statement due to lock timeout), replication slot ...`. */
export function describeLeft(left: ArtefactLeft[]): string {
  return left.map((l) => `${LEFTOVER_LABELS[l.kind]} ${l.name} (${l.reason})`).join(', ');
}
