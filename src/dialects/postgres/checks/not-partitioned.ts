import type { PreflightCheck } from '../../dialect.js';
import type { PgContext } from '../postgres-context.js';

export function notPartitionedCheck(pg: PgContext): PreflightCheck {
  return {
    name: 'not-partitioned',
    phase: 'table',
    async run(ctx) {
      const r = await pg.pool.query<{ relkind: string; ispartition: string; children: string }>(
        `SELECT c.relkind::text AS relkind, c.relispartition::text AS ispartition,
                (SELECT count(*) FROM pg_inherits i WHERE i.inhparent = c.oid)::text AS children
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2`,
        [ctx.table.schema, ctx.table.name],
      );
      const row = r.rows[0];
      if (!row) return { ok: true, message: 'table not found (another check reports it)' };
      if (row.relkind === 'p') {
        return { ok: false, message: `${ctx.table.name} is a partitioned table, which shadowshift does not migrate yet. Run the ALTER on the partitioned table directly, or migrate each partition as its own table after detaching it.` };
      }
      if (row.ispartition === 'true') {
        return { ok: false, message: `${ctx.table.name} is a partition; swapping it would detach it from its parent. Detach it first (ALTER TABLE parent DETACH PARTITION ${ctx.table.name}) or change the partitioned table instead.` };
      }
      if (Number(row.children) > 0) {
        return { ok: false, message: `${ctx.table.name} has inheritance children, which the swap would leave attached to the old table. Migrate without inheritance or use a plain ALTER.` };
      }
      return { ok: true, message: 'not partitioned' };
    },
  };
}
