// Holding the copy's next chunk until some statements have run on the original, so that
// the chunk reads rows the stream has not delivered (or the engine has not applied) yet:
// rows read ahead of the stream, the situation behind issue 10.

import { openDb, type Db } from './db.js';
import { waitUntil } from './alter.js';
import { endVacuumGuard } from './pg-vacuum-guard.js';
import type { AlterJob } from '../../src/engine/job.js';
import type { BeforeChunkCommit } from '../../src/dialects/dialect.js';

/** A beforeChunkCommit hook factory; `done` resolves once its staging (if any) is over. */
export type Staging = ((job: AlterJob, db: Db, url: string) => BeforeChunkCommit) & { done?: Promise<void> };

/**
 * Holds the chunk after the first one on a lock on the shadow (queued behind the first
 * chunk, so granted when it commits, before anything else writes the shadow) until
 * `statements` have run on the original; then the chunk reads. The pump applies before
 * every chunk, and not again until the chunk is done, so their events are applied after
 * the chunk copied the rows as the statements left them. A chunk that gives up waiting
 * (its lock_timeout) is retried, still before the pump runs.
 */
export function holdNextChunkUntil(statements: string[]): Staging {
  let resolve!: () => void;
  let reject!: (e: unknown) => void;
  const staging: Staging = (job, db, url) => {
    let started = false;
    return async () => {
      if (started) return;
      started = true;
      const shadow = job.status().shadowTable!;
      await endVacuumGuard(db);
      const locker = await openDb(url);
      await locker.exec('BEGIN');
      const granted = locker.exec(`LOCK TABLE ${shadow} IN SHARE MODE`);
      const waiting = async (who: string) =>
        (await db.query(`SELECT 1 FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE l.relation = '${shadow}'::regclass AND NOT l.granted AND ${who}`)).length > 0;
      await waitUntil(() => waiting(`l.mode = 'ShareLock'`), 'the lock to queue');
      (async () => {
        await granted;
        await waitUntil(() => waiting(`a.query LIKE '%FOR SHARE%'`), 'the next chunk to wait for the lock');
        for (const sql of statements) await db.exec(sql);
        await locker.exec('COMMIT');
        await locker.close();
      })().then(resolve, reject);
    };
  };
  staging.done = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  staging.done.catch(() => undefined);
  return staging;
}

