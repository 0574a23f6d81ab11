// Foreign keys on MySQL/MariaDB, as the catalog shows them, and the metadata-only DDL
// that moves them at the cut-over (issue 15; docs/design/mysql-foreign-keys-and-triggers.md
// has the measurements: every statement here runs in place, in a few milliseconds, with
// foreign_key_checks off, whatever the tables' sizes).
//
// Both sides of a key are read the same way: `declaredBy` gives the keys a table holds
// (it is the child; its parents' cascades are replayed into the shadow,
// mysql-cascades.ts), `referencing` the keys that point at it (it is the parent; the
// children are repointed at the shadow under the swap's lock, mysql-cutover.ts).

import { createHash } from 'node:crypto';
import type { Connection, Pool, PoolConnection, RowDataPacket } from 'mysql2/promise';
import { quoteIdent, quoteTable } from './mysql-quote.js';
import { MAX_IDENT_CHARS } from './mysql-names.js';

type Queryable = Pool | PoolConnection | Connection;

export type ForeignKeyAction = 'CASCADE' | 'SET NULL' | 'RESTRICT' | 'NO ACTION' | 'SET DEFAULT';

export interface ForeignKey {
  /** The table that declares the key (the child). */
  schema: string;
  table: string;
  name: string;
  columns: string[];
  /** The table it references (the parent). */
  refSchema: string;
  refTable: string;
  refColumns: string[];
  onDelete: ForeignKeyAction;
  onUpdate: ForeignKeyAction;
}

/** The suffix of a key's name on the shadow until it gets its own back after the swap. */
export const SHADOW_KEY_SUFFIX = '_ssnew';

/** `<name>_ssnew`, or for a name too long for that, its start, `~` and a hash of the whole. */
export function shadowKeyName(name: string): string {
  const chars = [...name];
  if (chars.length + SHADOW_KEY_SUFFIX.length <= MAX_IDENT_CHARS) return `${name}${SHADOW_KEY_SUFFIX}`;
  const hash = createHash('sha256').update(name).digest('hex').slice(0, 6);
  return `${chars.slice(0, MAX_IDENT_CHARS - SHADOW_KEY_SUFFIX.length - hash.length - 1).join('')}~${hash}${SHADOW_KEY_SUFFIX}`;
}

async function readKeys(db: Queryable, where: string, params: string[]): Promise<ForeignKey[]> {
  const [rows] = await db.query<RowDataPacket[]>(
    `SELECT r.CONSTRAINT_SCHEMA AS s, r.TABLE_NAME AS t, r.CONSTRAINT_NAME AS n, r.UNIQUE_CONSTRAINT_SCHEMA AS rs,
            r.REFERENCED_TABLE_NAME AS rt, r.UPDATE_RULE AS u, r.DELETE_RULE AS d, k.COLUMN_NAME AS c, k.REFERENCED_COLUMN_NAME AS rc
       FROM information_schema.REFERENTIAL_CONSTRAINTS r
       JOIN information_schema.KEY_COLUMN_USAGE k
         ON k.CONSTRAINT_SCHEMA = r.CONSTRAINT_SCHEMA AND k.TABLE_NAME = r.TABLE_NAME AND k.CONSTRAINT_NAME = r.CONSTRAINT_NAME
        AND k.REFERENCED_TABLE_NAME IS NOT NULL
      WHERE ${where}
      ORDER BY r.CONSTRAINT_SCHEMA, r.TABLE_NAME, r.CONSTRAINT_NAME, k.ORDINAL_POSITION`,
    params,
  );
  const keys = new Map<string, ForeignKey>();
  for (const r of rows) {
    const id = JSON.stringify([r.s, r.t, r.n]);
    let key = keys.get(id);
    if (!key) {
      key = {
        schema: String(r.s),
        table: String(r.t),
        name: String(r.n),
        columns: [],
        refSchema: String(r.rs),
        refTable: String(r.rt),
        refColumns: [],
        onDelete: String(r.d) as ForeignKeyAction,
        onUpdate: String(r.u) as ForeignKeyAction,
      };
      keys.set(id, key);
    }
    key.columns.push(String(r.c));
    key.refColumns.push(String(r.rc));
  }
  return [...keys.values()];
}

/** The keys `table` declares (to its parents, itself included). */
export function declaredBy(db: Queryable, schema: string, table: string): Promise<ForeignKey[]> {
  return readKeys(db, 'r.CONSTRAINT_SCHEMA = ? AND r.TABLE_NAME = ? AND k.TABLE_SCHEMA = ? AND k.TABLE_NAME = ?', [schema, table, schema, table]);
}

/** The keys that reference `table` (its children's, its own included). */
export function referencing(db: Queryable, schema: string, table: string): Promise<ForeignKey[]> {
  return readKeys(db, 'r.UNIQUE_CONSTRAINT_SCHEMA = ? AND r.REFERENCED_TABLE_NAME = ?', [schema, table]);
}

