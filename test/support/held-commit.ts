// Holding a MariaDB commit between its binlog write and its engine commit, for real:
// with semi-sync on (AFTER_SYNC), no semi-sync replica and rpl_semi_sync_master_wait_no_slave
// ON, a commit writes its binlog and then waits for an ACK until the timeout, or until
// semi-sync is switched off. The switch is global, so a file using this runs its own
// server (test/mysql/copy-ceiling.test.ts, test/mysql/copy-consistent-read.test.ts).

import type { Connection, RowDataPacket } from 'mysql2/promise';

export const SEMI_SYNC_WAIT = 'Waiting for semi-sync ACK from slave';

/**
 * InnoDB refreshes the cache behind INNODB_TRX and INNODB_LOCK_WAITS only once it has
 * gone 100 ms without a reader: polling faster would read the same stale cache forever.
 */
export const LOCK_POLL_MS = 250;

const SAVED = ['rpl_semi_sync_master_wait_point', 'rpl_semi_sync_master_timeout', 'rpl_semi_sync_master_wait_no_slave'];

/** The server's semi-sync settings, for restoreSemiSync. */
export async function semiSyncSettings(admin: Connection): Promise<RowDataPacket[]> {
  const [saved] = await admin.query<RowDataPacket[]>("SHOW GLOBAL VARIABLES LIKE 'rpl_semi_sync_master_%'");
  return saved;
}

/** From now on every commit waits for an ACK (two minutes at most): the caller releases them. */
export async function holdCommits(admin: Connection): Promise<void> {
  await admin.query(
    "SET GLOBAL rpl_semi_sync_master_wait_point = 'AFTER_SYNC', rpl_semi_sync_master_timeout = 120000, rpl_semi_sync_master_wait_no_slave = ON, rpl_semi_sync_master_enabled = ON",
  );
}

/** Releases every commit still waiting for an ACK (switching semi-sync off does) and restores `saved`. */
export async function restoreSemiSync(admin: Connection, saved: RowDataPacket[]): Promise<void> {
  await admin.query('SET GLOBAL rpl_semi_sync_master_enabled = OFF');
  for (const v of saved) {
    if (SAVED.includes(String(v.Variable_name))) {
      await admin.query(`SET GLOBAL ${String(v.Variable_name)} = ?`, [/^\d+$/.test(String(v.Value)) ? Number(v.Value) : String(v.Value)]);
    }
  }
}

/** Statements waiting for a row lock the given session's transaction holds. */
export async function waitingOnLocksOf(admin: Connection, threadId: number): Promise<string[]> {
  const [r] = await admin.query<RowDataPacket[]>(
    `SELECT req.trx_query AS q FROM information_schema.INNODB_LOCK_WAITS w
       JOIN information_schema.INNODB_TRX req ON req.trx_id = w.requesting_trx_id
       JOIN information_schema.INNODB_TRX blk ON blk.trx_id = w.blocking_trx_id
      WHERE blk.trx_mysql_thread_id = ?`,
    [threadId],
  );
  return r.map((x) => String(x.q));
}
