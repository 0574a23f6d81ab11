// The atomic swap, gh-ost's algorithm (FIELD-NOTES: confirmed on MariaDB 10.11).
//
//   A: CREATE TABLE <backup name> (the sentry); LOCK TABLES original WRITE, sentry WRITE
//   A: drainUnderLock(): a marker goes through the binlog and everything up to it is
//      applied, so every write committed before the lock is in the shadow
//   B: RENAME TABLE original TO backup, shadow TO original      -- blocks on A's locks
//   A: sees B waiting for the metadata lock in the processlist
//   A: DROP TABLE sentry; UNLOCK TABLES                          -- B's RENAME runs
//
// Why this is atomic to clients: from the LOCK until the RENAME completes, the name
// `original` always exists and every client statement on it waits on its metadata
// lock. B's RENAME is queued before the UNLOCK, and a pending exclusive metadata lock
// (RENAME) is granted before pending shared-write locks (the application's DML), so
// when A unlocks, the RENAME runs first and the waiting DML then opens the new table:
// no client sees "table doesn't exist", and none writes to the old table after the
// drain. RENAME TABLE with two pairs is a single atomic DDL. If A dies before
// unlocking, its locks go but the sentry stays: B's RENAME then fails (the target
// name exists) instead of swapping in a shadow that missed writes.
//
// On MySQL 8.0.13+ (not MariaDB: ERROR 1192) RENAME TABLE is allowed under LOCK TABLES,
// which is also atomic and simpler (Spirit uses it). It is not used: it cannot be
// tested here, and the sentry algorithm is correct on MySQL 5.7/8 and MariaDB alike.
//
// Any failure before the unlock: B's query is KILLed first (before anything is
// unlocked, so it can never run early), then the sentry is dropped and the tables
// unlocked; the original and the shadow are exactly as before, and the engine retries.

import type { Connection, RowDataPacket } from 'mysql2/promise';
import type { ArtefactNames, CopyPlan, Cutover, CutoverOptions } from '../dialect.js';
import { CutoverAttemptError, ShadowshiftError, TransientDatabaseError } from '../../util/errors.js';
import { dedicatedConnection, type MyContext } from './mysql-context.js';
import { quoteTable } from './mysql-quote.js';
import { SENTRY_COMMENT } from './mysql-shadow.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** How long B gets, after the sentry is dropped, to queue its RENAME on the original (see swap()). */
const RENAME_QUEUE_GRACE_MS = 50;

export class MysqlCutover implements Cutover {
  constructor(private readonly ctx: MyContext) {}

