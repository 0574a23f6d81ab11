// What the new table enforces, compared with what the ALTER asked for, before a swap.
//
// The shadow goes through steps the ALTER never sees: with deferred indexes its
// UNIQUE and EXCLUDE constraints are dropped and rebuilt after the copy (by CREATE
// INDEX CONCURRENTLY and ADD CONSTRAINT ... USING INDEX, which carries a constraint's
// name and timing only when told to). A constraint that comes back different — a
// DEFERRABLE INITIALLY DEFERRED unique key made immediate breaks every application
// transaction that swaps two values — is found here, before the cut-over takes any
// lock, instead of by the application afterwards. The reference is the preview
// (`LIKE ... INCLUDING ALL` plus the ALTER on a throwaway table, see previewShadow),
// i.e. what a native ALTER TABLE would have left.
//
// Definitions carry no names: the preview's and the shadow's generated names differ,
// and the cut-over renames them anyway.

import type pg from 'pg';
import type { TableInfo, TableRef } from '../dialect.js';
import { quoteQualified } from './postgres-quote.js';
import { ShadowshiftError } from '../../util/errors.js';

type Queryable = Pick<pg.ClientBase, 'query'> | Pick<pg.Pool, 'query'>;

// pg_get_indexdef starts `CREATE [UNIQUE] INDEX <name> ON [ONLY] <table> USING`: the
// prefix up to the table is cut by its length (an index name may contain " USING "),
// the table's name (ours: the shadow's or the preview's) up to " USING ".
const DEFINITIONS_SQL = `
WITH rel AS (SELECT to_regclass($1::text) AS oid),
idx AS (
  SELECT i.*, substr(pg_get_indexdef(i.indexrelid),
                     length('CREATE ' || CASE WHEN i.indisunique THEN 'UNIQUE ' ELSE '' END || 'INDEX ' || quote_ident(ic.relname) || ' ON ') + 1) AS rest
    FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
   WHERE i.indrelid = (SELECT oid FROM rel))
SELECT d FROM (
  SELECT 'constraint ' || pg_get_constraintdef(con.oid) AS d FROM pg_constraint con WHERE con.conrelid = (SELECT oid FROM rel)
  UNION ALL
  SELECT 'index ' || CASE WHEN indisunique THEN 'UNIQUE ' ELSE '' END || substr(rest, position(' USING ' in rest) + 1)
         || CASE WHEN NOT indimmediate THEN ' (deferrable)' ELSE '' END
         || CASE WHEN NOT indisvalid THEN ' (INVALID)' ELSE '' END
    FROM idx
) q ORDER BY 1`;

/** The table's constraints and indexes as name-free definitions, sorted. */
export async function readDefinitions(db: Queryable, ref: TableRef): Promise<string[]> {
  const r = await db.query<{ d: string }>(DEFINITIONS_SQL, [quoteQualified(ref.schema, ref.name)]);
  return r.rows.map((x) => x.d);
}

/** What is in `expected` and not in `actual` (and the reverse), as multisets. */
export function definitionDifferences(expected: string[], actual: string[]): { missing: string[]; unexpected: string[] } {
  const left = [...actual];
  const missing: string[] = [];
  for (const e of expected) {
    const i = left.indexOf(e);
    if (i < 0) missing.push(e);
    else left.splice(i, 1);
  }
  return { missing, unexpected: left };
}

/**
 * Throws when the shadow does not enforce exactly what the preview did. Without a
 * preview carrying definitions (a caller outside the engine) there is nothing to
 * compare with, and nothing is checked.
 */
export async function checkShadowDefinitions(db: Queryable, shadow: TableRef, table: string, expected: TableInfo | undefined): Promise<void> {
  if (!expected?.definitions) return;
  const { missing, unexpected } = definitionDifferences(expected.definitions, await readDefinitions(db, shadow));
  if (!missing.length && !unexpected.length) return;
  const list = (xs: string[]) => xs.map((x) => `    ${x}`).join('\n');
  throw new ShadowshiftError(
    `the new table for ${table} does not enforce what the ALTER asks for, so it is not swapped in:\n` +
      (missing.length ? `  the ALTER gives, the new table lacks:\n${list(missing)}\n` : '') +
      (unexpected.length ? `  the new table has, the ALTER does not give:\n${list(unexpected)}\n` : '') +
      `This is a shadowshift bug (or the new table ${shadow.name} was changed by hand); please report it. The original table is untouched.`,
  );
}
