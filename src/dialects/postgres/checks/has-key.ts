import type { PreflightCheck } from '../../dialect.js';
import type { PgContext } from '../postgres-context.js';

export function hasKeyCheck(pg: PgContext): PreflightCheck {
  return {
    name: 'has-key',
    phase: 'table',
    async run(ctx) {
      const r = await pg.pool.query<{ replident: string; pk: string; ri: string }>(
        `SELECT c.relreplident::text AS replident,
                EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)::text AS pk,
                EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisreplident)::text AS ri
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2`,
        [ctx.table.schema, ctx.table.name],
      );
      const row = r.rows[0];
      if (!row) return { ok: true, message: 'table not found (another check reports it)' };
      const t = ctx.table.name;
      if (row.replident === 'n') {
        return { ok: false, message: `${t} has REPLICA IDENTITY NOTHING: its UPDATEs and DELETEs would fail once it is published. Set ALTER TABLE ${t} REPLICA IDENTITY DEFAULT (with a primary key) first.` };
      }
      if (row.pk === 'true' || (row.replident === 'i' && row.ri === 'true')) return { ok: true, message: 'has a primary key or replica identity index' };
      return {
        ok: false,
        message: `${t} has no primary key (and no replica identity index): rows cannot be chunked or matched, and publishing it would make the application's UPDATE and DELETE fail. Add one first (ALTER TABLE ${t} ADD PRIMARY KEY (...), or a UNIQUE index on NOT NULL columns with ALTER TABLE ${t} REPLICA IDENTITY USING INDEX ...).`,
      };
    },
  };
}
