// What one ALTER TABLE clause costs on each dialect, from the text and (when
// known) the column's current type. Shared by the planner (what to run) and
// the lint rules (what to warn about). Rules are for MariaDB 10.4+ / MySQL
// 8.0.29+ and PostgreSQL 11+.

import type { DialectName } from '../dialects/dialect.js';
import type { ColumnDetail } from './migration-store.js';
import { clauseColumn, hasVolatileDefault, normaliseType, readIdentifier } from './sql-analysis.js';

/** instant < inplace (no table rebuild, writes allowed) < rebuild (in place, writes allowed) < copy (blocks writes). */
export type MysqlAlterClass = 'instant' | 'inplace' | 'rebuild' | 'copy';
export const MYSQL_RANK: Record<MysqlAlterClass, number> = { instant: 0, inplace: 1, rebuild: 2, copy: 3 };

export interface Classified<C> {
  cls: C;
  why: string;
}

function columnOf(columns: ColumnDetail[] | undefined, name: string | null): ColumnDetail | undefined {
  if (!columns || !name) return undefined;
  return columns.find((c) => c.name.toLowerCase() === name.toLowerCase());
}

/** The type part of a MySQL column definition: `BIGINT UNSIGNED NOT NULL DEFAULT 0` -> `bigint unsigned`. */
function mysqlDefinitionType(def: string): string {
  const stop = /\s+(not\s+null|null|default|auto_increment|comment|primary|unique|key|references|check|generated|as|after|first|collate|character\s+set|charset|on\s+update|invisible|visible)\b/i;
  const m = stop.exec(def);
  return normaliseType((m ? def.slice(0, m.index) : def).trim());
}

function varcharLength(type: string): number | null {
  const m = /^varchar\((\d+)\)/.exec(type);
  return m ? Number(m[1]) : null;
}

