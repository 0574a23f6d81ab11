// The adversarial table, per dialect: a composite primary key (tenant_id, k)
// whose k values differ only by case, normal form, 4-byte characters or
// trailing spaces; a NOT NULL UNIQUE surrogate sid; ordinary columns of many
// types, all nullable; two ~50 KB columns. How each column is read back as
// exact text (or 'len:sha256' for the large ones), and the ALTERs the test runs.

import { quoteIdent, type Db, type Dialect } from '../db.js';
import { ENUM_LABELS, SESSION_OFFSET, SET_MEMBERS } from './values.js';

export interface ColumnDef {
  name: string;
  type: string;
  /** Compared as 'byte length:sha256' instead of the value. */
  big?: boolean;
  /** Read as upper-case hex. */
  binary?: boolean;
}

const lit = (s: string) => `'${s.replace(/'/g, "''")}'`;

/** MariaDB's utf8mb4_bin pads with spaces ('a' = 'a '); the NO PAD collation keeps trailing-space keys distinct. MySQL 8's _0900_bin is NO PAD. */
export function keyCollation(flavor: 'mariadb' | 'mysql'): string {
  return flavor === 'mariadb' ? 'utf8mb4_nopad_bin' : 'utf8mb4_0900_bin';
}

export function columnDefs(d: Dialect, flavor: 'mariadb' | 'mysql' | 'postgres'): ColumnDef[] {
  if (d === 'mysql') {
    return [
      { name: 'tenant_id', type: 'INT NOT NULL' },
      { name: 'k', type: `VARCHAR(100) CHARACTER SET utf8mb4 COLLATE ${keyCollation(flavor === 'mysql' ? 'mysql' : 'mariadb')} NOT NULL` },
      { name: 'sid', type: 'BIGINT NOT NULL' },
      { name: 'i32', type: 'INT NULL' },
      { name: 'i64', type: 'BIGINT NULL' },
      { name: 'u64', type: 'BIGINT UNSIGNED NULL' },
      { name: 'dec', type: 'DECIMAL(30,10) NULL' },
      { name: 'f32', type: 'FLOAT NULL' },
      { name: 'f64', type: 'DOUBLE NULL' },
      { name: 'd', type: 'DATE NULL' },
      { name: 'dt', type: 'DATETIME(6) NULL' },
      { name: 'ts', type: 'TIMESTAMP(6) NULL DEFAULT NULL' },
      { name: 'tm', type: 'TIME(6) NULL' },
      { name: 'js', type: 'JSON NULL' },
      // PAD SPACE and case-insensitive on purpose: trailing spaces must still travel.
      { name: 'note', type: 'VARCHAR(200) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci NULL' },
      { name: 'sbin', type: 'VARBINARY(32) NULL', binary: true },
      { name: 'en', type: `ENUM(${ENUM_LABELS.map(lit).join(', ')}) NULL` },
      { name: 'st', type: `SET(${SET_MEMBERS.map(lit).join(', ')}) NULL` },
      { name: 'flag', type: 'BOOLEAN NULL' },
      { name: 'bits', type: 'BIT(10) NULL', binary: true },
      { name: 'big_text', type: 'MEDIUMTEXT NULL', big: true },
      { name: 'big_bin', type: 'MEDIUMBLOB NULL', big: true },
    ];
  }
  return [
    { name: 'tenant_id', type: 'integer NOT NULL' },
    { name: 'k', type: 'varchar(100) NOT NULL' },
    { name: 'sid', type: 'bigint NOT NULL' },
    { name: 'i32', type: 'integer' },
    { name: 'i64', type: 'bigint' },
    { name: 'dec', type: 'numeric(30,10)' },
    { name: 'f32', type: 'real' },
    { name: 'f64', type: 'double precision' },
    { name: 'd', type: 'date' },
    { name: 'dt', type: 'timestamp(6)' },
    { name: 'ts', type: 'timestamptz(6)' },
    { name: 'tm', type: 'time(6)' },
    { name: 'js', type: 'jsonb' },
    { name: 'note', type: 'varchar(200)' },
    { name: 'sbin', type: 'bytea', binary: true },
    { name: 'en', type: 'adv_size' },
    { name: 'flag', type: 'boolean' },
    { name: 'bits', type: 'bit(10)' },
    { name: 'tags', type: 'text[]' },
    { name: 'big_text', type: 'text', big: true },
    { name: 'big_bin', type: 'bytea', big: true },
  ];
}

