// What the job's own sessions wait for on other sessions (the engine's wait watcher,
// engine/wait-watcher.ts, polls this only while the job runs an operation that can wait).
//
// Every connection of the job is in ctx.sessions by connection id. Two kinds of wait:
//  - a metadata lock (the cut-over's LOCK TABLES, the checksum's lock, the cleanup's
//    DROP): the processlist state says "Waiting for ... lock". The server does not say
//    whom it waits for; the holders of locks on the job's tables do (MariaDB's
//    metadata_lock_info plugin, granted locks only). Without the plugin, the other
//    sessions with an open InnoDB transaction are named as the likely holders.
//  - a row lock (a chunk's LOCK IN SHARE MODE behind a writer): information_schema's
//    INNODB_LOCK_WAITS (MariaDB, MySQL 5.7) or performance_schema.data_lock_waits (MySQL 8).
// The job's own sessions never count as blockers: the cut-over's RENAME waits on the
// cut-over's own LOCK TABLES by design. Other users' sessions are listed only with the
// PROCESS privilege.

import type { RowDataPacket } from 'mysql2/promise';
import type { ObservedWait, SessionBlocker, TableRef } from '../dialect.js';
import type { MyContext } from './mysql-context.js';
import { redactStatement } from './mysql-backup-locks.js';

/** Not there on this server, or not allowed: the source is skipped. */
const NO_SOURCE = new Set([1109 /* unknown table */, 1146 /* no such table */, 1142 /* denied */, 1227 /* needs PROCESS */]);

async function rows(ctx: MyContext, sql: string, params: unknown[]): Promise<RowDataPacket[] | null> {
  try {
    const [r] = await ctx.pool.query<RowDataPacket[]>(sql, params);
    return r;
  } catch (err) {
    if (NO_SOURCE.has((err as { errno?: number }).errno ?? 0)) return null;
    throw err;
  }
}

/**
 * Seconds since INNODB_TRX row `t` started. InnoDB writes trx_started in the server
 * process's own local time (the SYSTEM zone), whatever the session's time_zone; ours is
 * '+00:00', so the session's NOW() would be off by the server's UTC offset (a transaction
 * begun a moment ago on a server at UTC-5 read as five hours old).
 */
export const TRX_AGE_SECONDS = "TIMESTAMPDIFF(SECOND, t.trx_started, CONVERT_TZ(UTC_TIMESTAMP(), '+00:00', 'SYSTEM'))";

// Age: of the open transaction where there is one, else of the current command.
const BLOCKER_COLUMNS = `p.ID AS id, p.USER AS user, p.COMMAND AS command, p.STATE AS pstate, p.INFO AS info,
       COALESCE(${TRX_AGE_SECONDS}, p.TIME) AS age`;

export function blockerOf(r: RowDataPacket): SessionBlocker {
  const state = [r.command, r.pstate].filter((x) => x !== null && x !== undefined && x !== '').join(': ');
  return {
    session: Number(r.id),
    ageSeconds: r.age === null || r.age === undefined ? null : Number(r.age),
    user: r.user === null || r.user === undefined ? null : String(r.user),
    application: null,
    state: state || null,
    query: r.info === null || r.info === undefined ? '(none running)' : redactStatement(String(r.info)),
  };
}

async function metadataLockHolders(ctx: MyContext, tables: TableRef[], own: number[]): Promise<{ blockers: SessionBlocker[]; exact: boolean }> {
  if (tables.length) {
    const where = tables.map(() => '(m.TABLE_SCHEMA = ? AND m.TABLE_NAME = ?)').join(' OR ');
    const held = await rows(
      ctx,
      `SELECT DISTINCT ${BLOCKER_COLUMNS}
         FROM information_schema.METADATA_LOCK_INFO m
         JOIN information_schema.PROCESSLIST p ON p.ID = m.THREAD_ID
         LEFT JOIN information_schema.INNODB_TRX t ON t.trx_mysql_thread_id = p.ID
        WHERE (${where}) AND m.THREAD_ID NOT IN (?)
        ORDER BY p.ID`,
      [...tables.flatMap((t) => [t.schema, t.name]), own],
    );
    if (held) return { blockers: held.map(blockerOf), exact: true };
  }
  const open = await rows(
    ctx,
    `SELECT ${BLOCKER_COLUMNS}
       FROM information_schema.INNODB_TRX t JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id
      WHERE p.ID NOT IN (?) ORDER BY t.trx_started`,
    [own],
  );
  return { blockers: (open ?? []).map(blockerOf), exact: false };
}

async function rowLockWaits(ctx: MyContext, own: number[]): Promise<RowDataPacket[] | null> {
  const select = (waits: string, requesting: string, blocking: string) =>
    `SELECT r.trx_mysql_thread_id AS waiter, ${BLOCKER_COLUMNS}
       FROM ${waits} w
       JOIN information_schema.INNODB_TRX r ON r.trx_id = w.${requesting}
       JOIN information_schema.INNODB_TRX t ON t.trx_id = w.${blocking}
       JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id
      WHERE r.trx_mysql_thread_id IN (?) AND t.trx_mysql_thread_id NOT IN (?)
      ORDER BY r.trx_mysql_thread_id, p.ID`;
  return (
    (await rows(ctx, select('information_schema.INNODB_LOCK_WAITS', 'requesting_trx_id', 'blocking_trx_id'), [own, own])) ??
    (await rows(ctx, select('performance_schema.data_lock_waits', 'REQUESTING_ENGINE_TRANSACTION_ID', 'BLOCKING_ENGINE_TRANSACTION_ID'), [own, own]))
  );
}

/** The first of the job's sessions that waits on another session, with the sessions it waits for; null when none does. */
export async function observeWaits(ctx: MyContext, tables: TableRef[]): Promise<ObservedWait | null> {
  const own = [...(ctx.sessions ?? [])];
  if (!own.length) return null;
  const waiting = await rows(
    ctx,
    `SELECT ID AS id, STATE AS state, INFO AS info FROM information_schema.PROCESSLIST
      WHERE ID IN (?) AND STATE LIKE 'Waiting for %lock%' ORDER BY TIME DESC`,
    [own],
  );
  for (const w of waiting ?? []) {
    const { blockers, exact } = await metadataLockHolders(ctx, tables, own);
    // Waiting only on the job's own sessions (the cut-over's RENAME behind its LOCK TABLES): not a wait to report.
    if (exact && !blockers.length) continue;
    const statement = w.info === null || w.info === undefined ? '' : `: ${redactStatement(String(w.info))}`;
    const guess = exact ? '' : ' (the server does not say whose lock; sessions with an open transaction are listed)';
    return { what: 'lock', detail: `session ${w.id} ${String(w.state)}${statement}${guess}`, blockers };
  }
  const rowWaits = await rowLockWaits(ctx, own);
  const first = rowWaits?.[0];
  if (!first) return null;
  const same = rowWaits!.filter((r) => r.waiter === first.waiter);
  return { what: 'row-lock', detail: `session ${first.waiter} waits for a row lock`, blockers: same.map(blockerOf) };
}
