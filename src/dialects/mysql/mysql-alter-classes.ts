// What one ALTER TABLE clause costs on MySQL/MariaDB (10.4+ / 8.0.29+), from the
// text and (when known) the column's current type: the planner half and the
// mysql-non-instant-alter lint rule decide on it.

import type { ColumnDetail } from '../../migrations/migration-store.js';
import { columnOf, type Classified } from '../../migrations/alter-classes.js';
import { clauseColumn, hasVolatileDefault, normaliseType, readIdentifier } from '../../migrations/sql-analysis.js';

/** instant < inplace (no table rebuild, writes allowed) < rebuild (in place, writes allowed) < copy (blocks writes). */
export type MysqlAlterClass = 'instant' | 'inplace' | 'rebuild' | 'copy';
export const MYSQL_RANK: Record<MysqlAlterClass, number> = { instant: 0, inplace: 1, rebuild: 2, copy: 3 };

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
