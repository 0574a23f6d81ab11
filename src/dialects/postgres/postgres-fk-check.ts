// Foreign keys against the new table, checked before the swap.
//
// The swap re-creates foreign keys NOT VALID under its lock (a VALIDATE there would
// scan whole tables while application writes queue) and validates them after COMMIT.
// A VALIDATE that fails then can only be a warning: the new table is live and the old
// one no longer receives writes. It fails when the ALTER changes the values a key
// compares — numeric(8,2) to numeric(8,0) rounds 1.50 to 2, so a child row's 1.50 has
// no parent any more; a native ALTER TABLE re-validates and refuses exactly this — or
// when the new table lacks rows it should have. So every foreign key the new table
// will take part in is checked here first, with the anti-join VALIDATE itself runs:
//   - keys of other tables that reference the original (re-pointed at the swap): child
//     rows without a parent row in the shadow;
//   - the original's own keys (added to the new table at the swap): shadow rows without
//     a parent row (in the shadow itself when the key references its own table).
// MATCH SIMPLE and MATCH FULL both skip rows with a NULL in the key (a partly NULL row
// under MATCH FULL cannot exist: the old constraint forbids it).
//
// Until the swap's lock the shadow lags the original by what the stream has not
// applied yet, so a row written a moment ago can look like a violation. The engine
// therefore asks again about the keys it got, after applying everything committed
// before the question (`recheck`): those are index probes, not scans.

import type pg from 'pg';
import type { ArtefactNames, CopyPlan, ForeignKeyViolation } from '../dialect.js';
import type { PgContext } from './postgres-context.js';
import { quoteIdent, quoteQualified } from './postgres-quote.js';
import { pgCode } from './postgres-errors.js';
import { ShadowshiftError } from '../../util/errors.js';

/** How many offending keys one violation names. */
const SAMPLE = 10;

interface FkRow {
  side: 'references' | 'declares';
  schema: string;
  table: string;
  name: string;
  cols: string[];
  types: string[];
  refschema: string;
  reftable: string;
  refcols: string[];
  self: boolean;
}

// $1: the original (quoted, qualified). Columns in key order.
const FKS_SQL = `
WITH o AS (SELECT to_regclass($1::text) AS oid),
fk AS (
  SELECT con.*, CASE WHEN con.conrelid = (SELECT oid FROM o) THEN 'declares' ELSE 'references' END AS side
    FROM pg_constraint con
   WHERE con.contype = 'f' AND (con.conrelid = (SELECT oid FROM o) OR con.confrelid = (SELECT oid FROM o)))
SELECT coalesce(json_agg(q ORDER BY q.side, q.schema, q.table, q.name), '[]')::text AS fks FROM (
SELECT fk.side, cn.nspname AS schema, c.relname AS table, fk.conname AS name,
       (SELECT json_agg(a.attname ORDER BY k.i) FROM unnest(fk.conkey) WITH ORDINALITY k(n, i) JOIN pg_attribute a ON a.attrelid = fk.conrelid AND a.attnum = k.n) AS cols,
       (SELECT json_agg(format_type(a.atttypid, a.atttypmod) ORDER BY k.i) FROM unnest(fk.conkey) WITH ORDINALITY k(n, i) JOIN pg_attribute a ON a.attrelid = fk.conrelid AND a.attnum = k.n) AS types,
       pn.nspname AS refschema, p.relname AS reftable,
       (SELECT json_agg(a.attname ORDER BY k.i) FROM unnest(fk.confkey) WITH ORDINALITY k(n, i) JOIN pg_attribute a ON a.attrelid = fk.confrelid AND a.attnum = k.n) AS refcols,
       fk.confrelid = (SELECT oid FROM o) AS self
  FROM fk JOIN pg_class c ON c.oid = fk.conrelid JOIN pg_namespace cn ON cn.oid = c.relnamespace
          JOIN pg_class p ON p.oid = fk.confrelid JOIN pg_namespace pn ON pn.oid = p.relnamespace) q`;

/** One foreign key as the new table will have it: which rows must find which parent. */
interface Check {
  constraint: string;
  /** Who holds the rows that need a parent, and the key columns there (with their types). */
  child: string;
  cols: string[];
  types: string[];
  parent: string;
  refcols: string[];
  describe: string;
}

