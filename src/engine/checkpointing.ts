// Checkpoints (invariant 8 in docs/ARCHITECTURE.md). Every job writes them, not only a
// `--resumable` one: a crash (SIGKILL, power loss, OOM) runs no cleanup, and what it
// leaves must be resumable at the cost of at most one interval of work. So a checkpoint
// is saved every interval wherever the job applies the stream (the copy loop, catch-up,
// the deferred index build, postponed, the cut-over's back-off), and at once at every
// phase change. Only the policy is here; the dialect's CheckpointStore writes it.

import type { Checkpoint, CheckpointStore, TableRef } from '../dialects/dialect.js';
import type { Logger } from '../util/logger.js';
import { UsageError } from '../util/errors.js';

export const DEFAULT_CHECKPOINT_INTERVAL_SECONDS = 5;
export const DEFAULT_CHECKPOINT_MAX_AGE_SECONDS = 7 * 24 * 3600;

/** What the job is at, or null while nothing worth recording is known yet. */
export type CheckpointSource = () => Omit<Checkpoint, 'version' | 'savedAt'> | null;

/** The last checkpoint saved (status `lastCheckpoint`): where a crash now would resume from. */
export interface SavedCheckpoint {
  savedAt: string;
  phase: Checkpoint['phase'];
  rowsCopied: number;
}

export class Checkpointer {
  private lastSavedAt = 0;
  last: SavedCheckpoint | null = null;
  private saving: Promise<void> = Promise.resolve();

  constructor(
    private readonly store: CheckpointStore | undefined,
    private readonly intervalMs: number,
    private readonly source: CheckpointSource,
    private readonly log: Logger,
  ) {}

  get enabled(): boolean {
    return this.store !== undefined;
  }

  /** Saves when the interval has passed since the last save. */
  async maybe(): Promise<void> {
    if (!this.store || Date.now() - this.lastSavedAt < this.intervalMs) return;
    await this.now();
  }

  /** Saves now (a phase change, or the last one before state is kept). Saves never overlap. */
  async now(): Promise<void> {
    if (!this.store) return;
    const store = this.store;
    const run = this.saving.then(async () => {
      const cp = this.source();
      if (!cp) return;
      const savedAt = new Date().toISOString();
      await store.save({ version: 1, ...cp, savedAt });
      this.lastSavedAt = Date.now();
      this.last = { savedAt, phase: cp.phase, rowsCopied: cp.rowsCopied };
      this.log.debug({ rowsCopied: cp.rowsCopied, watermark: cp.watermark, position: cp.streamPosition }, 'checkpoint saved');
    });
    this.saving = run.catch(() => undefined);
    try {
      await run;
    } catch (err) {
      // A checkpoint not written costs more work after a crash, never correctness: the job goes on.
      this.log.warn({ err: (err as Error).message }, 'could not write a checkpoint; a crash now would resume from an older one');
    }
  }
}

/** The table's checkpoint for `--resume`, checked against the command before anything runs. */
export async function loadCheckpoint(store: CheckpointStore | undefined, dialect: string, ref: TableRef, alter: string, maxAgeSeconds?: number): Promise<Checkpoint> {
  if (!store) throw new UsageError(`--resume is not built for ${dialect} yet`);
  const cp = await store.load(ref);
  if (!cp) throw new UsageError(`there is no checkpoint for ${ref.schema}.${ref.name} to resume; run without --resume to start a new job`);
  if (cp.alter.trim() !== alter.trim()) {
    throw new UsageError(
      `the checkpoint for ${ref.schema}.${ref.name} is for a different ALTER ("${cp.alter}"); resume with that exact --alter, ` +
        'or run `shadowshift cleanup --execute` and start again',
    );
  }
  const ageSeconds = (Date.now() - Date.parse(cp.savedAt)) / 1000;
  const maxAge = maxAgeSeconds ?? DEFAULT_CHECKPOINT_MAX_AGE_SECONDS;
  if (ageSeconds > maxAge) {
    throw new UsageError(
      `the checkpoint for ${ref.schema}.${ref.name} is ${Math.round(ageSeconds)}s old, over --checkpoint-max-age ${maxAge}s; the log it needs may be gone. ` +
        'Run `shadowshift cleanup --execute` and start again',
    );
  }
  return cp;
}
