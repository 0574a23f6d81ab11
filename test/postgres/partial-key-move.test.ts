// Key changes of rows whose large values stay untouched: pgoutput sends those
// values as "unchanged TOAST", so the applier has only a partial image and must
// move the shadow row it already has (postgres-applier.ts, coalesce and
// applyPartial). Each case is one transaction (or a pinned interleaving) after
// which the shadow must equal the original. Found by the adversarial workload
// (test/acceptance/adversarial.test.ts). The pinned interleavings are issue 10: the
// shadow row under the old key was written by a read of the original (the applier's
// own read, or a chunk of the copy) that already saw the row leave and another row move
// in; taken as the moved row's values, it put the other row's large value under the
// new key (docs/ARCHITECTURE.md, "Partial key changes").

import { describe, it, expect } from 'vitest';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPgDatabase } from '../support/databases.js';
import { openDb, type Db } from '../support/db.js';
import { newJob, waitUntil } from '../support/alter.js';
import type { AlterJob } from '../../src/engine/job.js';
import type { BeforeChunkCommit } from '../../src/dialects/dialect.js';
import { holdNextChunkUntil, type Staging } from '../support/held-chunk.js';
import { endVacuumGuard } from '../support/pg-vacuum-guard.js';

/** ~51 KB of hex digits: pglz cannot shrink it by a quarter, so it is stored out of line (TOAST). */
const big = (seed: string) => `(SELECT string_agg(md5(g::text || '${seed}'), '') FROM generate_series(1, 1600) g)`;

/** Rows 8 and 9 have large values; with chunks of 2 the copy walks (-inf, 2], (2, 8], (8, 10]. */
const SIX_ROWS = `(1, 1, NULL), (2, 2, NULL), (3, 3, NULL), (8, 8, ${big('r1')}), (9, 9, ${big('r2')}), (10, 10, NULL)`;

const md5Of = async (db: Db, seed: string) => (await db.query<{ m: string }>(`SELECT md5(${big(seed)}) AS m`))[0]!.m;

interface Setup {
  db: Db;
  job: AlterJob;
  run: Promise<unknown>;
  /** Resolves once the hook's staging (if it has one) is done. */
  staged(): Promise<void>;
  done(): Promise<void>;
}

