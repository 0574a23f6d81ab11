// Just enough SQL reading for the planner and the lint rules: what kind of
// statement this is, which table it touches, and the clauses of an ALTER TABLE.
// Works on text with comments stripped (statement-splitter.stripComments).

import type { DialectName } from '../dialects/dialect.js';
import { syntaxOf } from '../dialects/registry.js';
import { stripComments } from './statement-splitter.js';

export type StatementKind =
  | 'alter-table'
  | 'create-index'
  | 'drop-index'
  | 'create-table'
  | 'drop-table'
  | 'rename-table'
  | 'dml'
  | 'transaction'
  | 'set'
  | 'other';

export interface ParsedStatement {
  kind: StatementKind;
  /** Comment-free, whitespace-collapsed text. */
  text: string;
  /** Table touched (as written, unquoted; `schema.table` when qualified), when known. */
  table: string | null;
  /** ALTER TABLE: the clauses after the table name, split at top-level commas. */
  clauses: string[];
  /** ALTER TABLE: the text after the table name. */
  alterBody: string;
  /** DML: INSERT/UPDATE/DELETE/... keyword, lower case. */
  verb: string;
}

/** Reads one identifier (quoted or bare) at the start of `s`; returns it unquoted and the rest. */
export function readIdentifier(s: string, dialect: DialectName): { name: string; rest: string } | null {
  const t = s.replace(/^\s+/, '');
  const q = t[0];
  if (q === '`' || q === '"') {
    let j = 1;
    let out = '';
    while (j < t.length) {
      if (t[j] === q) {
        if (t[j + 1] === q) {
          out += q;
          j += 2;
          continue;
        }
        return { name: out, rest: t.slice(j + 1) };
      }
      out += t[j];
      j++;
    }
    return null;
  }
  const m = /^[A-Za-z_\u0080-\uffff][A-Za-z0-9_$\u0080-\uffff]*/.exec(t);
  if (!m) return null;
  return { name: syntaxOf(dialect).foldsUnquotedToLower ? m[0].toLowerCase() : m[0], rest: t.slice(m[0].length) };
}

/** Reads `name` or `schema.name`. */
export function readQualifiedName(s: string, dialect: DialectName): { name: string; rest: string } | null {
  const first = readIdentifier(s, dialect);
  if (!first) return null;
  const afterDot = /^\s*\.\s*/.exec(first.rest);
  if (afterDot) {
    const second = readIdentifier(first.rest.slice(afterDot[0].length), dialect);
    if (second) return { name: `${first.name}.${second.name}`, rest: second.rest };
  }
  return first;
}

/** Splits on commas outside parentheses and quotes. */
export function splitTopLevel(s: string, separator = ','): string[] {
  const out: string[] = [];
  let depth = 0;
  let quote: string | null = null;
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (quote) {
      if (c === quote) {
        if (s[i + 1] === quote) i++;
        else quote = null;
      } else if (c === '\\' && quote === "'") i++;
      continue;
    }
    if (c === "'" || c === '"' || c === '`') quote = c;
    else if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === separator && depth === 0) {
      out.push(s.slice(start, i).trim());
      start = i + 1;
    }
  }
  const last = s.slice(start).trim();
  if (last) out.push(last);
  return out;
}

