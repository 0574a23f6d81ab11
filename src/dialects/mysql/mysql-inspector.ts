// What a table looks like, from SHOW COLUMNS / SHOW INDEX (which also see the
// session's temporary tables, for previewShadow) and information_schema.

import type { Connection, Pool, PoolConnection, RowDataPacket } from 'mysql2/promise';
import type { ColumnInfo, IndexInfo, TableInfo, TableRef } from '../dialect.js';
import { quoteTable } from './mysql-quote.js';
import { mysqlComparison } from './mysql-comparison.js';
import { UsageError } from '../../util/errors.js';

type Queryable = Pool | PoolConnection | Connection;

async function rows<T>(db: Queryable, sql: string, params: unknown[] = []): Promise<T[]> {
  const [r] = await db.query<RowDataPacket[]>(sql, params);
  return r as unknown as T[];
}

/** Columns and indexes of a table visible to this connection (temporary tables included). */
export async function describeTable(db: Queryable, ref: TableRef): Promise<{ columns: ColumnInfo[]; indexes: IndexInfo[] }> {
  const cols = await rows<{ Field: string; Type: string; Collation: string | null; Null: string; Extra: string }>(
    db,
    `SHOW FULL COLUMNS FROM ${quoteTable(ref.schema, ref.name)}`,
  );
  const columns: ColumnInfo[] = cols.map((c) => ({
    name: c.Field,
    type: c.Type,
    nullable: c.Null === 'YES',
    generated: /\b(VIRTUAL|STORED|PERSISTENT)\b/i.test(c.Extra ?? ''),
    comparison: mysqlComparison(c.Type, c.Collation ?? null),
    // A collation's name starts with its character set's, which has no underscore.
    ...(c.Collation ? { charset: c.Collation.split('_')[0]!, collation: c.Collation } : {}),
  }));
  const idx = await rows<{ Key_name: string; Seq_in_index: number | string; Column_name: string | null; Non_unique: number | string; Sub_part: number | string | null }>(
    db,
    `SHOW INDEX FROM ${quoteTable(ref.schema, ref.name)}`,
  );
  const byName = new Map<string, { seq: number; col: string; prefix: number | null }[]>();
  const unique = new Map<string, boolean>();
  for (const i of idx) {
    const list = byName.get(i.Key_name) ?? [];
    // Functional key parts (MySQL 8) have no column name: such an index cannot serve as a key.
    list.push({ seq: Number(i.Seq_in_index), col: i.Column_name ?? '', prefix: i.Sub_part === null || i.Sub_part === undefined ? null : Number(i.Sub_part) });
    byName.set(i.Key_name, list);
    unique.set(i.Key_name, Number(i.Non_unique) === 0 && (unique.get(i.Key_name) ?? true) && i.Column_name !== null);
  }
  const indexes: IndexInfo[] = [...byName].map(([name, parts]) => {
    parts.sort((a, b) => a.seq - b.seq);
    return {
      name,
      columns: parts.map((p) => p.col),
      unique: unique.get(name) ?? false,
      primary: name === 'PRIMARY',
      prefixLengths: parts.map((p) => p.prefix),
    };
  });
  return { columns, indexes };
}

export async function tableExists(db: Queryable, ref: TableRef): Promise<boolean> {
  const r = await rows<{ n: number }>(
    db,
    `SELECT 1 AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED')`,
    [ref.schema, ref.name],
  );
  return r.length > 0;
}

export type StoredRow = { TABLE_SCHEMA: string; TABLE_NAME: string; TABLE_ROWS: string | null; DATA_LENGTH: string | null; INDEX_LENGTH: string | null };

/**
 * The row for the name as the server stores it. information_schema may compare names
 * case-insensitively (lower_case_table_names 1 and 2, or a case-insensitive file
 * system): the exact spelling wins, and several rows differing only in case are
 * ambiguous.
 */
export function storedRow(found: StoredRow[], ref: TableRef): StoredRow | null {
  const exact = found.find((r) => r.TABLE_SCHEMA === ref.schema && r.TABLE_NAME === ref.name);
  if (exact || found.length <= 1) return exact ?? found[0] ?? null;
  const names = found.map((r) => `${r.TABLE_SCHEMA}.${r.TABLE_NAME}`).join(', ');
  throw new UsageError(`${ref.schema}.${ref.name} matches ${found.length} tables that differ only in letter case (${names}); give the exact name`);
}

