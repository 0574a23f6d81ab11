// Reads table definitions from pg_catalog.

import type pg from 'pg';
import type { ColumnInfo, IndexInfo, TableInfo, TableRef } from '../dialect.js';
import { UsageError } from '../../util/errors.js';
import { postgresComparison } from './postgres-comparison.js';

type Queryable = Pick<pg.ClientBase, 'query'> | Pick<pg.Pool, 'query'>;

export interface ColumnDetail extends ColumnInfo {
  attnum: number;
  /** '' | 'a' (ALWAYS) | 'd' (BY DEFAULT) */
  identity: '' | 'a' | 'd';
  /** Type without modifier, e.g. `numeric` for `numeric(12,2)`. */
  baseType: string;
  /** pg_type oid of the column's type (a domain's own, not its base type's). */
  typeOid: number;
  /** The column's collation when equality depends on it (nondeterministic, or any collation of citext); else null. */
  comparedByCollation: string | null;
}

/** The relation's oid, or null when there is no such table. */
export async function tableOid(db: Queryable, ref: TableRef): Promise<string | null> {
  const r = await db.query<{ oid: string }>(
    `SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r','p')`,
    [ref.schema, ref.name],
  );
  return r.rows[0]?.oid ?? null;
}

export async function columnDetails(db: Queryable, oid: string): Promise<ColumnDetail[]> {
  // collisdeterministic exists from PostgreSQL 12 on, and before it every collation
  // was deterministic: read it through to_jsonb so older servers answer too.
  const r = await db.query<{ attname: string; type: string; base: string; typeoid: string; notnull: string; generated: string; identity: string; attnum: string; collation: string | null }>(
    `SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS type, format_type(a.atttypid, NULL) AS base, a.atttypid::int AS typeoid,
            a.attnotnull::text AS notnull, a.attgenerated::text AS generated, a.attidentity::text AS identity, a.attnum,
            CASE WHEN to_jsonb(co) ->> 'collisdeterministic' = 'false' OR t.typname = 'citext' THEN co.collname END AS collation
       FROM pg_attribute a
       JOIN pg_type t ON t.oid = a.atttypid
       LEFT JOIN pg_collation co ON co.oid = a.attcollation
      WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
      ORDER BY a.attnum`,
    [oid],
  );
  return r.rows.map((row) => ({
    name: row.attname,
    type: row.type,
    baseType: row.base,
    typeOid: Number(row.typeoid),
    nullable: row.notnull !== 'true',
    generated: row.generated !== '',
    identity: row.identity as ColumnDetail['identity'],
    attnum: Number(row.attnum),
    comparedByCollation: row.collation,
  }));
}

export async function inspectTable(db: Queryable, ref: TableRef): Promise<TableInfo | null> {
  const oid = await tableOid(db, ref);
  if (oid === null) return null;
  const columns: ColumnInfo[] = (await columnDetails(db, oid)).map(({ name, type, baseType, nullable, generated, comparedByCollation }) => ({
    name,
    type,
    nullable,
    generated,
    comparison: postgresComparison(type, baseType, comparedByCollation),
    ...(comparedByCollation ? { collation: comparedByCollation } : {}),
  }));

  const idx = await db.query<{ name: string; unique: string; primary: string; cols: string[] | string }>(
    `SELECT ic.relname AS name, i.indisunique::text AS unique, i.indisprimary::text AS primary,
            ARRAY(SELECT CASE WHEN i.indkey[k] = 0 THEN pg_get_indexdef(i.indexrelid, k + 1, true)
                              ELSE (SELECT attname FROM pg_attribute WHERE attrelid = i.indrelid AND attnum = i.indkey[k]) END
                    FROM generate_subscripts(i.indkey, 1) AS k
                   WHERE k < i.indnkeyatts
                   ORDER BY k) AS cols
       FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
      WHERE i.indrelid = $1
      ORDER BY i.indisprimary DESC, ic.relname`,
    [oid],
  );
  const indexes: IndexInfo[] = idx.rows.map((row) => ({
    name: row.name,
    columns: parseTextArray(row.cols),
    unique: row.unique === 'true',
    primary: row.primary === 'true',
  }));

  const fks = await db.query<{ conname: string }>(
    `SELECT conname FROM pg_constraint WHERE conrelid = $1 AND contype = 'f' ORDER BY conname`,
    [oid],
  );
  const refs = await db.query<{ name: string }>(
    `SELECT CASE WHEN n.nspname = $2 THEN c.relname ELSE n.nspname || '.' || c.relname END || '.' || con.conname AS name
       FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE con.confrelid = $1 AND con.contype = 'f' ORDER BY 1`,
    [oid, ref.schema],
  );
  const trg = await db.query<{ tgname: string }>(
    `SELECT tgname FROM pg_trigger WHERE tgrelid = $1 AND NOT tgisinternal ORDER BY tgname`,
    [oid],
  );
  // The size from the statistics, like the row estimate: pg_table_size() opens the table, so it
  // queues behind any lock request waiting there (a stopped run's cut-over, whose LOCK a resume
  // must find and end first), and this is the first thing every job reads.
  const size = await db.query<{ reltuples: string; bytes: string }>(
    `SELECT c.reltuples::bigint::text AS reltuples,
            ((GREATEST(c.relpages, 0) + COALESCE((SELECT GREATEST(t.relpages, 0) FROM pg_class t WHERE t.oid = c.reltoastrelid), 0))::bigint
              * current_setting('block_size')::bigint)::text AS bytes
       FROM pg_class c WHERE c.oid = $1`,
    [oid],
  );
  const reltuples = Number(size.rows[0]?.reltuples ?? 0);
  return {
    ref: { ...ref },
    columns,
    indexes,
    estimatedRows: reltuples > 0 ? reltuples : 0,
    estimatedBytes: Number(size.rows[0]?.bytes ?? 0),
    foreignKeys: fks.rows.map((r) => r.conname),
    referencedBy: refs.rows.map((r) => r.name),
    triggers: trg.rows.map((r) => r.tgname),
  };
}

