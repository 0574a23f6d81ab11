import type { PreflightCheck } from '../../dialect.js';
import type { PgContext } from '../postgres-context.js';

export function walLevelCheck(pg: PgContext): PreflightCheck {
  return {
    name: 'wal-level',
    phase: 'connect',
    async run() {
      const r = await pg.pool.query<{ wal_level: string }>('SHOW wal_level');
      const level = r.rows[0]?.wal_level;
      if (level === 'logical') return { ok: true, message: 'wal_level is logical' };
      return {
        ok: false,
        message: `wal_level is ${level}, but the change stream needs logical decoding. Set wal_level = logical (ALTER SYSTEM SET wal_level = logical; on managed services the logical-replication parameter) and restart the server.`,
      };
    },
  };
}
