import type { PreflightCheck } from '../../dialect.js';
import type { PgContext } from '../postgres-context.js';

/**
 * The oldest PostgreSQL the engine runs on: the cut-over reads the publication's
 * column list and row filter (`pg_publication_rel.prattrs` / `prqual`), which
 * PostgreSQL 15 introduced. Majors 15 to 18 are tested (README, "Test it").
 */
export const MIN_POSTGRES_VERSION_NUM = 150000;

/** `server_version_num` (e.g. 170004) as an operator reads it: 17.4; before 10: 9.6.24. */
export function formatVersionNum(num: number): string {
  const major = Math.floor(num / 10000);
  if (major >= 10) return `${major}.${num % 10000}`;
  return `${Math.floor(num / 10000)}.${Math.floor(num / 100) % 100}.${num % 100}`;
}

export function serverVersionCheck(pg: PgContext): PreflightCheck {
  return {
    name: 'server-version',
    phase: 'connect',
    async run() {
      const r = await pg.pool.query<{ num: string; version: string }>(
        `SELECT current_setting('server_version_num') AS num, current_setting('server_version') AS version`,
      );
      const num = Number(r.rows[0]?.num);
      const shown = String(r.rows[0]?.version ?? formatVersionNum(num)).split(' ')[0];
      const min = formatVersionNum(MIN_POSTGRES_VERSION_NUM).replace(/\.0$/, '');
      if (Number.isInteger(num) && num >= MIN_POSTGRES_VERSION_NUM) return { ok: true, message: `PostgreSQL ${shown} (${min} or newer is needed)` };
      return {
        ok: false,
        message:
          `the server runs PostgreSQL ${shown}, but shadowshift needs PostgreSQL ${min} or newer ` +
          `(the cut-over reads the publication column lists and row filters, pg_publication_rel.prattrs/prqual, new in ${min}). ` +
          'Upgrade the server, or use a native ALTER TABLE on this one.',
      };
    },
  };
}