export function createTableSql(d: Dialect, flavor: 'mariadb' | 'mysql' | 'postgres', table: string): string[] {
  const q = (n: string) => quoteIdent(d, n);
  const cols = columnDefs(d, flavor).map((c) => `  ${q(c.name)} ${c.type}`);
  if (d === 'mysql') {
    return [
      `CREATE TABLE ${q(table)} (\n${cols.join(',\n')},\n  PRIMARY KEY (tenant_id, k),\n  UNIQUE KEY ${q(`${table}_sid`)} (sid)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
    ];
  }
  return [
    `CREATE TYPE adv_size AS ENUM (${ENUM_LABELS.map(lit).join(', ')})`,
    `CREATE TABLE ${q(table)} (\n${cols.join(',\n')},\n  PRIMARY KEY (tenant_id, k),\n  CONSTRAINT ${q(`${table}_sid`)} UNIQUE (sid)\n)`,
  ];
}

/**
 * The online ALTER under test. MySQL: the primary key moves to the surrogate
 * (the copy walks (tenant_id, k), which both tables keep unique) and two
 * columns widen. PostgreSQL: the widening only; see pkChangeAlter.
 */
export function alterSql(d: Dialect, table: string): string {
  if (d === 'mysql') {
    return `DROP PRIMARY KEY, ADD PRIMARY KEY (sid), DROP INDEX ${quoteIdent(d, `${table}_sid`)}, ADD UNIQUE KEY ${quoteIdent(d, `${table}_tk`)} (tenant_id, k), MODIFY i32 BIGINT NULL, MODIFY f32 DOUBLE NULL`;
  }
  return 'ALTER COLUMN i32 TYPE bigint, ALTER COLUMN f32 TYPE double precision';
}

/** The primary-key change on PostgreSQL, as a user would write it (constraint names of the original). */
export function pkChangeAlter(table: string): string {
  return `DROP CONSTRAINT "${table}_pkey", ADD PRIMARY KEY (sid), DROP CONSTRAINT "${table}_sid", ADD CONSTRAINT "${table}_tk" UNIQUE (tenant_id, k), ALTER COLUMN i32 TYPE bigint`;
}

/** An exact text image of a column, as the model predicts it (see values.ts). */
export function textExpr(d: Dialect, c: ColumnDef): string {
  const ref = quoteIdent(d, c.name);
  if (d === 'mysql') {
    if (c.big) return `CONCAT(LENGTH(${ref}), ':', SHA2(${ref}, 256))`;
    if (c.binary) return `HEX(${ref})`;
    // FLOAT prints 6 significant digits; widened to DOUBLE it prints exactly (and still does after the ALTER makes it DOUBLE).
    if (c.name === 'f32') return `CAST(CAST(${ref} AS DOUBLE) AS CHAR)`;
    return `CAST(${ref} AS CHAR)`;
  }
  if (c.big) return c.name === 'big_bin' ? `octet_length(${ref}) || ':' || encode(sha256(${ref}), 'hex')` : `octet_length(${ref}) || ':' || encode(sha256(convert_to(${ref}, 'UTF8')), 'hex')`;
  if (c.binary) return `upper(encode(${ref}, 'hex'))`;
  return `${ref}::text`;
}

/** Session settings every workload and comparison connection gets: the fixed-offset zone the model's TIMESTAMP text assumes. */
export async function prepareSession(db: Db): Promise<void> {
  if (db.dialect === 'mysql') await db.exec(`SET time_zone = '${SESSION_OFFSET}', NAMES utf8mb4`);
  else await db.exec(`SET TIME ZONE INTERVAL '${SESSION_OFFSET}' HOUR TO MINUTE`);
}

export async function serverFlavor(db: Db): Promise<'mariadb' | 'mysql' | 'postgres'> {
  if (db.dialect === 'postgres') return 'postgres';
  const [v] = await db.query<{ v: string }>('SELECT VERSION() AS v');
  return /mariadb/i.test(String(v?.v)) ? 'mariadb' : 'mysql';
}
