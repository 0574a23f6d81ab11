// A backup that starts during the cut-over can let the application's queued writes into
// the old table, on MariaDB. Its RENAME (lock_table_names) takes the table locks first
// and only then TRY-locks the backup lock (MDL_BACKUP_DDL); when that fails it gives the
// table locks back, waits for the backup lock, and starts over. A FLUSH TABLES WITH READ
// LOCK or BACKUP STAGE that queued behind the cut-over's own backup lock (LOCK TABLES
// holds MDL_BACKUP_DDL) is granted the moment the cut-over unlocks; the RENAME then lets
// go of the table, and the writes queued behind it take it and run into the old table as
// soon as the backup lets them (measured on 10.11: "new t rows 0, old rows 1", exit 0).
//
// So before unlocking, the cut-over refuses the attempt when it can see such a backup:
//  - a session "Waiting for backup lock" (information_schema.PROCESSLIST; other users'
//    sessions are listed only with the PROCESS privilege);
//  - a backup lock held that MDL_BACKUP_DDL cannot be granted next to (metadata_lock_info,
//    which lists granted locks of every user). While the cut-over holds its lock none of
//    these can be granted on 10.11 (measured: they queue, and so show as waiters); this
//    second look is for servers where LOCK TABLES does not hold MDL_BACKUP_DDL.
// A backup can still begin between this look and the unlock, or be invisible: the engine
// checks afterwards in the binlog that no write reached the old table (engine/swap-proof.ts).
//
// MySQL is not affected: its RENAME takes the global and backup locks in one sorted batch
// before the table locks and keeps them, so a pending backup makes it wait there, its
// state says so, and the proof in mysql-cutover.ts refuses the attempt.

import type { Connection, RowDataPacket } from 'mysql2/promise';

export const WAITING_FOR_BACKUP_LOCK = 'Waiting for backup lock';

/**
 * Backup-namespace modes MDL_BACKUP_DDL is incompatible with (mdl.cc's backup matrix):
 * BACKUP STAGE START passes through BLOCK_DDL, BLOCK_DDL holds WAIT_DDL, BLOCK_COMMIT
 * holds WAIT_COMMIT, FLUSH TABLES WITH READ LOCK holds FTWRL1 then FTWRL2. START, FLUSH
 * and WAIT_FLUSH (a backup copying files) do not block DDL (measured: LOCK TABLES passes).
 */
export const DDL_BLOCKING_BACKUP_MODES = ['MDL_BACKUP_BLOCK_DDL', 'MDL_BACKUP_WAIT_DDL', 'MDL_BACKUP_WAIT_COMMIT', 'MDL_BACKUP_FTWRL1', 'MDL_BACKUP_FTWRL2'];

export interface BackupBlocker {
  id: number;
  /** null when the session is not visible in the processlist (no PROCESS privilege). */
  user: string | null;
  seconds: number | null;
  /** Redacted. */
  statement: string | null;
  /** `waits` for the backup lock, or the backup lock mode it holds. */
  how: 'waits' | string;
}

/**
 * A statement for a message or a log line: quoted strings, hex and numbers replaced
 * (they may carry passwords or personal data), whitespace squeezed, cut to 120 characters.
 */
export function redactStatement(sql: string): string {
  const out = sql
    .replace(/\b[xXbB]'[^']*'/g, "'…'")
    .replace(/'(?:[^'\\]|\\[\s\S]|'')*('|$)/g, "'…'")
    .replace(/"(?:[^"\\]|\\[\s\S]|"")*("|$)/g, '"…"')
    .replace(/\b0x[0-9a-fA-F]+\b/g, '?')
    .replace(/\b\d+(\.\d+)?([eE][-+]?\d+)?\b/g, '?')
    .replace(/\s+/g, ' ')
    .trim();
  return out.length > 120 ? out.slice(0, 119) + '…' : out;
}

const NO_PLUGIN = new Set([1109 /* unknown table */, 1146 /* no such table */]);

/** Sessions other than `exclude` that wait for, or hold, a backup lock the RENAME's MDL_BACKUP_DDL would lose to. */
export async function backupBlockers(conn: Connection, exclude: number[]): Promise<BackupBlocker[]> {
  const [waiting] = await conn.query<RowDataPacket[]>(
    'SELECT ID AS id, USER AS user, TIME AS seconds, INFO AS info FROM information_schema.PROCESSLIST WHERE STATE = ? AND ID <> CONNECTION_ID()',
    [WAITING_FOR_BACKUP_LOCK],
  );
  const out: BackupBlocker[] = waiting.map((r) => ({
    id: Number(r.id),
    user: r.user === null ? null : String(r.user),
    seconds: r.seconds === null ? null : Number(r.seconds),
    statement: r.info === null ? null : redactStatement(String(r.info)),
    how: 'waits',
  }));
  try {
    const [held] = await conn.query<RowDataPacket[]>(
      `SELECT m.THREAD_ID AS id, m.LOCK_MODE AS mode, p.USER AS user, p.TIME AS seconds, p.INFO AS info
         FROM information_schema.METADATA_LOCK_INFO m LEFT JOIN information_schema.PROCESSLIST p ON p.ID = m.THREAD_ID
        WHERE m.LOCK_TYPE = 'Backup lock' AND m.LOCK_MODE IN (?) AND m.THREAD_ID <> CONNECTION_ID()`,
      [DDL_BLOCKING_BACKUP_MODES],
    );
    for (const r of held) {
      out.push({
        id: Number(r.id),
        user: r.user == null ? null : String(r.user),
        seconds: r.seconds == null ? null : Number(r.seconds),
        statement: r.info == null ? null : redactStatement(String(r.info)),
        how: String(r.mode),
      });
    }
  } catch (err) {
    if (!NO_PLUGIN.has((err as { errno?: number }).errno ?? 0)) throw err;
  }
  return out.filter((b) => !exclude.includes(b.id));
}

export function describeBackupBlockers(blockers: BackupBlocker[]): string {
  return blockers
    .map((b) => {
      const who = `session ${b.id}${b.user !== null ? ` (${b.user}, ${b.seconds ?? '?'}s)` : ''}`;
      const what = b.how === 'waits' ? 'waits for the backup lock' : `holds the backup lock ${b.how}`;
      return `${who} ${what}${b.statement ? `: ${b.statement}` : ''}`;
    })
    .join('; ');
}
