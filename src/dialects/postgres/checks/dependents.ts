import type { PreflightCheck } from '../../dialect.js';
import type { PgContext } from '../postgres-context.js';

/**
 * Objects the cut-over must change besides the table: views (replaced), tables with
 * foreign keys to it (re-pointed). It needs to own them; materialized views cannot be
 * re-pointed at all.
 */
export function dependentsCheck(pg: PgContext): PreflightCheck {
  return {
    name: 'dependents',
    phase: 'table',
    async run(ctx) {
      const r = await pg.pool.query<{ kind: string; name: string; owned: string }>(
        `WITH t AS (SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2)
         SELECT DISTINCT v.relkind::text AS kind, quote_ident(vn.nspname) || '.' || quote_ident(v.relname) AS name,
                pg_has_role(current_user, v.relowner, 'USAGE')::text AS owned
           FROM t JOIN pg_depend d ON d.refobjid = t.oid AND d.classid = 'pg_rewrite'::regclass
           JOIN pg_rewrite rw ON rw.oid = d.objid JOIN pg_class v ON v.oid = rw.ev_class JOIN pg_namespace vn ON vn.oid = v.relnamespace
          WHERE v.oid <> t.oid
         UNION
         SELECT DISTINCT 'fk', quote_ident(n.nspname) || '.' || quote_ident(ch.relname), pg_has_role(current_user, ch.relowner, 'USAGE')::text
           FROM t JOIN pg_constraint con ON con.confrelid = t.oid AND con.contype = 'f' AND con.conrelid <> t.oid
           JOIN pg_class ch ON ch.oid = con.conrelid JOIN pg_namespace n ON n.oid = ch.relnamespace
         ORDER BY 1, 2`,
        [ctx.table.schema, ctx.table.name],
      );
      const problems: string[] = [];
      const mat = r.rows.filter((x) => x.kind === 'm').map((x) => x.name);
      if (mat.length) problems.push(`materialized view(s) ${mat.join(', ')} depend on the table and cannot be re-pointed at the new one; drop them before the job and recreate them after`);
      const notOwned = r.rows.filter((x) => x.kind !== 'm' && x.owned !== 'true').map((x) => `${x.name} (${x.kind === 'fk' ? 'has a foreign key to the table' : 'view'})`);
      if (notOwned.length) problems.push(`the cut-over changes ${notOwned.join(', ')}, which the role does not own; run as their owner or grant the owning role (see docs/postgres-grants.md)`);
      return problems.length ? { ok: false, message: problems.join('; ') + '.' } : { ok: true, message: 'dependent views and foreign keys can be carried over' };
    },
  };
}
