// The atomic swap, gh-ost's algorithm (FIELD-NOTES: confirmed on MariaDB 10.11).
//
//   A: CREATE TABLE <backup name> (the sentry); LOCK TABLES original WRITE, sentry WRITE
//   A: drainUnderLock(): a marker goes through the binlog and everything up to it is
//      applied, so every write committed before the lock is in the shadow
//   B: RENAME TABLE original TO backup, shadow TO original      -- blocks on A's lock
//   A: proves B waits on the original (below)
//   A: MariaDB: no backup (FTWRL, BACKUP STAGE) waits to be let in by the unlock
//   A: DROP TABLE sentry; UNLOCK TABLES                          -- B's RENAME runs
//
// Why this is atomic to clients: from the LOCK until the RENAME completes, the name
// `original` always exists and every client statement on it waits on its metadata
// lock. If B's RENAME is queued on the original before the UNLOCK, its pending
// exclusive lock is granted before the application's pending shared-write locks, so
// the RENAME runs first and the waiting DML then opens the new table: no client sees
// "table doesn't exist", and none writes to the old table after the drain. RENAME TABLE
// with two pairs is a single atomic DDL. If A dies before unlocking, its locks go but
// the sentry stays: B's RENAME then fails (the target name exists) instead of swapping
// in a shadow that missed writes.
//
// The proof that B is queued on the original, not timed and not guessed from a
// processlist state alone: RENAME takes its table metadata locks one at a time in
// sorted name order, and every other name in the statement sorts after the original
// (mysql-names.ts; checked again here, and at preflight). So B's first table lock is
// the original's, which A holds: while B's state is "Waiting for table metadata lock"
// (the server names the lock namespace it waits in: backup and schema waits read
// differently), B waits on the original. A session holding a lock on the shadow (an
// open transaction that read it) cannot fool this: B reaches the shadow only after it
// holds the original, and the application waits behind B meanwhile. Where the
// metadata_lock_info plugin is installed, A also checks that B holds no table lock yet
// and, before B is even sent, that nobody else holds the shadow, so such a reader
// fails the attempt (and it is retried) instead of stalling the application behind B.
//
// On MySQL 8.0.13+ (not MariaDB: ERROR 1192) RENAME TABLE is allowed under LOCK TABLES,
// which is also atomic and simpler (Spirit uses it). It is not used: it cannot be
// tested here, and the sentry algorithm is correct on MySQL 5.7/8 and MariaDB alike.
//
// On MariaDB a backup lock request (FLUSH TABLES WITH READ LOCK, BACKUP STAGE) waiting
// behind A breaks the argument: granted at the unlock, it makes B give the original up
// again (mysql-backup-locks.ts). A refuses the attempt when it can see one, and the
// engine checks the binlog after every swap for writes that reached the old table
// (engine/swap-proof.ts).
//
// Any failure before the unlock: B's query is KILLed first (before anything is
// unlocked, so it can never run early), then the sentry is dropped and the tables
// unlocked; the original and the shadow are exactly as before, and the engine retries.
// If B's connection is lost after the unlock, the catalog says whether the swap
// happened (RENAME is atomic: either both names moved or neither).
//
// A parent table (other tables' keys reference it): A's lock also holds each child, and
// just before B's RENAME, A repoints their keys at the shadow, which the RENAME carries
// to the name; a failed attempt puts them back before the unlock (mysql-child-repoint.ts).