/** Parses a one-dimensional text[] literal (the types are passed through as text). */
export function parseTextArray(value: string[] | string | null): string[] {
  if (value === null) return [];
  if (Array.isArray(value)) return value;
  if (value === '{}') return [];
  const out: string[] = [];
  let i = 1;
  while (i < value.length - 1) {
    if (value[i] === '"') {
      let s = '';
      i++;
      while (value[i] !== '"') {
        if (value[i] === '\\') i++;
        s += value[i];
        i++;
      }
      i++;
      out.push(s);
    } else {
      let j = i;
      while (j < value.length - 1 && value[j] !== ',') j++;
      const raw = value.slice(i, j);
      out.push(raw === 'NULL' ? '' : raw);
      i = j;
    }
    if (value[i] === ',') i++;
  }
  return out;
}

/** Splits `schema.table` / `"odd ""name"""` into parts, folding unquoted parts to lower case like PostgreSQL. */
export function parseQualifiedName(input: string): Array<{ text: string; quoted: boolean }> {
  const parts: Array<{ text: string; quoted: boolean }> = [];
  let i = 0;
  const s = input.trim();
  while (i < s.length) {
    if (s[i] === '"') {
      let text = '';
      i++;
      for (;;) {
        if (i >= s.length) throw new UsageError(`unterminated quoted identifier in table name ${input}`);
        if (s[i] === '"') {
          if (s[i + 1] === '"') {
            text += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        text += s[i++];
      }
      parts.push({ text, quoted: true });
    } else {
      let j = i;
      while (j < s.length && s[j] !== '.') j++;
      parts.push({ text: s.slice(i, j), quoted: false });
      i = j;
    }
    if (i < s.length) {
      if (s[i] !== '.') throw new UsageError(`cannot parse table name ${input}: expected "." after an identifier`);
      i++;
    }
  }
  if (parts.length === 0 || parts.length > 2 || parts.some((p) => p.text === '')) {
    throw new UsageError(`cannot parse table name ${JSON.stringify(input)}: use table, schema.table, or "Quoted"."Names"`);
  }
  return parts;
}

/** Visible tables of the search path, by name, as pg_table_is_visible sees them; loaded once at open. */
export async function loadVisibleTables(db: Queryable): Promise<{ searchPath: string[]; visible: Map<string, string> }> {
  const sp = await db.query<{ schemas: string }>(`SELECT current_schemas(false)::text AS schemas`);
  const searchPath = parseTextArray(sp.rows[0]?.schemas ?? '{}');
  const r = await db.query<{ relname: string; nspname: string }>(
    `SELECT c.relname, n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r','p') AND pg_table_is_visible(c.oid)`,
  );
  const visible = new Map<string, string>();
  for (const row of r.rows) visible.set(row.relname, row.nspname);
  return { searchPath, visible };
}

export function resolveTableName(input: string, searchPath: string[], visible: Map<string, string>): TableRef {
  const parts = parseQualifiedName(input);
  const fold = (p: { text: string; quoted: boolean }) => (p.quoted ? p.text : p.text.toLowerCase());
  if (parts.length === 2) {
    return { schema: fold(parts[0]!), name: fold(parts[1]!) };
  }
  const p = parts[0]!;
  const folded = fold(p);
  const schema = visible.get(folded) ?? (!p.quoted ? visible.get(p.text) : undefined);
  if (schema !== undefined) return { schema, name: visible.has(folded) ? folded : p.text };
  return { schema: searchPath[0] ?? 'public', name: folded };
}