  async swap(plan: CopyPlan, names: ArtefactNames, options: CutoverOptions): Promise<void> {
    const { schema, name } = plan.original.ref;
    const original = quoteTable(schema, name);
    const shadow = quoteTable(schema, names.shadow);
    const sentryName = names.extra.sentry ?? names.backup;
    const sentry = quoteTable(schema, sentryName);
    // With a fence (a sentry that sorts after the original), the RENAME also moves a
    // dummy onto the sentry's name: it still fails while the sentry exists, and its
    // first blocking lock is now the original's.
    const sourceName = names.extra.sentrySource;
    const source = sourceName ? quoteTable(schema, sourceName) : null;
    const backup = quoteTable(schema, names.backup);
    const lockSeconds = Math.max(1, Math.ceil(options.lockTimeoutMs / 1000));
    const log = options.log;

    const a = await dedicatedConnection(this.ctx);
    let b: Connection | null = null;
    let bId: number | null = null;
    let rename: Promise<unknown> | null = null;
    let renameSettled = false;
    let renameError: unknown = null;
    let locked = false;
    let sentryCreated = false;
    try {
      await a.query(`SET SESSION lock_wait_timeout = ${lockSeconds}`);
      // A sentry left by an earlier attempt whose connection died.
      const [left] = await a.query<RowDataPacket[]>(
        'SELECT TABLE_COMMENT AS c FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?',
        [schema, sentryName],
      );
      if (left[0]) {
        if (String(left[0].c) !== SENTRY_COMMENT) {
          throw new ShadowshiftError(`cannot cut over: a table named ${sentryName} already exists in ${schema}; rename or drop it and run again`);
        }
        await a.query(`DROP TABLE IF EXISTS ${sentry}`);
      }
      if (source) {
        const [prev] = await a.query<RowDataPacket[]>('SELECT TABLE_COMMENT AS c FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?', [schema, sourceName]);
        if (prev[0] && String(prev[0].c) !== SENTRY_COMMENT) {
          throw new ShadowshiftError(`cannot cut over: a table named ${sourceName} already exists in ${schema}; rename or drop it and run again`);
        }
        await a.query(`DROP TABLE IF EXISTS ${source}`);
        await a.query(`CREATE TABLE ${source} (id INT NOT NULL PRIMARY KEY) ENGINE=InnoDB COMMENT='${SENTRY_COMMENT}'`);
      }
      await a.query(`CREATE TABLE ${sentry} (id INT NOT NULL PRIMARY KEY) ENGINE=InnoDB COMMENT='${SENTRY_COMMENT}'`);
      sentryCreated = true;
      const [aid] = await a.query<RowDataPacket[]>('SELECT CONNECTION_ID() AS id');
      const lock = a.query(`LOCK TABLES ${original} WRITE, ${sentry} WRITE`);
      let killer: ReturnType<typeof setTimeout> | null = null;
      if (options.killBlockersAfterMs !== undefined && options.killBlockersAfterMs < options.lockTimeoutMs) {
        let lockDone = false;
        lock.then(
          () => (lockDone = true),
          () => (lockDone = true),
        );
        killer = setTimeout(() => {
          if (!lockDone) void killBlockers(this.ctx, schema, name, Number(aid[0]!.id), log);
        }, options.killBlockersAfterMs);
      }
      try {
        await lock;
      } finally {
        if (killer) clearTimeout(killer);
      }
      locked = true;
      const lockedAt = Date.now();

      await options.drainUnderLock();

      b = await dedicatedConnection(this.ctx);
      await b.query(`SET SESSION lock_wait_timeout = ${lockSeconds + 5}`);
      const [idRows] = await b.query<RowDataPacket[]>('SELECT CONNECTION_ID() AS id');
      bId = Number(idRows[0]!.id);
      rename = b.query(`RENAME TABLE ${original} TO ${backup}, ${shadow} TO ${original}${source ? `, ${source} TO ${sentry}` : ''}`).then(
        () => {
          renameSettled = true;
        },
        (err: unknown) => {
          renameSettled = true;
          renameError = err;
        },
      );

      // B must be waiting on our locks before we let go; otherwise it has not been queued yet.
      const deadline = Date.now() + Math.max(1000, options.lockTimeoutMs);
      for (;;) {
        if (renameSettled) {
          throw new CutoverAttemptError(`the RENAME failed before the tables were unlocked: ${(renameError as Error | null)?.message ?? 'it finished early'}`);
        }
        const [pl] = await a.query<RowDataPacket[]>('SELECT STATE, INFO FROM information_schema.PROCESSLIST WHERE ID = ?', [bId]);
        const state = String(pl[0]?.STATE ?? '');
        if (/metadata lock/i.test(state) && /^\s*RENAME/i.test(String(pl[0]?.INFO ?? ''))) break;
        if (Date.now() > deadline) throw new CutoverAttemptError(`the RENAME did not queue behind the lock within ${options.lockTimeoutMs} ms (state "${state}")`);
        await sleep(10);
      }

      await a.query(`DROP TABLE ${sentry}`);
      sentryCreated = false;
      // RENAME takes its metadata locks one at a time in sorted name order. With the fence
      // (`<table>~ssf`, sorting after `<table>`), B's first blocking request is on the
      // original, so once we unlock it is granted before the application's queued DML.
      // Without it (a table name too long for the fence) B may still be waiting on the
      // sentry `_<table>_ssold_…`, which sorts first: after the DROP it must wake up and
      // queue on the original before our UNLOCK, or queued DML would write into the old
      // table after the drain (test/mysql/cutover-queue-order.test.ts). No statement can see
      // a pending lock while we hold WRITE, so that fallback only gets a grace period.
      if (!source) await sleep(RENAME_QUEUE_GRACE_MS);
      await a.query('UNLOCK TABLES');
      locked = false;
      await rename;
      if (renameError) {
        throw new CutoverAttemptError(`the RENAME failed: ${(renameError as Error).message}; the original table is as it was`);
      }
      log.info({ blockedMs: Date.now() - lockedAt }, 'tables swapped');
      // The dummy now sits under the sentry's name.
      if (source) await a.query(`DROP TABLE IF EXISTS ${sentry}`).catch((e: Error) => log.warn({ err: e.message }, 'could not drop the cut-over sentry'));
    } catch (err) {
      await this.restore(a, b, bId, rename, () => renameSettled, locked, sentryCreated, sentry, log);
      // Not under LOCK TABLES any more: the dummy can go (and the sentry, if the RENAME moved it there).
      if (source) await a.query(`DROP TABLE IF EXISTS ${source}`).catch((e: Error) => log.warn({ err: e.message }, 'could not drop the cut-over dummy'));
      if (err instanceof CutoverAttemptError) throw err;
      if (err instanceof ShadowshiftError && !(err instanceof TransientDatabaseError)) throw err;
      const e = err as { errno?: number; message: string };
      throw new CutoverAttemptError(
        e.errno === 1205 ? `could not lock ${name} within ${options.lockTimeoutMs} ms (lock wait timeout): a long transaction holds it` : `cut-over attempt failed: ${e.message}`,
        { cause: err },
      );
    } finally {
      await a.end().catch(() => a.destroy());
      if (b) await b.end().catch(() => b?.destroy());
    }
  }

