import type { PreflightCheck } from '../../dialect.js';
import type { PgContext } from '../postgres-context.js';

/** Exact statements: docs/postgres-grants.md. */
export function privilegesCheck(pg: PgContext): PreflightCheck {
  return {
    name: 'privileges',
    phase: 'table',
    async run(ctx) {
      const r = await pg.pool.query<{ usr: string; super: string; repl: string; owner: string | null; owns: string | null; schema_create: string | null; db_create: string }>(
        `SELECT current_user AS usr, r.rolsuper::text AS super, r.rolreplication::text AS repl,
                pg_get_userbyid(c.relowner) AS owner,
                CASE WHEN c.oid IS NULL THEN NULL ELSE pg_has_role(current_user, c.relowner, 'USAGE')::text END AS owns,
                CASE WHEN n.oid IS NULL THEN NULL ELSE has_schema_privilege(n.oid, 'CREATE')::text END AS schema_create,
                has_database_privilege(current_database(), 'CREATE')::text AS db_create
           FROM pg_roles r
           LEFT JOIN pg_namespace n ON n.nspname = $1
           LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = $2
          WHERE r.rolname = current_user`,
        [ctx.table.schema, ctx.table.name],
      );
      const row = r.rows[0]!;
      if (row.super === 'true') return { ok: true, message: 'superuser' };
      const u = JSON.stringify(row.usr);
      const missing: string[] = [];
      if (row.repl !== 'true') missing.push(`the REPLICATION attribute (ALTER ROLE ${u} WITH REPLICATION) to create and read a logical replication slot`);
      if (row.owns === 'false') missing.push(`ownership of ${ctx.table.schema}.${ctx.table.name} (owned by ${row.owner}; GRANT ${JSON.stringify(row.owner)} TO ${u}) to publish, rename and swap it`);
      if (row.schema_create === 'false') missing.push(`CREATE on schema ${ctx.table.schema} (GRANT CREATE ON SCHEMA ${JSON.stringify(ctx.table.schema)} TO ${u}) for the shadow table`);
      if (row.db_create !== 'true') missing.push(`CREATE on the database (GRANT CREATE ON DATABASE <db> TO ${u}) to create a publication`);
      if (missing.length === 0) return { ok: true, message: 'has the privileges the job needs' };
      return { ok: false, message: `role ${u} lacks: ${missing.join('; ')}. See docs/postgres-grants.md.` };
    },
  };
}
