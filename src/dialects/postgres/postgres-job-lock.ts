// One job per table: a session-level advisory lock held on a dedicated connection for
// the job's life. If the process dies, the connection closes and the lock goes with it.
//
// If that connection ends while the job runs (pg_terminate_backend, a server restart,
// a network cut), the lock is gone with it. The lock is then taken again on a new
// connection, with backoff. If another job took it meanwhile, or it cannot be taken
// again, the job must stop: `lost(ref)` rejects (and `onLost` listeners are called)
// with a ShadowshiftError saying so.

import type pg from 'pg';
import type { TableRef } from '../dialect.js';
import { dedicatedClient, type PgContext } from './postgres-context.js';
import { RetryBudget } from '../../util/reconnect.js';
import { ShadowshiftError, TransientDatabaseError } from '../../util/errors.js';

/** First half of every shadowshift advisory lock key (hashtext('shadowshift')). */
export const LOCK_CLASS_SQL = `hashtext('shadowshift')`;

export function lockKeyText(ref: TableRef): string {
  return `${ref.schema}.${ref.name}`;
}

export interface JobLockOptions {
  /** Attempts to connect again after the lock's connection ended, before giving up. */
  reacquireAttempts?: number;
  /** First backoff between attempts (doubles, at most 5 s). */
  reacquireDelayMs?: number;
}

interface Held {
  ref: TableRef;
  client: pg.Client;
  released: boolean;
  /** Rejects once the lock is lost for good. */
  lost: Promise<never>;
  fail: (err: Error) => void;
  /** Resolves when a re-acquire in progress has finished (either way). */
  recovering: Promise<void> | null;
  reacquired: number;
}

/** Tries (about 3 s with backoff) before a held lock counts as taken by another job. */
const HELD_RETRIES = 5;

export class PostgresJobLocks {
  private readonly held = new Map<string, Held>();
  private readonly listeners = new Set<(ref: TableRef, err: Error) => void>();

  constructor(
    private readonly ctx: PgContext,
    private readonly options: JobLockOptions = {},
  ) {}

  async acquire(ref: TableRef): Promise<void> {
    const key = lockKeyText(ref);
    if (this.held.has(key)) return;
    const c = await this.lockOn(ref);
    let fail!: (err: Error) => void;
    const lost = new Promise<never>((_, reject) => {
      fail = reject;
    });
    lost.catch(() => undefined);
    const h: Held = { ref: { ...ref }, client: c, released: false, lost, fail, recovering: null, reacquired: 0 };
    this.held.set(key, h);
    this.watch(h, c);
  }

  /**
   * Rejects when the job lock of `ref` is lost for good (its connection ended and it
   * could not be taken again, or another job has it now). Never settles otherwise.
   * The engine races it against its work, like ChangeStream.failed.
   */
  lost(ref: TableRef): Promise<never> {
    const h = this.held.get(lockKeyText(ref));
    if (!h) return Promise.reject(new ShadowshiftError(`the job lock of ${ref.schema}.${ref.name} is not held`));
    return h.lost;
  }

