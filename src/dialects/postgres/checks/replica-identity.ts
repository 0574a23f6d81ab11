import type { PreflightCheck } from '../../dialect.js';
import type { PgContext } from '../postgres-context.js';
import { parseTextArray } from '../postgres-inspector.js';

/**
 * UPDATE and DELETE events carry the old row's replica identity only. The applier
 * matches rows on the copy key, so every key column must be in the replica identity.
 */
export function replicaIdentityCheck(pg: PgContext): PreflightCheck {
  return {
    name: 'replica-identity',
    phase: 'alter',
    async run(ctx) {
      if (!ctx.plan) return { ok: true, message: 'no copy plan (another check reports why)' };
      const r = await pg.pool.query<{ replident: string; cols: string | null }>(
        `SELECT c.relreplident::text AS replident,
                (SELECT array_agg(a.attname)::text FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
                  WHERE i.indrelid = c.oid AND ((c.relreplident = 'd' AND i.indisprimary) OR (c.relreplident = 'i' AND i.indisreplident))) AS cols
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2`,
        [ctx.table.schema, ctx.table.name],
      );
      const row = r.rows[0];
      if (!row) return { ok: true, message: 'table not found (another check reports it)' };
      if (row.replident === 'f') return { ok: true, message: 'REPLICA IDENTITY FULL carries every column' };
      const identity = new Set(parseTextArray(row.cols));
      const missing = ctx.plan.key.map((k) => k.source).filter((k) => !identity.has(k));
      if (missing.length === 0) return { ok: true, message: 'the replica identity carries the copy key' };
      return {
        ok: false,
        message: `the change stream identifies old rows by the table's replica identity (${[...identity].join(', ') || 'none'}), which lacks key column(s) ${missing.join(', ')}; deletes and key changes could not be matched. Set ALTER TABLE ${ctx.table.name} REPLICA IDENTITY DEFAULT (primary key) or FULL first.`,
      };
    },
  };
}
