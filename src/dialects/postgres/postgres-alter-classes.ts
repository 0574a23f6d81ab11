// What one ALTER TABLE clause costs on PostgreSQL (11+), from the text and
// (when known) the column's current type: the planner half decides on it.

import type { ColumnDetail } from '../../migrations/migration-store.js';
import { columnOf, type Classified } from '../../migrations/alter-classes.js';
import { clauseColumn, hasVolatileDefault, normaliseType } from '../../migrations/sql-analysis.js';

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