/** Whether a change of the parent reaches the child's rows (which the binlog does not show before MySQL 9.6). */
export function cascades(fk: ForeignKey): boolean {
  return ['CASCADE', 'SET NULL'].includes(fk.onDelete) || ['CASCADE', 'SET NULL'].includes(fk.onUpdate);
}

/** `ADD CONSTRAINT <name> FOREIGN KEY ... REFERENCES <parent>`: the key as declared, under `name`, pointing at `parent` (default its own). */
export function addKeyClause(fk: ForeignKey, name: string, parent: { schema: string; table: string } = { schema: fk.refSchema, table: fk.refTable }): string {
  const cols = (cs: string[]) => cs.map(quoteIdent).join(', ');
  // RESTRICT is the default, and MariaDB's catalog shows it only when no clause is given (an explicit one reads NO ACTION).
  const action = (on: string, rule: ForeignKeyAction) => (rule === 'RESTRICT' ? '' : ` ON ${on} ${rule}`);
  return `ADD CONSTRAINT ${quoteIdent(name)} FOREIGN KEY (${cols(fk.columns)}) REFERENCES ${quoteTable(parent.schema, parent.table)} (${cols(fk.refColumns)})${action('DELETE', fk.onDelete)}${action('UPDATE', fk.onUpdate)}`;
}

export function dropKeyClause(name: string): string {
  return `DROP FOREIGN KEY ${quoteIdent(name)}`;
}

/**
 * Runs metadata-only key DDL: in place (never a table copy, which would hold the lock
 * for as long as the copy takes), without checking the rows (they are known to match).
 * Puts the session's foreign_key_checks back.
 */
export async function alterKeys(conn: Connection | PoolConnection, schema: string, table: string, clauses: string[]): Promise<void> {
  if (clauses.length === 0) return;
  await conn.query('SET SESSION foreign_key_checks = 0');
  try {
    await conn.query(`ALTER TABLE ${quoteTable(schema, table)} ${clauses.join(', ')}, ALGORITHM=INPLACE`);
  } finally {
    await conn.query('SET SESSION foreign_key_checks = 1');
  }
}

/** The statements that do what alterKeys does, for a person to run. */
export function alterKeysStatements(schema: string, table: string, clauses: string[]): string[] {
  return ['SET SESSION foreign_key_checks = 0', `ALTER TABLE ${quoteTable(schema, table)} ${clauses.join(', ')}, ALGORITHM=INPLACE`, 'SET SESSION foreign_key_checks = 1'];
}

/**
 * Why the new table (`shadow`) cannot hold a key over what were `columns` of `table`,
 * now `newColumns`: a column gone or changed in type or collation, or no index whose
 * first columns are exactly those, in order (InnoDB needs one, and would build it under
 * the lock). Null when it can. Read from the catalog, without DDL.
 */
export async function keyColumnsProblem(db: Queryable, schema: string, table: string, shadow: string, columns: string[], newColumns: string[]): Promise<string | null> {
  const [cols] = await db.query<RowDataPacket[]>(
    'SELECT TABLE_NAME AS t, COLUMN_NAME AS c, COLUMN_TYPE AS ty, COLLATION_NAME AS co FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME IN (?, ?)',
    [schema, table, shadow],
  );
  const shape = (t: string, c: string) => {
    const r = cols.find((x) => String(x.t) === t && String(x.c).toLowerCase() === c.toLowerCase());
    return r ? `${String(r.ty)}${r.co === null ? '' : ` COLLATE ${String(r.co)}`}` : undefined;
  };
  for (const [i, c] of columns.entries()) {
    const before = shape(table, c);
    const after = shape(shadow, newColumns[i]!);
    if (after === undefined) return `the new table has no column ${newColumns[i]}`;
    if (before !== after) return `the ALTER changes ${c} from ${before} to ${after}`;
  }
  const [stats] = await db.query<RowDataPacket[]>(
    'SELECT INDEX_NAME AS i, COLUMN_NAME AS c, SUB_PART AS p FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY INDEX_NAME, SEQ_IN_INDEX',
    [schema, shadow],
  );
  const indexes = new Map<string, string[]>();
  // A prefix (SUB_PART) ends what a key can use of the index.
  for (const r of stats) indexes.set(String(r.i), [...(indexes.get(String(r.i)) ?? []), r.p === null ? String(r.c).toLowerCase() : '\0']);
  const wanted = newColumns.map((c) => c.toLowerCase());
  const leads = [...indexes.values()].some((cs) => wanted.every((c, i) => cs[i] === c));
  return leads ? null : `the new table has no index whose first columns are exactly (${newColumns.join(', ')}), in that order`;
}