  /** Calls `listener` when a held lock is lost for good. Returns a function that removes it. */
  onLost(listener: (ref: TableRef, err: Error) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Waits for a re-acquire in progress (tests, and release()). */
  async settled(ref: TableRef): Promise<void> {
    await this.held.get(lockKeyText(ref))?.recovering;
  }

  /** How often the lock of `ref` was taken again after its connection ended. */
  reacquiredCount(ref: TableRef): number {
    return this.held.get(lockKeyText(ref))?.reacquired ?? 0;
  }

  private async lockOn(ref: TableRef): Promise<pg.Client> {
    const key = lockKeyText(ref);
    const c = await dedicatedClient(this.ctx, 'shadowshift job lock');
    try {
      const r = await c.query<{ ok: string }>(`SELECT pg_try_advisory_lock(${LOCK_CLASS_SQL}, hashtext($1))::text AS ok`, [key]);
      if (r.rows[0]?.ok !== 'true') {
        throw new ShadowshiftError(
          `another shadowshift job is already running on ${ref.schema}.${ref.name} (it holds the table's advisory lock). ` +
            `Wait for it to finish, or stop it; \`shadowshift cleanup\` shows its artefacts as in use.`,
        );
      }
      return c;
    } catch (err) {
      await c.end().catch(() => undefined);
      throw err;
    }
  }

  private watch(h: Held, c: pg.Client): void {
    let noticed = false;
    const onGone = (err?: Error) => {
      if (noticed || h.released || h.client !== c) return;
      noticed = true;
      h.recovering = this.reacquire(h, err?.message ?? 'the connection ended').finally(() => {
        h.recovering = null;
      });
    };
    c.on('error', (err) => onGone(err));
    c.on('end', () => onGone());
  }

  private async reacquire(h: Held, why: string): Promise<void> {
    const { ref } = h;
    const table = `${ref.schema}.${ref.name}`;
    const attempts = this.options.reacquireAttempts ?? 8;
    let delay = this.options.reacquireDelayMs ?? 200;
    this.ctx.log.warn({ table, err: why }, 'the connection holding the job lock ended; taking the lock again');
    await h.client.end().catch(() => undefined);
    let last: Error = new Error(why);
    // At least `attempts`, and through a database restart (util/reconnect.ts).
    const budget = new RetryBudget(attempts);
    for (let attempt = 1; !h.released; attempt++) {
      try {
        const c = await this.lockOn(ref);
        if (h.released) {
          await c.end().catch(() => undefined);
          return;
        }
        h.client = c;
        h.reacquired++;
        this.watch(h, c);
        this.ctx.log.info({ table, attempt }, 'job lock taken again');
        return;
      } catch (err) {
        last = err as Error;
        // The terminated backend can hold the lock for a moment while it exits:
        // only a lock still held after a few tries belongs to another job.
        const heldByOther = err instanceof ShadowshiftError && !(err instanceof TransientDatabaseError);
        if (heldByOther && attempt < HELD_RETRIES) {
          this.ctx.log.warn({ table, attempt }, 'the job lock is still held (the old connection may be exiting); trying again');
          await new Promise((r) => setTimeout(r, delay));
          delay = Math.min(5000, delay * 2);
          continue;
        }
        if (heldByOther) {
          // Another job holds it now: this job must not go on.
          this.lose(h, new ShadowshiftError(
            `lost the job lock on ${table} (its connection ended: ${why}) and another shadowshift job took it meanwhile; ` +
              'this job stops so that two jobs never work on one table. Check that other job; run `shadowshift cleanup` to list the artefacts.',
            { cause: err },
          ));
          return;
        }
        this.ctx.log.warn({ table, attempt, err: last.message }, 'could not take the job lock again yet');
        if (!budget.retryAfter(attempt)) break;
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(2000, delay * 2);
      }
    }
    if (h.released) return;
    this.lose(h, new ShadowshiftError(
      `lost the job lock on ${table} (its connection ended: ${why}) and could not take it again (${attempts} attempts or more) (${last.message}); ` +
        'this job stops, since another job could start on the table',
      { cause: last },
    ));
  }

  private lose(h: Held, err: Error): void {
    this.ctx.log.error({ table: lockKeyText(h.ref), err: err.message }, 'job lock lost');
    h.fail(err);
    for (const l of [...this.listeners]) {
      try {
        l(h.ref, err);
      } catch {
        /* a listener's own problem */
      }
    }
  }

  async release(ref: TableRef): Promise<void> {
    const key = lockKeyText(ref);
    const h = this.held.get(key);
    if (!h) return;
    this.held.delete(key);
    h.released = true;
    await h.recovering;
    const c = h.client;
    await c.query(`SELECT pg_advisory_unlock(${LOCK_CLASS_SQL}, hashtext($1))`, [key]).catch(() => undefined);
    await c.end().catch(() => undefined);
  }

  async releaseAll(): Promise<void> {
    for (const { ref } of [...this.held.values()]) await this.release(ref);
  }
}

/** Whether some session holds the job lock of this table. */
export async function jobLockHeld(db: Pick<pg.Pool, 'query'>, ref: TableRef): Promise<boolean> {
  const r = await db.query<{ held: string }>(
    `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2
        AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
        AND classid = ((${LOCK_CLASS_SQL})::bigint & 4294967295)::text::oid
        AND objid = (hashtext($1)::bigint & 4294967295)::text::oid)::text AS held`,
    [lockKeyText(ref)],
  );
  return r.rows[0]?.held === 'true';
}

/** Whether any shadowshift job of this database holds its job lock (the shared tables are in use then). */
export async function anyJobLockHeld(db: Pick<pg.Pool, 'query'>): Promise<boolean> {
  const r = await db.query<{ held: string }>(
    `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2
        AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
        AND classid = ((${LOCK_CLASS_SQL})::bigint & 4294967295)::text::oid)::text AS held`,
  );
  return r.rows[0]?.held === 'true';
}