/**
 * The table's definition and statistics, or null when it does not exist. `ref` of the
 * result is the name as stored: with lower_case_table_names=1 the binlog's table maps
 * carry that spelling, so every name derived from it (shadow, changelog, stream filter,
 * job lock, cut-over) must start from it, not from what the user typed.
 */
export async function inspectTable(db: Queryable, typed: TableRef): Promise<TableInfo | null> {
  const t = await rows<StoredRow>(
    db,
    `SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_ROWS, DATA_LENGTH, INDEX_LENGTH FROM information_schema.TABLES
      WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED')`,
    [typed.schema, typed.name],
  );
  const row = storedRow(t, typed);
  if (!row) return null;
  const ref: TableRef = { schema: String(row.TABLE_SCHEMA), name: String(row.TABLE_NAME) };
  const { columns, indexes } = await describeTable(db, ref);
  const fks = await rows<{ CONSTRAINT_NAME: string }>(
    db,
    `SELECT CONSTRAINT_NAME FROM information_schema.REFERENTIAL_CONSTRAINTS
      WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ? ORDER BY CONSTRAINT_NAME`,
    [ref.schema, ref.name],
  );
  const referencedBy = await rows<{ TABLE_NAME: string; CONSTRAINT_NAME: string; CONSTRAINT_SCHEMA: string }>(
    db,
    `SELECT CONSTRAINT_SCHEMA, TABLE_NAME, CONSTRAINT_NAME FROM information_schema.REFERENTIAL_CONSTRAINTS
      WHERE UNIQUE_CONSTRAINT_SCHEMA = ? AND REFERENCED_TABLE_NAME = ?
        AND NOT (CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ?) ORDER BY TABLE_NAME, CONSTRAINT_NAME`,
    [ref.schema, ref.name, ref.schema, ref.name],
  );
  const selfRefs = await rows<{ CONSTRAINT_NAME: string }>(
    db,
    `SELECT CONSTRAINT_NAME FROM information_schema.REFERENTIAL_CONSTRAINTS
      WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ? AND REFERENCED_TABLE_NAME = ?`,
    [ref.schema, ref.name, ref.name],
  );
  const triggers = await rows<{ TRIGGER_NAME: string }>(
    db,
    `SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA = ? AND EVENT_OBJECT_TABLE = ? ORDER BY TRIGGER_NAME`,
    [ref.schema, ref.name],
  );
  return {
    ref,
    columns,
    indexes,
    estimatedRows: Number(row.TABLE_ROWS ?? 0),
    estimatedBytes: Number(row.DATA_LENGTH ?? 0) + Number(row.INDEX_LENGTH ?? 0),
    foreignKeys: fks.map((f) => f.CONSTRAINT_NAME),
    referencedBy: [
      ...referencedBy.map((r) => `${r.CONSTRAINT_SCHEMA === ref.schema ? '' : r.CONSTRAINT_SCHEMA + '.'}${r.TABLE_NAME}.${r.CONSTRAINT_NAME}`),
      ...selfRefs.map((r) => `${ref.name}.${r.CONSTRAINT_NAME}`),
    ],
    triggers: triggers.map((x) => x.TRIGGER_NAME),
  };
}

/** Describes a temporary table of this connection (information_schema does not list those), or a preview table. */
export async function inspectTemporary(db: Queryable, ref: TableRef, statsFrom: TableInfo): Promise<TableInfo> {
  const { columns, indexes } = await describeTable(db, ref);
  return { ref, columns, indexes, estimatedRows: statsFrom.estimatedRows, estimatedBytes: statsFrom.estimatedBytes, foreignKeys: [], referencedBy: [], triggers: [] };
}

/** Resolves `db.table` or `table` (against the URL's database). Backticks may quote either part. */
export function resolveTableName(name: string, defaultSchema: string): TableRef {
  const parts: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < name.length; i++) {
    const ch = name[i]!;
    if (quoted) {
      if (ch === '`') {
        if (name[i + 1] === '`') {
          cur += '`';
          i++;
        } else quoted = false;
      } else cur += ch;
    } else if (ch === '`') quoted = true;
    else if (ch === '.') {
      parts.push(cur);
      cur = '';
    } else cur += ch;
  }
  parts.push(cur);
  if (parts.length === 1) return { schema: defaultSchema, name: parts[0]!.trim() };
  if (parts.length === 2) return { schema: parts[0]!.trim(), name: parts[1]!.trim() };
  return { schema: defaultSchema, name: name.trim() };
}
