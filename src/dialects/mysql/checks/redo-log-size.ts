// The copy writes the whole table again, and InnoDB logs every page it writes. A redo
// log smaller than the table fills during the copy; InnoDB then flushes pages
// synchronously and every write on the server waits (bench/RESULTS.md, eighth session:
// the checkpoint age at its limit in every 1M-row copy on a 96 MB redo log, writes held
// up to 330 ms). The job can't size the server's redo log, and pausing the copy on the
// checkpoint age did not help there, so it passes with a warning that says what to do.

import type { RowDataPacket } from 'mysql2/promise';
import type { PreflightCheck } from '../../dialect.js';
import type { MyContext } from '../mysql-context.js';

const MB = 2 ** 20;

/** The redo log's capacity in bytes: MySQL 8.0.30+ sizes it as a whole, older servers per file (MariaDB 10.5+ has one file). */
export function redoLogBytes(vars: Record<string, string>): number {
  const capacity = Number(vars.innodb_redo_log_capacity);
  if (capacity > 0) return capacity;
  return Number(vars.innodb_log_file_size) * Math.max(1, Number(vars.innodb_log_files_in_group ?? 1) || 1);
}

/** Null when the redo log holds the table; otherwise what the user should know and do. */
export function redoLogAdvice(tableBytes: number, redoBytes: number): string | null {
  if (!(redoBytes > 0) || tableBytes <= redoBytes) return null;
  return (
    `the table holds about ${Math.ceil(tableBytes / MB)} MB and InnoDB's redo log ${Math.round(redoBytes / MB)} MB: the copy will fill the redo log, ` +
    'and InnoDB then flushes pages synchronously, so every write on the server waits (up to hundreds of milliseconds). ' +
    'A redo log larger than the table avoids it: raise innodb_log_file_size (innodb_redo_log_capacity on MySQL 8.0.30+; both can be set online on ' +
    'MariaDB 10.11+ and MySQL 8.0.30+, older servers need a restart). See docs/RUNBOOK.md, "the application slows during the copy".'
  );
}

export function redoLogSizeCheck(ctx: MyContext): PreflightCheck {
  return {
    name: 'redo-log-size',
    phase: 'table',
    async run({ table, info }) {
      if (!info) return { ok: true, message: 'table not found (another check reports it)' };
      const [vars] = await ctx.pool.query<RowDataPacket[]>(
        "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('innodb_log_file_size', 'innodb_log_files_in_group', 'innodb_redo_log_capacity')",
      );
      const redo = redoLogBytes(Object.fromEntries(vars.map((r) => [String(r.Variable_name), String(r.Value)])));
      const [size] = await ctx.pool.query<RowDataPacket[]>(
        'SELECT COALESCE(DATA_LENGTH, 0) + COALESCE(INDEX_LENGTH, 0) AS bytes FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?',
        [table.schema, table.name],
      );
      const bytes = Number(size[0]?.bytes ?? 0);
      const advice = redoLogAdvice(bytes, redo);
      if (advice) return { ok: true, warning: true, message: advice };
      return { ok: true, message: `the redo log (${Math.round(redo / MB)} MB) holds the table's ${Math.ceil(bytes / MB)} MB` };
    },
  };
}