import type { Connection, RowDataPacket } from 'mysql2/promise';
import type { ArtefactNames, CopyPlan, Cutover, CutoverOptions, CutoverTiming, TableRef } from '../dialect.js';
import { finishShadow } from './mysql-deferred-indexes.js';
import { CutoverAttemptError, ShadowshiftError, TransientDatabaseError } from '../../util/errors.js';
import { dedicatedConnection, type MyContext } from './mysql-context.js';
import { quoteTable } from './mysql-quote.js';
import { raiseShadowCounter } from './mysql-auto-increment.js';
import { SENTRY_COMMENT } from './mysql-shadow.js';
import { canOrderNamesAfter, cannotOrderMessage, sortsAfter } from './mysql-names.js';
import { isConnectionLost } from './mysql-errors.js';
import { metadataLocksOf, otherHoldersOf } from './mysql-metadata-locks.js';
import { backupBlockers, describeBackupBlockers } from './mysql-backup-locks.js';
import { mysqlLockBlockers } from './mysql-lock-blockers.js';
import { addShadowKeys, dropShadowKeys, giveKeysTheirNames, keysLeftTemporary, onNewTable } from './mysql-shadow-keys.js';
import { declaredBy, type ForeignKey } from './mysql-foreign-keys.js';
import { ChildKeys, repointChildrenBack } from './mysql-child-repoint.js';
import { createShadowTriggers, dropShadowTriggers, dropTriggerSql, giveTriggersTheirNames, SHADOW_TRIGGER_SUFFIX, shadowTriggerName, triggersOf, type TriggerDefinition } from './mysql-triggers.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** The processlist state of a session waiting in the table namespace (MDL_key's wait state name). */
const WAITING_ON_A_TABLE = 'Waiting for table metadata lock';

/** Refuses (for good, not per attempt) a swap whose other names do not all sort after the table. */
export function assertSwapOrder(table: string, names: ArtefactNames): void {
  const misplaced = [names.shadow, names.backup].filter((n) => !sortsAfter(n, table));
  if (misplaced.length > 0) {
    throw new ShadowshiftError(
      `cannot prove the cut-over safe: ${misplaced.join(', ')} sort${misplaced.length === 1 ? 's' : ''} before ${table}, so the RENAME could wait on ` +
        (misplaced.length === 1 ? 'it' : 'them') + ' instead of on the table. ' +
        (canOrderNamesAfter(table) ? 'These names come from an earlier shadowshift (a resumed job?): run `shadowshift cleanup --execute` and start again.' : cannotOrderMessage(table)),
    );
  }
}

export class MysqlCutover implements Cutover {
  constructor(private readonly ctx: MyContext) {}

