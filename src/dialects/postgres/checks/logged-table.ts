import type { PreflightCheck } from '../../dialect.js';
import type { PgContext } from '../postgres-context.js';

export function loggedTableCheck(pg: PgContext): PreflightCheck {
  return {
    name: 'logged-table',
    phase: 'table',
    async run(ctx) {
      const r = await pg.pool.query<{ p: string }>(
        `SELECT c.relpersistence::text AS p FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2`,
        [ctx.table.schema, ctx.table.name],
      );
      const p = r.rows[0]?.p;
      if (p === 'u') {
        return {
          ok: false,
          message: `${ctx.table.name} is UNLOGGED: its changes never reach the WAL, so the change stream cannot see them and concurrent writes would be lost. Make it logged first (ALTER TABLE ${ctx.table.name} SET LOGGED) or use a plain ALTER.`,
        };
      }
      if (p === 't') return { ok: false, message: `${ctx.table.name} is a temporary table, visible only to its own session; use a plain ALTER.` };
      return { ok: true, message: 'the table is WAL-logged' };
    },
  };
}
