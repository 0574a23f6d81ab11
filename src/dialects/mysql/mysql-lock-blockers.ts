// Who keeps the cut-over's LOCK TABLES waiting, and how such a session is ended, for the
// engine's --kill-blockers-after (engine/blocker-killer.ts decides when, and whom).
//
// The holders of a metadata lock on the table are read from
// information_schema.METADATA_LOCK_INFO (MariaDB, metadata_lock_info plugin) or
// performance_schema.metadata_locks (MySQL 8). Without either nobody is ended: the
// sessions with an open transaction are only likely holders (mysql-waits.ts lists them
// as such), and a guess is no reason to end a session.

import type { RowDataPacket } from 'mysql2/promise';
import type { LockBlocker, LockBlockers } from '../dialect.js';
import type { MyContext } from './mysql-context.js';
import { blockerOf, TRX_AGE_SECONDS } from './mysql-waits.js';
import { ShadowshiftError } from '../../util/errors.js';

/**
 * A lower bound of the age of its transaction (or, outside one, of its current command
 * or idle time), so a session is never taken for older than it is: trx_started has
 * whole seconds, hence the second taken off; MariaDB counts the command's time in ms.
 */
function ageColumn(ctx: MyContext): string {
  const command = ctx.flavor === 'mariadb' ? 'p.TIME_MS / 1000' : 'p.TIME';
  return `GREATEST(COALESCE(${TRX_AGE_SECONDS} - 1, 0), ${command}) AS age`;
}

const COLUMNS = `p.ID AS id, p.USER AS user, p.COMMAND AS command, p.STATE AS pstate, p.INFO AS info, t.trx_started AS since`;
const TRX = 'LEFT JOIN information_schema.INNODB_TRX t ON t.trx_mysql_thread_id = p.ID';

/** `self`: the connection whose LOCK TABLES waits on `tables` of `schema` (the table, and a parent table's children). */
export function mysqlLockBlockers(ctx: MyContext, schema: string, tables: string[], self: number): LockBlockers {
  const sources = [
    `SELECT DISTINCT ${COLUMNS}, ${ageColumn(ctx)}
       FROM information_schema.METADATA_LOCK_INFO m JOIN information_schema.PROCESSLIST p ON p.ID = m.THREAD_ID ${TRX}
      WHERE m.TABLE_SCHEMA = ? AND m.TABLE_NAME IN (?) AND m.THREAD_ID <> ? AND m.THREAD_ID <> CONNECTION_ID()`,
    `SELECT DISTINCT ${COLUMNS}, ${ageColumn(ctx)}
       FROM performance_schema.metadata_locks m JOIN performance_schema.threads th ON th.THREAD_ID = m.OWNER_THREAD_ID
       JOIN information_schema.PROCESSLIST p ON p.ID = th.PROCESSLIST_ID ${TRX}
      WHERE m.OBJECT_TYPE = 'TABLE' AND m.OBJECT_SCHEMA = ? AND m.OBJECT_NAME IN (?) AND m.LOCK_STATUS = 'GRANTED'
        AND p.ID <> ? AND p.ID <> CONNECTION_ID()`,
  ];
  return {
    sessionLabel: 'connection',
    async find(): Promise<LockBlocker[]> {
      for (const sql of sources) {
        let rows: RowDataPacket[];
        try {
          [rows] = await ctx.pool.query<RowDataPacket[]>(sql, [schema, tables, self]);
        } catch {
          continue; // that source does not exist on this server
        }
        return rows.map((r) => ({ ...blockerOf(r), since: r.since == null ? null : String(r.since), ours: ctx.sessions?.has(Number(r.id)) ?? false }));
      }
      throw new ShadowshiftError(
        "cannot see who holds the lock (no information_schema.METADATA_LOCK_INFO: INSTALL SONAME 'metadata_lock_info' on MariaDB; no performance_schema.metadata_locks on MySQL): waiting out the lock timeout instead",
      );
    },
    async end(session) {
      try {
        await ctx.pool.query(`KILL ${Number(session)}`);
        return true;
      } catch (err) {
        if ((err as { errno?: number }).errno === 1094 /* unknown thread: gone already */) return false;
        throw err;
      }
    },
  };
}
