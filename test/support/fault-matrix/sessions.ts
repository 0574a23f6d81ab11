// The job's database sessions as the server sees them: which wait for what, and
// ending all of them. MySQL: every session of the job's own user; PostgreSQL: every
// session of the case's database whose application name starts with shadowshift (the
// replication connection included).

import type { Db } from '../db.js';

export interface JobSession {
  id: string;
  /** MySQL: the command (`Binlog Dump` for the stream); PostgreSQL: the backend type (`walsender`). */
  kind: string;
  state: string | null;
  query: string | null;
}

export async function jobSessions(db: Db, jobUser: string): Promise<JobSession[]> {
  if (db.dialect === 'mysql') {
    return db.query<JobSession>('SELECT CAST(ID AS CHAR) AS id, COMMAND AS kind, STATE AS state, INFO AS query FROM information_schema.PROCESSLIST WHERE USER = ?', [jobUser]);
  }
  return db.query<JobSession>(
    `SELECT pid::text AS id, backend_type AS kind, coalesce(wait_event_type || ':' || wait_event, state) AS state, query
       FROM pg_stat_activity WHERE application_name LIKE 'shadowshift%' AND datname = current_database() AND pid <> pg_backend_pid()`,
  );
}

/** Whether the change stream's own connection is among the sessions. */
export function isStreamSession(s: JobSession): boolean {
  return /binlog dump/i.test(s.kind) || s.kind === 'walsender';
}

/** Ends every session of the job, one right after another (one connection runs one statement at a time); returns the ones ended. */
export async function killJobSessions(db: Db, jobUser: string): Promise<JobSession[]> {
  const sessions = await jobSessions(db, jobUser);
  if (db.dialect === 'mysql') {
    for (const s of sessions) await db.exec(`KILL CONNECTION ${Number(s.id)}`).catch(() => undefined);
  } else {
    await db.query('SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid', [sessions.map((s) => Number(s.id))]);
  }
  return sessions;
}

/** Whether a session of the job waits for a lock on `table` (a table name of the case's database). */
export async function jobWaitsForTable(db: Db, jobUser: string, table: string): Promise<boolean> {
  if (db.dialect === 'mysql') {
    const rows = await db.query<{ n: number }>(
      "SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE USER = ? AND STATE LIKE 'Waiting for table metadata lock%' AND INFO LIKE ?",
      [jobUser, `%\`${table}\`%`],
    );
    return Number(rows[0]!.n) > 0;
  }
  const rows = await db.query<{ n: string }>(
    `SELECT count(*)::text AS n FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE NOT l.granted AND a.application_name LIKE 'shadowshift%' AND l.relation = to_regclass(quote_ident($1))`,
    [table],
  );
  return Number(rows[0]!.n) > 0;
}

/** PostgreSQL: the deferred index build (CREATE INDEX CONCURRENTLY) waits for an older snapshot. */
export async function indexBuildWaits(db: Db): Promise<boolean> {
  const rows = await db.query<{ n: string }>(
    `SELECT count(*)::text AS n FROM pg_stat_activity
      WHERE application_name LIKE 'shadowshift%' AND datname = current_database()
        AND wait_event_type = 'Lock' AND wait_event = 'virtualxid' AND query ILIKE '%INDEX CONCURRENTLY%'`,
  );
  return Number(rows[0]!.n) > 0;
}

/** Whether a session of the job holds a granted lock that keeps writers of `table` out. */
export async function jobHoldsWriteLock(db: Db, jobUser: string, table: string): Promise<boolean> {
  if (db.dialect === 'mysql') {
    const rows = await db.query<{ n: number }>(
      `SELECT COUNT(*) AS n FROM information_schema.METADATA_LOCK_INFO m JOIN information_schema.PROCESSLIST p ON p.ID = m.THREAD_ID
        WHERE p.USER = ? AND m.TABLE_NAME = ? AND m.LOCK_MODE IN ('MDL_SHARED_NO_READ_WRITE', 'MDL_SHARED_READ_ONLY', 'MDL_EXCLUSIVE', 'MDL_SHARED_NO_WRITE')`,
      [jobUser, table],
    );
    return Number(rows[0]!.n) > 0;
  }
  const rows = await db.query<{ n: string }>(
    `SELECT count(*)::text AS n FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE l.granted AND a.application_name LIKE 'shadowshift%' AND l.relation = to_regclass(quote_ident($1))
        AND l.mode IN ('AccessExclusiveLock', 'ExclusiveLock', 'ShareLock', 'ShareRowExclusiveLock')`,
    [table],
  );
  return Number(rows[0]!.n) > 0;
}
