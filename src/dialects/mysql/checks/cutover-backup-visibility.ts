// What the MariaDB cut-over can see of a backup that would slip in ahead of its RENAME
// (mysql-backup-locks.ts). It passes either way: a stock server and a least-privilege
// user must still be able to run a job, whose swap the binlog check then verifies; but
// the user should know that without PROCESS the cut-over cannot hold off such a swap.

import type { RowDataPacket } from 'mysql2/promise';
import type { PreflightCheck } from '../../dialect.js';
import type { MyContext } from '../mysql-context.js';
import { hasGlobal, parseGrant, type Grant } from './privileges.js';

export function cutoverBackupVisibilityCheck(ctx: MyContext, flavor: 'mariadb' | 'mysql'): PreflightCheck {
  return {
    name: 'cutover-backup-visibility',
    phase: 'connect',
    async run() {
      if (flavor === 'mysql') {
        return {
          ok: true,
          message: "MySQL's RENAME takes the global and backup locks before the table's, so a backup that would get ahead of it shows in its own state and the attempt is refused; the swap is also checked in the binlog",
        };
      }
      const [rows] = await ctx.pool.query<RowDataPacket[]>('SHOW GRANTS FOR CURRENT_USER()');
      const grants = rows.map((r) => parseGrant(String(Object.values(r)[0]))).filter((g): g is Grant => g !== null);
      const process = hasGlobal(grants, 'PROCESS');
      const [plugin] = await ctx.pool.query<RowDataPacket[]>("SELECT 1 FROM information_schema.PLUGINS WHERE PLUGIN_NAME = 'METADATA_LOCK_INFO' AND PLUGIN_STATUS = 'ACTIVE'");
      const lockInfo = plugin.length > 0;
      const checked = 'Every swap is also checked in the binlog: a write that reached the old table fails the job (exit 4) and is named.';
      const held = lockInfo
        ? 'backup locks held by any session (metadata_lock_info)'
        : "no backup locks held (metadata_lock_info is not installed; none that matters can be granted while the cut-over holds its lock, so little is lost: INSTALL SONAME 'metadata_lock_info' to see them anyway)";
      if (process) {
        return {
          ok: true,
          message: `the cut-over sees every session waiting for the backup lock (PROCESS) and ${held}, and does not swap while a FLUSH TABLES WITH READ LOCK or BACKUP STAGE waits. ${checked}`,
        };
      }
      return {
        ok: true,
        warning: true,
        message:
          'without the PROCESS privilege the cut-over sees only its own user\'s sessions, so it cannot see a FLUSH TABLES WITH READ LOCK or BACKUP STAGE ' +
          '(mariabackup, mydumper, mysqldump --master-data) waiting behind its lock; one that its unlock lets in sends the writes queued on the table into the old table. ' +
          `It sees ${held}. ${checked} To prevent such writes instead: GRANT PROCESS ON *.* TO the user (docs/mysql-grants.md).`,
      };
    },
  };
}