function checksFor(plan: CopyPlan, names: ArtefactNames, rows: FkRow[]): Check[] {
  const schema = plan.original.ref.schema;
  const shadow = quoteQualified(schema, names.shadow);
  const target = new Map([...plan.columns, ...plan.key].map((m) => [m.source, m.target]));
  const shadowType = new Map(plan.shadow.columns.map((c) => [c.name, c.type]));
  const mapped = (cols: string[]) => (cols.every((c) => target.has(c)) ? cols.map((c) => target.get(c)!) : null);
  const out: Check[] = [];
  for (const r of rows) {
    const qualified = `${r.schema}.${r.table}`;
    if (r.side === 'references') {
      // A column the ALTER drops: the swap itself refuses and says so.
      const refcols = mapped(r.refcols);
      if (!refcols) continue;
      out.push({
        constraint: `${qualified}.${r.name}`,
        child: quoteQualified(r.schema, r.table),
        cols: r.cols,
        types: r.types,
        parent: shadow,
        refcols,
        describe: `foreign key ${r.name} of ${qualified} (${r.cols.join(', ')}) references ${plan.original.ref.name} (${refcols.join(', ')})`,
      });
    } else {
      const cols = mapped(r.cols);
      const refcols = r.self ? mapped(r.refcols) : r.refcols;
      if (!cols || !refcols) continue;
      out.push({
        constraint: `${plan.original.ref.name}.${r.name}`,
        child: shadow,
        cols,
        types: cols.map((c) => shadowType.get(c) ?? 'text'),
        parent: r.self ? shadow : quoteQualified(r.refschema, r.reftable),
        refcols,
        describe: `foreign key ${r.name} of ${plan.original.ref.name} (${cols.join(', ')}) references ${r.self ? plan.original.ref.name : `${r.refschema}.${r.reftable}`} (${refcols.join(', ')})`,
      });
    }
  }
  return out;
}

/** The anti-join: up to SAMPLE distinct keys of `child` without a parent (only among `only` when given). */
function violationsSql(ch: Check, only: string[][] | null): { text: string; values: string[] } {
  const values: string[] = [];
  const c = (i: number) => `c.${quoteIdent(ch.cols[i]!)}`;
  const notNull = ch.cols.map((_, i) => `${c(i)} IS NOT NULL`).join(' AND ');
  const join = ch.refcols.map((rc, i) => `p.${quoteIdent(rc)} = ${c(i)}`).join(' AND ');
  let filter = '';
  if (only) {
    const tuples = only.map((key) => '(' + key.map((v, i) => { values.push(v); return `$${values.length}::${ch.types[i]}`; }).join(', ') + ')');
    filter = ` AND (${ch.cols.map((_, i) => c(i)).join(', ')}) IN (VALUES ${tuples.join(', ')})`;
  }
  const keys = ch.cols.map((_, i) => `${c(i)}::text AS k${i}`).join(', ');
  return {
    text: `SELECT DISTINCT ${keys} FROM ${ch.child} c WHERE ${notNull}${filter} AND NOT EXISTS (SELECT 1 FROM ${ch.parent} p WHERE ${join}) LIMIT ${SAMPLE}`,
    values,
  };
}

function describeKeys(ch: Check, keys: string[][]): string {
  const shown = keys.map((k) => '(' + k.map((v) => `'${v.replace(/'/g, "''")}'`).join(', ') + ')').join(', ');
  return `${ch.describe}: ${keys.length === SAMPLE ? 'at least ' : ''}${keys.length} key(s) without a parent row in the new table, e.g. ${shown}`;
}

/**
 * Rows that would violate a foreign key of (or to) the new table. Without `recheck`
 * every key is checked in full; with it, only the keys those violations named.
 */
export async function foreignKeyViolations(ctx: PgContext, plan: CopyPlan, names: ArtefactNames, recheck?: ForeignKeyViolation[]): Promise<ForeignKeyViolation[]> {
  const fks = await ctx.pool.query<{ fks: string }>(FKS_SQL, [quoteQualified(plan.original.ref.schema, plan.original.ref.name)]);
  const out: ForeignKeyViolation[] = [];
  for (const ch of checksFor(plan, names, JSON.parse(fks.rows[0]!.fks) as FkRow[])) {
    const only = recheck ? recheck.find((v) => v.constraint === ch.constraint)?.keys ?? null : null;
    if (recheck && !only) continue;
    const q = violationsSql(ch, only);
    let r: pg.QueryResult<Record<string, string>>;
    try {
      r = await ctx.pool.query<Record<string, string>>(q.text, q.values);
    } catch (err) {
      // The ALTER made the two sides incomparable (e.g. text against integer).
      if (pgCode(err) === '42883') {
        throw new ShadowshiftError(`${ch.describe}, but the new table's column types cannot be compared with the other side's: ${(err as Error).message}. The original table is untouched.`, { cause: err });
      }
      throw err;
    }
    if (!r.rows.length) continue;
    const keys = r.rows.map((row) => ch.cols.map((_, i) => row[`k${i}`]!));
    out.push({ constraint: ch.constraint, keys, description: describeKeys(ch, keys) });
  }
  return out;
}