  async swap(plan: CopyPlan, names: ArtefactNames, options: CutoverOptions): Promise<CutoverTiming> {
    const { schema, name } = plan.original.ref;
    assertSwapOrder(name, names);
    const original = quoteTable(schema, name);
    const shadow = quoteTable(schema, names.shadow);
    const sentryName = names.backup;
    const sentry = quoteTable(schema, sentryName);
    const lockSeconds = Math.max(1, Math.ceil(options.lockTimeoutMs / 1000));
    const log = options.log;

    // Before any lock: a shadow never goes live without the keys it deferred (a no-op once built).
    await finishShadow(this.ctx, { schema, name: names.shadow });
    // Read before the lock: they change only by DDL on the table, which ends the job (mysql-stream-guard.ts).
    const ownKeys = (await declaredBy(this.ctx.pool, schema, name)).map((k) => onNewTable(k, plan));
    // Other tables' keys that reference it: A locks them too, and repoints them at the shadow before the swap (mysql-child-repoint.ts).
    const children = await ChildKeys.read(this.ctx.pool, schema, name, names.shadow);
    const a = await dedicatedConnection(this.ctx);
    let b: Connection | null = null;
    let bId: number | null = null;
    let rename: Promise<unknown> | null = null;
    let renameSettled = false;
    let renameError: unknown = null;
    let locked = false;
    let sentryCreated = false;
    /** The table's triggers, once B has created them on the shadow (mysql-triggers.ts). */
    let shadowTriggers: TriggerDefinition[] = [];
    /** The table's own foreign keys, once B has added them to the shadow (mysql-shadow-keys.ts). */
    let shadowKeys: ForeignKey[] = [];
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
      await a.query(`CREATE TABLE ${sentry} (id INT NOT NULL PRIMARY KEY) ENGINE=InnoDB COMMENT='${SENTRY_COMMENT}'`);
      sentryCreated = true;
      const [aid] = await a.query<RowDataPacket[]>('SELECT CONNECTION_ID() AS id');
      const aId = Number(aid[0]!.id);
      await options.beforeLock?.();
      // Application writes queue from this request until the RENAME (queued first) is done.
      const requestedAt = Date.now();
      const watch = options.killBlockers?.watch(mysqlLockBlockers(this.ctx, schema, [name, ...children.tables()], aId));
      try {
        await a.query(`LOCK TABLES ${[`${original} WRITE`, `${sentry} WRITE`, ...children.lockClauses()].join(', ')}`);
      } finally {
        await watch?.stop();
      }
      locked = true;
      const lockedAt = Date.now();

      await options.drainUnderLock();

      // A reader holding the shadow would make B wait there after it takes the original,
      // with the application queued behind it: give up this attempt instead.
      const holders = await otherHoldersOf(a, schema, names.shadow, [aId]);
      if (holders && holders.length > 0) {
        throw new CutoverAttemptError(
          `session${holders.length === 1 ? '' : 's'} ${holders.map((h) => `${h.id} (${h.user}, ${h.seconds}s)`).join(', ')} hold${holders.length === 1 ? 's' : ''} a lock on the shadow ${names.shadow}; ` +
            'the swap would wait for it while blocking the table. Retrying once it is released',
        );
      }

      b = await dedicatedConnection(this.ctx);
      await b.query(`SET SESSION lock_wait_timeout = ${lockSeconds}`);
      const [idRows] = await b.query<RowDataPacket[]>('SELECT CONNECTION_ID() AS id');
      bId = Number(idRows[0]!.id);
      if (options.raiseCounter) await raiseShadowCounter(a, b, schema, name, names.shadow);
      // Read under the lock, so that none changes before the swap; created by B, since A may
      // touch only the tables it locked. Nothing writes the shadow from here on.
      const triggers = await triggersOf(a, schema, name);
      // The DDL below would wait behind a backup lock request, with the application behind the lock.
      if (triggers.length > 0 || ownKeys.length > 0 || children.count > 0) await this.refuseWaitingBackup(a, [aId, bId], name);
      shadowTriggers = triggers;
      await createShadowTriggers(b, schema, names.shadow, triggers);
      shadowKeys = ownKeys;
      await addShadowKeys(b, schema, names.shadow, ownKeys);
      // Last, so that nothing writes or alters the shadow while a child references it.
      const repointMs = children.count > 0 ? await children.toShadow(a, log) : undefined;
      await options.beforeSwapForTests?.();
      rename = b.query(`RENAME TABLE ${original} TO ${sentry}, ${shadow} TO ${original}`).then(
        () => {
          renameSettled = true;
        },
        (err: unknown) => {
          renameSettled = true;
          renameError = err;
        },
      );

      await this.proveQueuedOnOriginal(a, bId, () => renameSettled, () => renameError, options.lockTimeoutMs);
      // A backup granted at the unlock would make the RENAME give the table back to the queued writes (mysql-backup-locks.ts).
      await this.refuseWaitingBackup(a, [aId, bId], name);

      await a.query(`DROP TABLE ${sentry}`);
      sentryCreated = false;
      await a.query('UNLOCK TABLES');
      locked = false;
      await rename;
      if (renameError) {
        if (!isConnectionLost(renameError)) {
          throw new CutoverAttemptError(`the RENAME failed: ${(renameError as Error).message}; the original table is as it was`);
        }
        if (!(await this.swapHappened(plan, names))) {
          throw new CutoverAttemptError(`the RENAME's connection was lost (${(renameError as Error).message}) and the swap did not happen; the original table is as it was`);
        }
        log.warn({ err: (renameError as Error).message }, "the RENAME's connection was lost, but the catalog shows the swap happened");
      }
      children.carried();
      const lockedMs = Date.now() - requestedAt;
      log.info({ blockedMs: Date.now() - lockedAt, lockedMs, ...(repointMs === undefined ? {} : { children: children.count, repointMs }) }, 'tables swapped');
      if (shadowTriggers.length > 0 || shadowKeys.length > 0) await options.beforeOwnNamesForTests?.();
      if (shadowTriggers.length > 0) await giveTriggersTheirNames(() => dedicatedConnection(this.ctx), schema, name, sentryName, shadowTriggers, lockSeconds, log);
      if (shadowKeys.length > 0) await giveKeysTheirNames(() => dedicatedConnection(this.ctx), schema, name, sentryName, shadowKeys, lockSeconds, log);
      return { lockedMs };
    } catch (err) {
      // Before anything is unlocked, the children go back on the original; if A cannot, a session of its own does (or the job stops).
      let putBackError = '';
      const putBack = () => children.backUnderLock(a).catch((e: Error) => void (putBackError = e.message));
      await this.restore(a, b, bId, rename, () => renameSettled, locked, sentryCreated, sentry, log, putBack);
      if (children.moved()) await children.backWithOwnLock(this.ctx, lockSeconds, log, putBackError || (err as Error).message);
      if (shadowTriggers.length > 0 || shadowKeys.length > 0) await this.dropShadowObjectsOrStop(schema, names.shadow);
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

  /**
   * MariaDB: a backup lock request waiting behind the cut-over fails the attempt. Also
   * before the shadow's triggers are created, whose DDL would wait behind that request
   * while the application waits behind the lock.
   */
  private async refuseWaitingBackup(a: Connection, ours: number[], name: string): Promise<void> {
    if (this.ctx.flavor !== 'mariadb') return;
    const backups = await backupBlockers(a, ours);
    if (backups.length > 0) {
      throw new CutoverAttemptError(
        `${describeBackupBlockers(backups)}. Swapping now would let that backup in ahead of the RENAME, and the writes queued on ${name} into the old table; ` +
          'retrying once the backup is done',
      );
    }
  }

  /**
   * After a failed attempt, before the stream is applied again: the applier must never
   * fire a trigger, nor write a shadow whose keys the server enforces. If they cannot be
   * dropped the job stops (not retried); its cleanup drops the shadow with them.
   */
  private async dropShadowObjectsOrStop(schema: string, shadow: string): Promise<void> {
    try {
      await dropShadowTriggers(this.ctx.pool, schema, shadow);
      await this.dropShadowKeys(schema, shadow);
    } catch (err) {
      throw new ShadowshiftError(
        `the cut-over attempt failed, and the triggers or foreign keys it created on ${shadow} could not be dropped (${(err as Error).message}); ` +
          'the job stops rather than apply changes that would fire them. Its cleanup drops the shadow with them',
        { cause: err },
      );
    }
  }

  private async dropShadowKeys(schema: string, shadow: string): Promise<string[]> {
    const conn = await dedicatedConnection(this.ctx);
    try {
      // Dropping a key waits for its parent's open transactions: not for the server's default year.
      await conn.query('SET SESSION lock_wait_timeout = 10');
      return await dropShadowKeys(conn, schema, shadow);
    } finally {
      await conn.end().catch(() => conn.destroy());
    }
  }

  async settleStoppedCutover(table: TableRef, names: ArtefactNames, swapped: boolean, log: CutoverOptions['log']): Promise<void> {
    const { schema } = table;
    if (!swapped) {
      // Any trigger or key on the shadow is the stopped cut-over's: the applier must not fire or meet it.
      const left = await dropShadowTriggers(this.ctx.pool, schema, names.shadow);
      if (left.length > 0) log.info({ triggers: left }, 'dropped the triggers the stopped cut-over had created on the shadow');
      const keys = await this.dropShadowKeys(schema, names.shadow);
      if (keys.length > 0) log.info({ keys }, 'dropped the foreign keys the stopped cut-over had added to the shadow');
      // Children it repointed at the shadow go back on the table before the shadow is written again.
      await repointChildrenBack(this.ctx, schema, table.name, names.shadow, { lockSeconds: 10, log });
      return;
    }
    const [oldThere] = await this.ctx.pool.query<RowDataPacket[]>('SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?', [schema, names.backup]);
    const old = oldThere.length > 0 ? names.backup : null;
    const keys = await keysLeftTemporary(this.ctx.pool, schema, table.name);
    if (keys.length > 0) await giveKeysTheirNames(() => dedicatedConnection(this.ctx), schema, table.name, old, keys, 3, log);
    const live = await triggersOf(this.ctx.pool, schema, table.name);
    const temporary = live.filter((t) => t.name.endsWith(SHADOW_TRIGGER_SUFFIX));
    // Step 2 stopped between a trigger's own name and the drop of its temporary one: both fire.
    const doubled = live.filter((t) => temporary.some((x) => x.name === shadowTriggerName(t.name))).map((t) => shadowTriggerName(t.name));
    for (const name of doubled) await this.ctx.pool.query(dropTriggerSql(schema, name));
    if (doubled.length > 0) log.info({ triggers: doubled }, 'dropped the temporary triggers whose own ones the stopped cut-over had created');
    // A cut name (`~` and a hash) does not tell its own: the refusal of the next job names it.
    const own = temporary
      .filter((t) => !doubled.includes(t.name) && !t.name.includes('~'))
      .map((t) => ({ ...t, name: t.name.slice(0, -SHADOW_TRIGGER_SUFFIX.length) }));
    if (own.length > 0) await giveTriggersTheirNames(() => dedicatedConnection(this.ctx), schema, table.name, old, own, 3, log);
  }

  /**
   * Returns once B is seen waiting in the table namespace (so, by the name order, on
   * the original); throws CutoverAttemptError if it finishes, waits elsewhere, or does
   * not queue in time.
   */
  private async proveQueuedOnOriginal(a: Connection, bId: number, settled: () => boolean, error: () => unknown, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + Math.max(1000, timeoutMs);
    for (;;) {
      if (settled()) {
        throw new CutoverAttemptError(`the RENAME failed before the tables were unlocked: ${(error() as Error | null)?.message ?? 'it finished early'}`);
      }
      const [pl] = await a.query<RowDataPacket[]>('SELECT STATE, INFO FROM information_schema.PROCESSLIST WHERE ID = ?', [bId]);
      const state = String(pl[0]?.STATE ?? '');
      if (state === WAITING_ON_A_TABLE && /^\s*RENAME/i.test(String(pl[0]?.INFO ?? ''))) break;
      if (Date.now() > deadline) throw new CutoverAttemptError(`the RENAME did not queue behind the lock within ${timeoutMs} ms (state "${state}")`);
      await sleep(5);
    }
    // Where the server can show it: B holds no table lock yet, i.e. the one it waits for is its first, the original's.
    const held = await metadataLocksOf(a, bId);
    const tables = held?.filter((l) => l.type === 'Table metadata lock') ?? [];
    if (tables.length > 0) {
      throw new CutoverAttemptError(`the RENAME already holds ${tables.map((t) => t.name).join(', ')} while it waits: it is not queued on the table itself`);
    }
  }

  /** After B's connection was lost: true when the backup name holds the old table and the shadow's name is gone. */
  private async swapHappened(plan: CopyPlan, names: ArtefactNames): Promise<boolean> {
    const schema = plan.original.ref.schema;
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        const [rows] = await this.ctx.pool.query<RowDataPacket[]>(
          'SELECT TABLE_NAME AS name, TABLE_COMMENT AS c FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME IN (?, ?)',
          [schema, names.shadow, names.backup],
        );
        const backup = rows.find((r) => String(r.name) === names.backup);
        const shadowThere = rows.some((r) => String(r.name) === names.shadow);
        if (!shadowThere && backup && String(backup.c) !== SENTRY_COMMENT) return true;
        if (shadowThere) return false;
        break;
      } catch {
        await sleep(200 * (attempt + 1));
      }
    }
    throw new ShadowshiftError(
      `the cut-over's RENAME connection was lost and the outcome cannot be told: check whether ${names.shadow} still exists (not swapped) or ${names.backup} holds the old rows (swapped)`,
    );
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
    putBack: () => Promise<void>,
  ): Promise<void> {
    let bDead = !rename || settled();
    if (!bDead && bId !== null) {
      await a.query(`KILL QUERY ${bId}`).catch((e: Error) => log.warn({ err: e.message }, 'could not kill the pending RENAME'));
      const until = Date.now() + 3000;
      while (!settled() && Date.now() < until) await sleep(10);
      bDead = settled();
    }
    if (locked) await putBack();
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