export function parseStatement(sql: string, dialect: DialectName): ParsedStatement {
  const text = stripComments(sql, dialect);
  const base: ParsedStatement = { kind: 'other', text, table: null, clauses: [], alterBody: '', verb: '' };
  let m: RegExpExecArray | null;

  if ((m = /^alter\s+(?:online\s+|ignore\s+)*table\s+(?:if\s+exists\s+)?(?:only\s+)?/i.exec(text))) {
    const q = readQualifiedName(text.slice(m[0].length), dialect);
    if (!q) return base;
    const body = q.rest.replace(/^\s*\*/, '').trim();
    return { ...base, kind: 'alter-table', table: q.name, alterBody: body, clauses: splitTopLevel(body) };
  }
  if ((m = /^create\s+(?:unique\s+|fulltext\s+|spatial\s+)?index\s+(?:concurrently\s+)?(?:if\s+not\s+exists\s+)?/i.exec(text))) {
    const on = /\bon\s+(?:only\s+)?/i.exec(text.slice(m[0].length));
    let table: string | null = null;
    if (on) table = readQualifiedName(text.slice(m[0].length + on.index + on[0].length), dialect)?.name ?? null;
    return { ...base, kind: 'create-index', table };
  }
  if (/^drop\s+index\b/i.test(text)) {
    const on = /\bon\s+/i.exec(text);
    const table = on ? (readQualifiedName(text.slice(on.index + on[0].length), dialect)?.name ?? null) : null;
    return { ...base, kind: 'drop-index', table };
  }
  if ((m = /^create\s+(?:(?:global\s+|local\s+)?(?:temporary|temp|unlogged)\s+)?table\s+(?:if\s+not\s+exists\s+)?/i.exec(text))) {
    return { ...base, kind: 'create-table', table: readQualifiedName(text.slice(m[0].length), dialect)?.name ?? null };
  }
  if ((m = /^drop\s+table\s+(?:if\s+exists\s+)?/i.exec(text))) {
    return { ...base, kind: 'drop-table', table: readQualifiedName(text.slice(m[0].length), dialect)?.name ?? null };
  }
  if ((m = /^rename\s+table\s+/i.exec(text))) {
    return { ...base, kind: 'rename-table', table: readQualifiedName(text.slice(m[0].length), dialect)?.name ?? null };
  }
  if ((m = /^(update)\s+(?:low_priority\s+|ignore\s+|only\s+)*/i.exec(text))) {
    return { ...base, kind: 'dml', verb: 'update', table: readQualifiedName(text.slice(m[0].length), dialect)?.name ?? null };
  }
  if ((m = /^(delete)\s+(?:low_priority\s+|quick\s+|ignore\s+)*from\s+(?:only\s+)?/i.exec(text))) {
    return { ...base, kind: 'dml', verb: 'delete', table: readQualifiedName(text.slice(m[0].length), dialect)?.name ?? null };
  }
  if ((m = /^(insert|replace)\s+(?:low_priority\s+|delayed\s+|high_priority\s+|ignore\s+)*(?:into\s+)?/i.exec(text))) {
    return { ...base, kind: 'dml', verb: m[1]!.toLowerCase(), table: readQualifiedName(text.slice(m[0].length), dialect)?.name ?? null };
  }
  if (/^(with\b[\s\S]*\b(update|insert|delete)\b|merge\b|copy\b|truncate\b)/i.test(text)) {
    return { ...base, kind: 'dml', verb: text.split(/\s+/)[0]!.toLowerCase() };
  }
  if (/^(begin|start\s+transaction|commit|rollback|end)\b\s*(work|transaction)?\s*$/i.test(text)) {
    return { ...base, kind: 'transaction', verb: text.split(/\s+/)[0]!.toLowerCase() };
  }
  if (/^(set|reset)\b/i.test(text)) return { ...base, kind: 'set' };
  return base;
}

/** The column a clause is about, for `ALTER COLUMN x ...`, `MODIFY x`, `CHANGE x y`, `DROP COLUMN x`, `RENAME COLUMN x`. */
export function clauseColumn(clause: string, dialect: DialectName): string | null {
  const m = /^(?:alter|modify|change|drop|rename)\s+(?:column\s+)?(?:if\s+exists\s+)?/i.exec(clause);
  if (!m) return null;
  return readIdentifier(clause.slice(m[0].length), dialect)?.name ?? null;
}

/** Functions whose default makes PostgreSQL rewrite the table (and MySQL expression defaults). */
export const VOLATILE_FUNCTIONS = ['random', 'gen_random_uuid', 'uuid_generate_v1', 'uuid_generate_v1mc', 'uuid_generate_v4', 'clock_timestamp', 'timeofday', 'nextval', 'uuid', 'uuid_short', 'rand', 'sysdate'];

export function hasVolatileDefault(clause: string): string | null {
  const d = /\bdefault\s+([\s\S]*)$/i.exec(clause);
  if (!d) return null;
  for (const fn of VOLATILE_FUNCTIONS) {
    if (new RegExp(`\\b${fn}\\s*\\(`, 'i').test(d[1]!)) return fn;
  }
  return null;
}

/** Normalises a type for comparison: lower case, int display widths dropped, spaces collapsed. */
export function normaliseType(t: string): string {
  return t
    .toLowerCase()
    .replace(/\s+/g, ' ')
    .replace(/\b(tinyint|smallint|mediumint|int|integer|bigint)\s*\(\d+\)/g, '$1')
    .replace(/\binteger\b/g, 'int')
    .replace(/\bcharacter varying\b/g, 'varchar')
    .replace(/\bint4\b/g, 'int')
    .replace(/\bint8\b/g, 'bigint')
    .replace(/\bint2\b/g, 'smallint')
    .replace(/\s*\(\s*/g, '(')
    .replace(/\s*,\s*/g, ',')
    .replace(/\s*\)/g, ')')
    .trim();
}