/** A table t (id, v, big) with `rows`, and a job on it that is still running (postponed once copied). */
async function start(rows: string, options: { chunkSize?: number; beforeChunkCommit?: Staging } = {}): Promise<Setup> {
  const { url } = await createPgDatabase('pkm');
  const db = await openDb(url);
  await db.exec('CREATE TABLE t (id int PRIMARY KEY, v int, big text)');
  await db.exec(`INSERT INTO t VALUES ${rows}`);
  const dir = mkdtempSync(join(tmpdir(), 'ss-pkm-'));
  const flag = join(dir, 'postpone');
  writeFileSync(flag, '');
  // The checksum would repair the damage before the cut-over and hide it.
  let hook: BeforeChunkCommit | undefined;
  const job = newJob(url, 't', 'ADD COLUMN w int', {
    checksum: false,
    postponeCutoverFlagFile: flag,
    chunkSize: options.chunkSize,
    // These interleavings need the stream applied between chunks: the copy under row locks
    // (a resume's, or the rest after the snapshot phase ends early; test/postgres/snapshot-copy.test.ts).
    copySnapshotMaxSeconds: 0,
    testHooks: { beforeChunkCommit: (range) => hook?.(range) ?? Promise.resolve() },
  });
  if (options.beforeChunkCommit) hook = options.beforeChunkCommit(job, db, url);
  const run = job.execute(await job.prepare());
  run.catch(() => undefined);
  return {
    db,
    job,
    run,
    staged: () => options.beforeChunkCommit?.done ?? Promise.resolve(),
    async done() {
      job.controls.abort('test over');
      await run.catch(() => undefined);
      await job.close();
      await db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Once a row inserted last is in the shadow, everything committed before it is applied too. */
async function shadowAndOriginal(s: Setup): Promise<{ shadow: unknown[]; original: unknown[] }> {
  await waitUntil(() => s.job.status().state === 'postponed', 'the copy to finish');
  expect(s.job.status().error).toBeNull();
  await s.db.exec('INSERT INTO t VALUES (1000, 0, NULL)');
  const shadow = s.job.status().shadowTable!;
  await waitUntil(async () => (await s.db.query(`SELECT 1 FROM ${shadow} WHERE id = 1000`)).length > 0, 'the last insert to reach the shadow');
  const read = (table: string) => s.db.query(`SELECT id, v, md5(big) AS big FROM ${table} ORDER BY id`);
  return { shadow: await read(shadow), original: await read('t') };
}

async function inOneTransaction(db: Db, statements: string[]): Promise<void> {
  await db.exec('BEGIN');
  for (const sql of statements) await db.exec(sql);
  await db.exec('COMMIT');
}

describe('postgres: key changes of rows with unchanged TOAST values', () => {
  // coalesce() records the key change 1 -> 2 as a 'move' and drops the delete of key 1
  // (the move would carry the row away); the delete of key 2 then replaces the move, so
  // nothing removes row 1. The shadow keeps row 1, which the original no longer has.
  it('a key change followed by a delete of the new key, in one transaction', async () => {
    const s = await start(`(1, 1, ${big('a')})`);
    try {
      await waitUntil(() => s.job.status().state === 'postponed', 'the copy to finish');
      await inOneTransaction(s.db, ['UPDATE t SET id = 2 WHERE id = 1', 'DELETE FROM t WHERE id = 2']);
      const { shadow, original } = await shadowAndOriginal(s);
      expect(shadow).toEqual(original);
    } finally {
      await s.done();
    }
  });

  // Same cause: the full image of key 2 (its large value rewritten) replaces the move,
  // and row 1 stays behind next to row 2 (a duplicate of every other column, e.g. a
  // unique one, which then fails the deferred index build as "duplicate data").
  it('a key change followed by a rewrite of the large value, in one transaction', async () => {
    const s = await start(`(1, 1, ${big('a')})`);
    try {
      await waitUntil(() => s.job.status().state === 'postponed', 'the copy to finish');
      await inOneTransaction(s.db, ['UPDATE t SET id = 2 WHERE id = 1', `UPDATE t SET big = ${big('b')} WHERE id = 2`]);
      const { shadow, original } = await shadowAndOriginal(s);
      expect(shadow).toEqual(original);
    } finally {
      await s.done();
    }
  });

  // Two rows swap keys through a temporary one. The third change merges into the first
  // move (1 -> 3 -> 2 becomes "move row 1 to 2"), ordered after "move row 2 to 1",
  // whose stale-row delete at key 1 removes row 1 first. The shadow ends with one row
  // (key 2: row 1's v, row 2's large value) where the original has two.
  it('two rows swapping keys through a temporary key, in one transaction', async () => {
    const s = await start(`(1, 1, ${big('a')}), (2, 2, ${big('b')})`);
    try {
      await waitUntil(() => s.job.status().state === 'postponed', 'the copy to finish');
      await inOneTransaction(s.db, ['UPDATE t SET id = 3 WHERE id = 1', 'UPDATE t SET id = 1 WHERE id = 2', 'UPDATE t SET id = 2 WHERE id = 3']);
      const { shadow, original } = await shadowAndOriginal(s);
      expect(shadow).toEqual(original);
    } finally {
      await s.done();
    }
  });

  // A partial image of a row whose chunk is not copied yet is completed from the
  // original's CURRENT row under that key (completeFromOriginal). Here that is already
  // another row: row 8 moved to 30 and row 9 moved into 8 before the first event was
  // applied (the applier is held on a lock meanwhile). The next batch moves "row 8"
  // to 30 by key; the shadow row under 8 is row 9, read after that move committed, so
  // the move must not take row 30's large value from it (30 is past the copy's end:
  // nothing later would correct it).
  it("an update completed from the original's newer row under the same key", async () => {
    let staged: Promise<void> | null = null;
    const s = await start(SIX_ROWS, {
      chunkSize: 2,
      beforeChunkCommit: (job, db, url) => async () => {
        if (staged) return;
        const shadow = job.status().shadowTable!;
        await db.exec('UPDATE t SET v = 100 WHERE id = 8');
        await waitUntil(() => job.status().backlog >= 1, 'the update to be in the stream');
        // Queued behind this chunk, the lock is granted before the applier's first write.
        await endVacuumGuard(db);
        const locker = await openDb(url);
        await locker.exec('BEGIN');
        const granted = locker.exec(`LOCK TABLE ${shadow} IN EXCLUSIVE MODE`);
        const waiting = async (mode: string) => (await db.query(`SELECT 1 FROM pg_locks WHERE relation = '${shadow}'::regclass AND NOT granted${mode}`)).length > 0;
        await waitUntil(() => waiting(" AND mode = 'ExclusiveLock'"), 'the lock to queue');
        staged = (async () => {
          await granted;
          await waitUntil(() => waiting(''), 'the applier to wait for the lock');
          await db.exec('UPDATE t SET id = 30 WHERE id = 8');
          await db.exec('UPDATE t SET id = 8 WHERE id = 9');
          await locker.exec('COMMIT');
          await locker.close();
        })();
      },
    });
    try {
      await waitUntil(() => staged !== null, 'the first chunk');
      await staged;
      const { shadow, original } = await shadowAndOriginal(s);
      expect(shadow).toEqual(original);
    } finally {
      await s.done();
    }
  });

  // The same with the copy as the read that fills the old key: the chunk (2, 8] reads
  // while the statements below have committed and before the pump applies their events
  // (it is held on a lock until they have). It copies row 9 under key 8; then the move
  // 8 -> 30 arrives.
  it('a key refilled by the copy before the move out of it is applied', async () => {
    const s = await start(SIX_ROWS, { chunkSize: 2, beforeChunkCommit: holdNextChunkUntil(['UPDATE t SET id = 30 WHERE id = 8', 'UPDATE t SET id = 8 WHERE id = 9']) });
    try {
      await s.staged();
      const { shadow, original } = await shadowAndOriginal(s);
      expect(shadow).toEqual(original);
      expect(shadow).toContainEqual({ id: 30, v: 8, big: await md5Of(s.db, 'r1') });
    } finally {
      await s.done();
    }
  });

  // A chain: 8 -> 30 -> 31 is one move from 8, coalesced in one batch or not; whether the
  // shadow row under 8 can be trusted depends on the transaction in which the row left 8.
  // The row moving in also changes v, and an update in place of row 8 comes first.
  it('a chain out of a key refilled by the copy', async () => {
    const s = await start(SIX_ROWS, {
      chunkSize: 2,
      beforeChunkCommit: holdNextChunkUntil(['UPDATE t SET v = 100 WHERE id = 8', 'UPDATE t SET id = 30 WHERE id = 8', 'UPDATE t SET id = 31 WHERE id = 30', 'UPDATE t SET id = 8, v = 90 WHERE id = 9']),
    });
    try {
      await s.staged();
      const { shadow, original } = await shadowAndOriginal(s);
      expect(shadow).toEqual(original);
      expect(shadow).toContainEqual({ id: 31, v: 100, big: await md5Of(s.db, 'r1') });
    } finally {
      await s.done();
    }
  });

  // Subtransactions: rows written inside a savepoint carry the subtransaction's id, the
  // stream gives the top-level one. The check compares only top-level ids (the stream's,
  // and pg_current_snapshot's), which commit with their subtransactions; a savepoint
  // rolled back sends nothing.
  it('moves inside savepoints, one rolled back, out of a key refilled by the copy', async () => {
    const s = await start(SIX_ROWS, {
      chunkSize: 2,
      beforeChunkCommit: holdNextChunkUntil([
        'BEGIN',
        'SAVEPOINT a',
        'UPDATE t SET id = 30 WHERE id = 8',
        'RELEASE SAVEPOINT a',
        'SAVEPOINT b',
        'UPDATE t SET id = 40 WHERE id = 10',
        'ROLLBACK TO SAVEPOINT b',
        'SAVEPOINT c',
        'UPDATE t SET id = 8 WHERE id = 9',
        'RELEASE SAVEPOINT c',
        'COMMIT',
      ]),
    });
    try {
      await s.staged();
      const { shadow, original } = await shadowAndOriginal(s);
      expect(shadow).toEqual(original);
      expect(shadow).toContainEqual({ id: 30, v: 8, big: await md5Of(s.db, 'r1') });
    } finally {
      await s.done();
    }
  });
});
