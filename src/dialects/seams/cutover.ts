// The cut-over's seam: the swap, its options and timing, and what blocks or reads around it.
// Part of the seam between the engine and a database: see ../dialect.ts.

import type { StreamPosition } from './stream.js';
import type { Logger } from '../../util/logger.js';
import type { CopyPlan } from './copy.js';
import type { ArtefactNames, TableInfo, TableRef } from './table.js';

export interface CutoverOptions {
  lockTimeoutMs: number;
  /**
   * Called once the original is write-locked: it must apply every change
   * committed before the lock (by writing a marker and draining up to it).
   */
  drainUnderLock: () => Promise<void>;
  /**
   * --kill-blockers-after (engine/blocker-killer.ts): told while the lock request
   * waits, it ends the sessions that have held it up long enough.
   */
  killBlockers?: BlockerPolicy;
  /**
   * Called once everything but the lock is ready, right before the lock is requested:
   * the engine waits there for older snapshots (see Cutover.snapshotFence), so that as
   * little as possible comes between the fence and the lock.
   */
  beforeLock?: () => Promise<void>;
  /** What the ALTER asked for (the preview): the dialect refuses a shadow that differs from it, before any lock. */
  expectedShadow?: TableInfo;
  /**
   * MySQL: raise the new table's AUTO_INCREMENT counter to the original's under the lock
   * (false when the ALTER sets AUTO_INCREMENT itself: it keeps what it set).
   */
  raiseCounter?: boolean;
  /** Tests only: runs under the lock once everything the swap needs is in place (MySQL: the shadow's triggers), before the swap itself; a throw fails the attempt. */
  beforeSwapForTests?: () => Promise<void>;
  /** Tests only, MySQL: runs after the RENAME, before the triggers and foreign keys get their own names back. */
  beforeOwnNamesForTests?: () => Promise<void>;
  log: Logger;
}

/** A session one of the job's own sessions waits for (wait-watcher.ts puts it in the status). */
export interface SessionBlocker {
  /** PostgreSQL pid, MySQL/MariaDB connection id. */
  session: number;
  /** Seconds since its transaction (or, outside one, its statement) began; null when the job's user may not see it. */
  ageSeconds: number | null;
  user: string | null;
  application: string | null;
  state: string | null;
  /** Its statement, literals and numbers replaced. */
  query: string;
}

/** A session the cut-over's lock request waits for. */
export interface LockBlocker extends SessionBlocker {
  /** When its transaction began, as the server shows it; null when not known. */
  since: string | null;
  /** One of shadowshift's own sessions: never ended. */
  ours: boolean;
}

/**
 * What a swap hands the engine's blocker killer while its lock request waits: who
 * blocks the request, and how to end a session. The killer decides when, and whom.
 */
export interface LockBlockers {
  /** What the log calls a session id: 'pid', 'connection'. */
  readonly sessionLabel: string;
  /** The other sessions the lock request waits for; `ageSeconds` is never more than the truth. */
  find(): Promise<LockBlocker[]>;
  /** Ends a session; false when the server did not (it was gone already). */
  end(session: number): Promise<boolean>;
}

/** The engine's --kill-blockers-after policy, as a swap sees it. */
export interface BlockerPolicy {
  /** Called right before the lock is requested; `stop` once the request is granted or given up. */
  watch(blockers: LockBlockers): { stop(): Promise<void> };
}

/** What the job's own sessions wait for on other sessions, as the server shows it. */
export interface ObservedWait {
  what: 'old-snapshots' | 'lock' | 'row-lock';
  /** Which of the job's statements waits, and on what, in words. */
  detail: string;
  blockers: SessionBlocker[];
}

/** A session holding a snapshot taken before a SnapshotFence: it could read the new table as it was then. */
export interface SnapshotHolder {
  pid: number;
  /** Seconds since its transaction began (null when the job's user may not see it). */
  ageSeconds: number | null;
  user: string | null;
  application: string | null;
  state: string | null;
  /** Its statement, literals and numbers replaced. */
  query: string;
}

/** The moment after which snapshots see every row the shadow has; see Cutover.snapshotFence. */
export interface SnapshotFence {
  /** The sessions that still hold a snapshot taken before the fence. */
  holders(): Promise<SnapshotHolder[]>;
}

/** Rows that would break a foreign key once the shadow is live. */
export interface ForeignKeyViolation {
  /** The constraint, qualified by its table; a recheck matches on it. */
  constraint: string;
  /** Some offending keys, as text, in the key's column order. */
  keys: string[][];
  /** For the user: which key, which side, which keys. */
  description: string;
}

/** What a successful swap cost the application. */
export interface CutoverTiming {
  /**
   * Milliseconds from the request for the original's write lock to its release:
   * application writes to the table queue for this long (waiting for the lock
   * included, since writers queue behind a pending lock request too).
   */
  lockedMs: number;
  /**
   * Where the writes to the new table begin in the change stream, where the swap itself
   * can say so (PostgreSQL: the WAL position read under the swap's locks, before its
   * commit); a revert point records it (seams/revert.ts).
   */
  afterSwap?: StreamPosition;
}

export interface Cutover {
  /**
   * Atomically swaps the shadow in under the original's name and the original
   * out under `names.backup`. Throws CutoverAttemptError after restoring the
   * pre-cut-over state when the lock cannot be had in time; the engine retries.
   */
  swap(plan: CopyPlan, names: ArtefactNames, options: CutoverOptions): Promise<CutoverTiming>;
  /**
   * Where the swap can only validate foreign keys after it commits: rows of the shadow,
   * or of tables referencing the original, that would violate a foreign key once the
   * shadow is live. The shadow lags the original until the swap's drain, so the engine
   * applies the stream and asks again with `recheck` (only those keys, cheap) before it
   * believes an answer.
   */
  foreignKeyViolations?(plan: CopyPlan, names: ArtefactNames, recheck?: ForeignKeyViolation[]): Promise<ForeignKeyViolation[]>;
  /**
   * Where a transaction can keep a snapshot across the swap and then read the new
   * table with it (PostgreSQL MVCC: rows committed after the snapshot are invisible,
   * so the table reads empty or partial): marks now, and lists the sessions that hold
   * a snapshot taken before now, until they are gone. The engine waits for them.
   */
  snapshotFence?(plan: CopyPlan): Promise<SnapshotFence>;
  /**
   * A resume of a run stopped in its cut-over settles what that cut-over left half done
   * before anything else (MySQL: triggers created on the shadow, dropped before the stream
   * is applied to it again; after a swap, the new table's triggers given their own names).
   */
  settleStoppedCutover?(table: TableRef, names: ArtefactNames, swapped: boolean, log: Logger): Promise<void>;
}