  /** Puts everything back: B killed before anything is unlocked, then the sentry dropped and the tables unlocked. */
  private async restore(
    a: Connection,
    b: Connection | null,
    bId: number | null,
    rename: Promise<unknown> | null,
    settled: () => boolean,
    locked: boolean,
    sentryCreated: boolean,
    sentry: string,
    log: CutoverOptions['log'],
  ): Promise<void> {
    let bDead = !rename || settled();
    if (!bDead && bId !== null) {
      await a.query(`KILL QUERY ${bId}`).catch((e: Error) => log.warn({ err: e.message }, 'could not kill the pending RENAME'));
      const until = Date.now() + 3000;
      while (!settled() && Date.now() < until) await sleep(10);
      bDead = settled();
    }
    if (bDead) {
      if (sentryCreated) await a.query(`DROP TABLE IF EXISTS ${sentry}`).catch((e: Error) => log.warn({ err: e.message }, 'could not drop the sentry'));
      if (locked) await a.query('UNLOCK TABLES').catch(() => undefined);
    } else {
      // B is still queued: keep the sentry until B gives up, so the RENAME fails rather than runs.
      if (locked) await a.query('UNLOCK TABLES').catch(() => undefined);
      await rename;
      if (sentryCreated) await a.query(`DROP TABLE IF EXISTS ${sentry}`).catch((e: Error) => log.warn({ err: e.message }, 'could not drop the sentry'));
    }
    if (b && !settled()) b.destroy();
  }
}

/**
 * Ends the sessions holding a metadata lock on the table (each one logged), so the
 * cut-over's LOCK TABLES need not wait out lock_wait_timeout. Sessions are found in
 * information_schema.METADATA_LOCK_INFO (MariaDB, metadata_lock_info plugin) or
 * performance_schema.metadata_locks (MySQL 8); without either, nothing is killed.
 */
export async function killBlockers(ctx: MyContext, schema: string, table: string, self: number, log: CutoverOptions['log']): Promise<number[]> {
  const queries: Array<[string, unknown[]]> = [
    [
      `SELECT DISTINCT m.THREAD_ID AS id, p.USER AS user, p.TIME AS seconds, p.INFO AS info FROM information_schema.METADATA_LOCK_INFO m
         LEFT JOIN information_schema.PROCESSLIST p ON p.ID = m.THREAD_ID
        WHERE m.TABLE_SCHEMA = ? AND m.TABLE_NAME = ? AND m.THREAD_ID <> ? AND m.THREAD_ID <> CONNECTION_ID()`,
      [schema, table, self],
    ],
    [
      `SELECT DISTINCT t.PROCESSLIST_ID AS id, t.PROCESSLIST_USER AS user, t.PROCESSLIST_TIME AS seconds, t.PROCESSLIST_INFO AS info
         FROM performance_schema.metadata_locks m JOIN performance_schema.threads t ON t.THREAD_ID = m.OWNER_THREAD_ID
        WHERE m.OBJECT_TYPE = 'TABLE' AND m.OBJECT_SCHEMA = ? AND m.OBJECT_NAME = ? AND m.LOCK_STATUS = 'GRANTED'
          AND t.PROCESSLIST_ID IS NOT NULL AND t.PROCESSLIST_ID <> ? AND t.PROCESSLIST_ID <> CONNECTION_ID()`,
      [schema, table, self],
    ],
  ];
  for (const [sql, params] of queries) {
    let rows: RowDataPacket[];
    try {
      [rows] = await ctx.pool.query<RowDataPacket[]>(sql, params);
    } catch {
      continue; // that source does not exist on this server
    }
    const killed: number[] = [];
    for (const r of rows) {
      const id = Number(r.id);
      log.warn({ connection: id, user: r.user, seconds: r.seconds, query: r.info }, `ending the session that blocks the cut-over on ${table}`);
      await ctx.pool.query(`KILL ${id}`).then(
        () => killed.push(id),
        (err: Error) => log.warn({ connection: id, err: err.message }, 'could not end the blocking session'),
      );
    }
    return killed;
  }
  log.warn(
    { table },
    'cannot see who holds the lock (no information_schema.METADATA_LOCK_INFO: INSTALL SONAME \'metadata_lock_info\' on MariaDB; no performance_schema.metadata_locks on MySQL): waiting out the lock timeout instead',
  );
  return [];
}
