// Who holds which metadata lock, where the server can tell: MariaDB's metadata_lock_info
// plugin (information_schema.METADATA_LOCK_INFO, granted locks only). Without it these
// return null and the caller relies on what it can prove without them.

import type { Connection, RowDataPacket } from 'mysql2/promise';

export interface HeldLock {
  mode: string;
  /** e.g. `Table metadata lock`, `Schema metadata lock`, `Backup lock`. */
  type: string;
  schema: string;
  name: string;
}

const NO_SOURCE = new Set([1109 /* unknown table */, 1146 /* no such table */]);

async function query(conn: Connection, sql: string, params: unknown[]): Promise<RowDataPacket[] | null> {
  try {
    const [rows] = await conn.query<RowDataPacket[]>(sql, params);
    return rows;
  } catch (err) {
    if (NO_SOURCE.has((err as { errno?: number }).errno ?? 0)) return null;
    throw err;
  }
}

/** The metadata locks session `threadId` holds, or null when the server cannot show them. */
export async function metadataLocksOf(conn: Connection, threadId: number): Promise<HeldLock[] | null> {
  const rows = await query(
    conn,
    'SELECT LOCK_MODE AS mode, LOCK_TYPE AS type, TABLE_SCHEMA AS s, TABLE_NAME AS n FROM information_schema.METADATA_LOCK_INFO WHERE THREAD_ID = ?',
    [threadId],
  );
  return rows?.map((r) => ({ mode: String(r.mode), type: String(r.type), schema: String(r.s ?? ''), name: String(r.n ?? '') })) ?? null;
}

/**
 * Sessions other than `exclude` holding any lock on the table, or null when the server
 * cannot show them. Only client sessions (in the processlist): on MariaDB 10.6+ InnoDB's
 * purge threads take a table's metadata lock for each batch they purge (THREAD_ID 0, no
 * processlist row), briefly; seen holding the shadow after its copy, they failed a
 * cut-over attempt as if a reader held it (a CI run of test/mysql/cutover.test.ts).
 */
export async function otherHoldersOf(
  conn: Connection,
  schema: string,
  table: string,
  exclude: number[],
): Promise<Array<{ id: number; user: string; seconds: number }> | null> {
  const rows = await query(
    conn,
    `SELECT DISTINCT m.THREAD_ID AS id, p.USER AS user, p.TIME AS seconds FROM information_schema.METADATA_LOCK_INFO m
       LEFT JOIN information_schema.PROCESSLIST p ON p.ID = m.THREAD_ID
      WHERE m.TABLE_SCHEMA = ? AND m.TABLE_NAME = ? AND m.THREAD_ID <> CONNECTION_ID()
        AND p.ID IS NOT NULL`,
    [schema, table],
  );
  if (!rows) return null;
  return rows
    .map((r) => ({ id: Number(r.id), user: String(r.user ?? '?'), seconds: Number(r.seconds ?? 0) }))
    .filter((h) => !exclude.includes(h.id));
}
