import type { PreflightCheck } from '../../dialect.js';
import type { MyContext } from '../mysql-context.js';
import { serverTimeZone, typedColumns, unconvertibleZoneChange, zoneShift } from '../mysql-conversions.js';

/**
 * A type change between TIMESTAMP and DATETIME/DATE converts values in a time zone
 * (mysql-conversions.ts): the server's zone must be usable by CONVERT_TZ, and the
 * changes shadowshift does not convert are refused rather than shifted silently.
 */
export function timeZonesCheck(ctx: MyContext): PreflightCheck {
  return {
    name: 'time-zone-conversions',
    phase: 'alter',
    async run({ plan }) {
      if (!plan) return { ok: true, message: 'not checked: there is no copy plan (another check reports why)' };
      const columns = typedColumns(plan);
      const other = columns.filter((c) => unconvertibleZoneChange(c.from.type, c.to.type));
      if (other.length > 0) {
        return {
          ok: false,
          message:
            `the ALTER changes ${other.map((c) => `${c.source} (${c.from.type} to ${c.to.type})`).join(', ')}: between TIMESTAMP and that type a value goes through ` +
            'the session time zone, which shadowshift converts only between TIMESTAMP and DATETIME or DATE. Change the column to DATETIME in this job and to the final type in a second one.',
        };
      }
      const shifted = columns.filter((c) => zoneShift(c.from.type, c.to.type) !== null);
      if (shifted.length === 0) return { ok: true, message: 'no column changes between TIMESTAMP and DATETIME or DATE' };
      // A key column cannot be among them: its comparison rule changes (TIMESTAMP and DATETIME
      // compare differently), so the copy plan never uses it as the key (copy-plan.ts).
      const { zone, problem } = await serverTimeZone(ctx);
      const names = shifted.map((c) => c.source).join(', ');
      if (problem) {
        return {
          ok: false,
          message:
            `${names} change between TIMESTAMP and DATETIME or DATE, which a native ALTER converts in the session time zone; ${problem}. ` +
            'Load the time zone tables (mariadb-tzinfo-to-sql /usr/share/zoneinfo | mariadb mysql), or set the server\'s time_zone to SYSTEM or an offset, and run again.',
        };
      }
      return {
        ok: true,
        message: `${names} are converted between UTC and the server's time zone ${zone}, as a native ALTER in a session at the server's default time zone would convert them`,
      };
    },
  };
}