export function classifyMysqlClause(clause: string, columns?: ColumnDetail[]): Classified<MysqlAlterClass> {
  const c = clause.trim();
  const lc = c.toLowerCase();
  if (/^(algorithm|lock)\s*=?/.test(lc)) return { cls: 'instant', why: 'algorithm/lock option' };
  if (/^add\s+(constraint\s+\S+\s+)?(primary\s+key)/.test(lc)) return { cls: 'rebuild', why: 'adding a primary key rebuilds the table' };
  if (/^drop\s+primary\s+key/.test(lc)) return { cls: 'copy', why: 'dropping the primary key copies the table' };
  if (/^add\s+(constraint\s+\S+\s+)?foreign\s+key/.test(lc)) return { cls: 'copy', why: 'a foreign key is checked over every row (COPY unless foreign_key_checks=0)' };
  if (/^add\s+(constraint\s+\S+\s+)?check\b/.test(lc)) return { cls: 'copy', why: 'a CHECK constraint is verified by copying the table' };
  if (/^add\s+(constraint\s+\S+\s+)?(unique|index|key|fulltext|spatial)\b/.test(lc)) {
    if (/^add\s+(fulltext|spatial)/.test(lc)) return { cls: 'rebuild', why: 'a FULLTEXT/SPATIAL index blocks writes while it builds' };
    return { cls: 'inplace', why: 'a secondary index builds in place; reads and writes continue' };
  }
  if (/^add\s+(column\s+)?/.test(lc) && !/^add\s+partition/.test(lc)) {
    if (/\bauto_increment\b/.test(lc)) return { cls: 'copy', why: 'an AUTO_INCREMENT column fills every row' };
    if (/\b(stored|persistent)\b/.test(lc)) return { cls: 'copy', why: 'a stored generated column is computed for every row' };
    if (/\bprimary\s+key\b|\bunique\b/.test(lc)) return { cls: 'rebuild', why: 'the column comes with an index' };
    const vol = hasVolatileDefault(c);
    if (vol || /\bdefault\s*\(/.test(lc)) return { cls: 'copy', why: `an expression default${vol ? ` (${vol}())` : ''} is evaluated for every row` };
    return { cls: 'instant', why: 'ADD COLUMN is INSTANT' };
  }
  if (/^drop\s+(index|key|foreign\s+key|constraint|check)\b/.test(lc)) return { cls: 'instant', why: 'dropping an index or constraint changes metadata only' };
  if (/^drop\s+(column\s+)?/.test(lc) && !/^drop\s+partition/.test(lc)) return { cls: 'instant', why: 'DROP COLUMN is INSTANT' };
  if (/^rename\s+(index|key|column)\b/.test(lc)) return { cls: 'instant', why: 'renaming changes metadata only' };
  if (/^rename\s+(to|as)?\b/.test(lc)) return { cls: 'instant', why: 'renaming the table changes metadata only' };
  if (/^alter\s+(column\s+)?\S+\s+(set\s+default|drop\s+default|set\s+(in)?visible)/.test(lc)) return { cls: 'instant', why: 'a default changes metadata only' };
  if (/^alter\s+(index|key)\s+\S+\s+(in)?visible/.test(lc)) return { cls: 'instant', why: 'index visibility changes metadata only' };
  if (/^(comment|auto_increment)\s*=?/.test(lc)) return { cls: 'instant', why: 'table option changes metadata only' };
  if (/^(engine|row_format|key_block_size)\s*=?|^force$|^convert\s+to\b|^(default\s+)?(character\s+set|charset|collate)\b/.test(lc)) {
    return { cls: 'rebuild', why: 'the table is rebuilt' };
  }
  const mod = /^modify\s+(column\s+)?/.exec(lc);
  const chg = /^change\s+(column\s+)?/.exec(lc);
  if (mod || chg) {
    const name = clauseColumn(c, 'mysql');
    let rest = c.slice((mod ?? chg)![0].length);
    const first = readIdentifier(rest, 'mysql');
    rest = first?.rest ?? rest;
    if (chg) rest = readIdentifier(rest, 'mysql')?.rest ?? rest;
    const newType = mysqlDefinitionType(rest);
    const current = columnOf(columns, name);
    if (!current) return { cls: 'copy', why: 'changing a column definition copies the table unless only its name or default changes (current type unknown)' };
    const oldType = normaliseType(current.type);
    const newNullable = !/\bnot\s+null\b/i.test(rest);
    if (oldType === newType) {
      if (current.nullable && !newNullable) return { cls: 'rebuild', why: 'NULL -> NOT NULL rebuilds the table in place' };
      if (!current.nullable && newNullable) return { cls: 'rebuild', why: 'NOT NULL -> NULL rebuilds the table in place' };
      return { cls: 'instant', why: chg ? 'same type: a rename or attribute change only' : 'same type: attributes only' };
    }
    const a = varcharLength(oldType);
    const b = varcharLength(newType);
    if (a !== null && b !== null && b >= a && (a * 4 <= 255) === (b * 4 <= 255) && newNullable === current.nullable) {
      return { cls: 'instant', why: 'widening a VARCHAR within the same length-byte size is in place without a rebuild' };
    }
    return { cls: 'copy', why: `changing the type ${oldType} -> ${newType} copies the table and blocks writes` };
  }
  return { cls: 'copy', why: 'unrecognised clause: assumed to copy the table' };
}

/** PostgreSQL: what a clause does to the table. */
export type PgAlterClass =
  | 'instant' // catalog only; ACCESS EXCLUSIVE for a moment
  | 'rewrite' // rewrites the table under ACCESS EXCLUSIVE
  | 'set-not-null' // full scan under ACCESS EXCLUSIVE
  | 'add-constraint' // FK/CHECK validated under a lock while scanning
  | 'add-unique' // builds a unique index under a lock
  | 'validate' // VALIDATE CONSTRAINT: SHARE UPDATE EXCLUSIVE scan
  | 'blocking'; // anything else: as written

const BINARY_COERCIBLE: Array<(from: string, to: string) => boolean> = [
  (f, t) => /^varchar\(\d+\)$/.test(f) && (t === 'text' || t === 'varchar'),
  (f, t) => f === 'varchar' && t === 'text',
  (f, t) => {
    const a = /^varchar\((\d+)\)$/.exec(f);
    const b = /^varchar\((\d+)\)$/.exec(t);
    return Boolean(a && b && Number(b[1]) >= Number(a[1]));
  },
  (f, t) => {
    const a = /^numeric\((\d+),(\d+)\)$/.exec(f);
    const b = /^numeric\((\d+),(\d+)\)$/.exec(t);
    return (Boolean(a) && t === 'numeric') || Boolean(a && b && a[2] === b[2] && Number(b[1]) >= Number(a[1]));
  },
  (f, t) => f === 'cidr' && t === 'inet',
];

function pgTypeOf(rest: string): string {
  const m = /\s+(using|collate)\b/i.exec(rest);
  return normaliseType((m ? rest.slice(0, m.index) : rest).trim());
}

export function classifyPgClause(clause: string, columns?: ColumnDetail[]): Classified<PgAlterClass> {
  const c = clause.trim();
  const lc = c.toLowerCase();
  if (/^validate\s+constraint\b/.test(lc)) return { cls: 'validate', why: 'VALIDATE scans under SHARE UPDATE EXCLUSIVE; reads and writes continue' };
  if (/^add\s+(constraint\s+\S+\s+)?(foreign\s+key|check)\b/.test(lc)) {
    if (/\bnot\s+valid\b/.test(lc)) return { cls: 'instant', why: 'NOT VALID: existing rows are not checked' };
    return { cls: 'add-constraint', why: 'the constraint is checked over every row while writes are blocked' };
  }
  if (/^add\s+(constraint\s+\S+\s+)?(unique|primary\s+key|exclude)\b/.test(lc)) {
    if (/\busing\s+index\b/.test(lc)) return { cls: 'instant', why: 'USING INDEX attaches an index built beforehand' };
    return { cls: 'add-unique', why: 'the unique index is built while writes are blocked' };
  }
  if (/^add\s+(column\s+)?/.test(lc)) {
    const vol = hasVolatileDefault(c);
    if (vol) return { cls: 'rewrite', why: `the volatile default ${vol}() is evaluated for every row: the table is rewritten` };
    if (/\b(bigserial|smallserial|serial|serial4|serial8)\b/.test(lc)) return { cls: 'rewrite', why: 'a serial column fills every row from a sequence: the table is rewritten' };
    if (/\bgenerated\s+always\s+as\s*\(/.test(lc)) return { cls: 'rewrite', why: 'a stored generated column is computed for every row: the table is rewritten' };
    if (/\bgenerated\s+(always|by\s+default)\s+as\s+identity\b/.test(lc)) return { cls: 'rewrite', why: 'an identity column fills every row: the table is rewritten' };
    if (/\b(primary\s+key|unique)\b/.test(lc)) return { cls: 'add-unique', why: 'the column comes with a unique index built under the lock' };
    return { cls: 'instant', why: 'ADD COLUMN with no or a constant default changes the catalog only' };
  }
  if (/^alter\s+(column\s+)?\S+\s+(set\s+data\s+)?type\b/.test(lc)) {
    const name = clauseColumn(c, 'postgres');
    const tm = /\b(?:set\s+data\s+)?type\s+/i.exec(c)!;
    const to = pgTypeOf(c.slice(tm.index + tm[0].length));
    const current = columnOf(columns, name);
    if (/\busing\b/.test(lc)) return { cls: 'rewrite', why: 'a type change with USING rewrites the table' };
    if (current) {
      const from = normaliseType(current.type);
      if (from === to) return { cls: 'instant', why: 'the type does not change' };
      if (BINARY_COERCIBLE.some((f) => f(from, to))) return { cls: 'instant', why: `${from} -> ${to} is binary-coercible: no rewrite` };
      return { cls: 'rewrite', why: `${from} -> ${to} rewrites the table under ACCESS EXCLUSIVE` };
    }
    return { cls: 'rewrite', why: 'a type change rewrites the table unless binary-coercible (current type unknown)' };
  }
  if (/^alter\s+(column\s+)?\S+\s+set\s+not\s+null\b/.test(lc)) return { cls: 'set-not-null', why: 'SET NOT NULL scans every row under ACCESS EXCLUSIVE' };
  if (/^alter\s+(column\s+)?\S+\s+(set\s+default|drop\s+default|drop\s+not\s+null|set\s+statistics|set\s+storage|set\s*\(|reset\s*\(|drop\s+expression|drop\s+identity)/.test(lc)) {
    return { cls: 'instant', why: 'catalog change only' };
  }
  if (/^(drop\s+(column\s+)?|drop\s+constraint\b|rename\b|owner\s+to\b|set\s*\(|reset\s*\(|enable\b|disable\b|set\s+schema\b|alter\s+constraint\b|replica\s+identity\b)/.test(lc)) {
    return { cls: 'instant', why: 'catalog change only' };
  }
  if (/^set\s+(logged|unlogged|tablespace|without\s+oids|access\s+method)\b/.test(lc)) return { cls: 'rewrite', why: 'the table is rewritten' };
  return { cls: 'blocking', why: 'unrecognised clause: run as written' };
}

export function dialectLabel(d: DialectName): string {
  return d === 'mysql' ? 'MySQL/MariaDB' : 'PostgreSQL';
}
