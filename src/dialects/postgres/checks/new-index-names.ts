// The shadow's new indexes get the names the ALTER asked for only at the cut-over
// (postgres-index-names.ts), and the preview runs on a temporary table in a schema of
// its own: a name already taken in the table's schema would first show at the cut-over,
// after the whole copy. A native ALTER TABLE fails on it at once, so does this.

import type { PreflightCheck } from '../../dialect.js';
import type { PgContext } from '../postgres-context.js';

export function newIndexNamesCheck(pg: PgContext): PreflightCheck {
  return {
    name: 'new-index-names',
    phase: 'alter',
    async run(ctx) {
      const asked = ctx.alter?.namedIndexes ?? [];
      if (asked.length === 0) return { ok: true, message: 'the ALTER names no new index' };
      const r = await pg.pool.query<{ name: string; what: string }>(
        `SELECT c.relname AS name,
                CASE WHEN c.relkind IN ('i', 'I') THEN 'an index of ' || quote_ident(t.relname) ELSE 'a relation (relkind ' || c.relkind::text || ')' END AS what
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           LEFT JOIN pg_index i ON i.indexrelid = c.oid LEFT JOIN pg_class t ON t.oid = i.indrelid
          WHERE n.nspname = $1 AND c.relname = ANY ($2::text[]) ORDER BY 1`,
        [ctx.table.schema, asked],
      );
      if (r.rows.length === 0) return { ok: true, message: `the names the ALTER gives new indexes are free in ${ctx.table.schema}` };
      return {
        ok: false,
        message:
          `the ALTER names new indexes or constraints that ${ctx.table.schema} already has: ${r.rows.map((x) => `${x.name} (${x.what})`).join(', ')}; ` +
          'a native ALTER TABLE would fail the same way. Give the constraint another name, or drop or rename what holds it',
      };
    },
  };
}
