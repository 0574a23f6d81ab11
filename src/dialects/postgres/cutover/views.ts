// Dependent views, re-pointed at the new table under the swap's lock, one by one after
// the swap's other statements: a view whose column types changed under it cannot be
// replaced and is recreated instead, which the one-round-trip batch cannot try first.

import type pg from 'pg';
import { pgCode } from '../postgres-errors.js';
import { quoteIdent, quoteLiteral, quoteQualified } from '../postgres-quote.js';
import { ShadowshiftError } from '../../../util/errors.js';
import type { ViewFact } from './catalog-facts.js';
import { grantSql } from './swap-statements.js';

/** Points a dependent view at the new table: CREATE OR REPLACE, or recreated when a column type under it changed. */
export async function repointView(c: pg.Client, v: ViewFact): Promise<void> {
  const view = quoteQualified(v.schema, v.name);
  const withOptions = v.options ? ` WITH (${v.options})` : '';
  const def = v.def.replace(/;\s*$/, '');
  try {
    await c.query(`SAVEPOINT view_replace; CREATE OR REPLACE VIEW ${view}${withOptions} AS ${def}; RELEASE SAVEPOINT view_replace`);
    return;
  } catch (err) {
    await c.query('ROLLBACK TO SAVEPOINT view_replace');
    if (pgCode(err) !== '42P16') {
      throw new ShadowshiftError(`cut-over: view ${v.schema}.${v.name} cannot be pointed at the new table: ${(err as Error).message}. Drop the view before the job and recreate it after.`, { cause: err });
    }
  }
  // A column type changed under the view: recreate it, with its owner, grants and comment (read before the lock).
  try {
    const sql = [`DROP VIEW ${view}`, `CREATE VIEW ${view}${withOptions} AS ${def}`, `ALTER VIEW ${view} OWNER TO ${quoteIdent(v.owner)}`];
    for (const g of v.acl) sql.push(grantSql(g, view));
    if (v.descr !== null) sql.push(`COMMENT ON VIEW ${view} IS ${quoteLiteral(v.descr)}`);
    sql.push('RELEASE SAVEPOINT view_replace');
    await c.query(sql.join(';\n'));
  } catch (err) {
    throw new ShadowshiftError(`cut-over: view ${v.schema}.${v.name} cannot be recreated on the new table: ${(err as Error).message}. Drop the view (and views on it) before the job and recreate them after.`, { cause: err });
  }
}
