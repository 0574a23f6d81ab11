// What a PostgreSQL ALTER TABLE clause list says about columns. A small tokenizer,
// not a parser: it splits clauses at top-level commas (not inside parentheses,
// strings, dollar quotes, quoted identifiers or comments) and reads the first words.

import type { AlterAnalysis } from '../dialect.js';
import { UsageError } from '../../util/errors.js';

interface Token {
  /** Keyword/identifier text: unquoted folded to lower case, quoted as written. */
  text: string;
  quoted: boolean;
  /** Punctuation or a literal, not a word. */
  other: boolean;
}

/** Splits SQL text at top-level commas (or at `separator`, e.g. ';' to find statements). */
export function splitTopLevel(sql: string, separator = ','): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  let i = 0;
  const n = sql.length;
  while (i < n) {
    const c = sql[i]!;
    if (c === "'") {
      // E'..' escapes: a backslash escapes the next char only when the prefix is E.
      const escapes = i > 0 && /[eE]/.test(sql[i - 1]!) && (i < 2 || !/[A-Za-z0-9_]/.test(sql[i - 2]!));
      i++;
      while (i < n) {
        if (escapes && sql[i] === '\\') { i += 2; continue; }
        if (sql[i] === "'") {
          if (sql[i + 1] === "'") { i += 2; continue; }
          break;
        }
        i++;
      }
      i++;
      continue;
    }
    if (c === '"') {
      i++;
      while (i < n) {
        if (sql[i] === '"') {
          if (sql[i + 1] === '"') { i += 2; continue; }
          break;
        }
        i++;
      }
      i++;
      continue;
    }
    if (c === '$') {
      const m = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(sql.slice(i));
      if (m && (i === 0 || !/[A-Za-z0-9_]/.test(sql[i - 1]!))) {
        const tag = m[0];
        const end = sql.indexOf(tag, i + tag.length);
        i = end < 0 ? n : end + tag.length;
        continue;
      }
    }
    if (c === '-' && sql[i + 1] === '-') {
      const end = sql.indexOf('\n', i);
      i = end < 0 ? n : end + 1;
      continue;
    }
    if (c === '/' && sql[i + 1] === '*') {
      let d = 1;
      i += 2;
      while (i < n && d > 0) {
        if (sql[i] === '/' && sql[i + 1] === '*') { d++; i += 2; continue; }
        if (sql[i] === '*' && sql[i + 1] === '/') { d--; i += 2; continue; }
        i++;
      }
      continue;
    }
    if (c === '(' || c === '[') depth++;
    else if (c === ')' || c === ']') depth--;
    else if (c === separator && (depth === 0 || separator === ';')) {
      parts.push(sql.slice(start, i));
      start = i + 1;
    }
    i++;
  }
  parts.push(sql.slice(start));
  return parts.map((p) => p.trim()).filter((p) => p.length > 0);
}

/** The first words of a clause (enough to classify it). */
function words(clause: string, max = 8): Token[] {
  const out: Token[] = [];
  let i = 0;
  const s = clause;
  while (i < s.length && out.length < max) {
    const c = s[i]!;
    if (/\s/.test(c)) { i++; continue; }
    if (c === '-' && s[i + 1] === '-') {
      const e = s.indexOf('\n', i);
      i = e < 0 ? s.length : e + 1;
      continue;
    }
    if (c === '/' && s[i + 1] === '*') {
      const e = s.indexOf('*/', i + 2);
      i = e < 0 ? s.length : e + 2;
      continue;
    }
    if (c === '"') {
      let t = '';
      i++;
      while (i < s.length) {
        if (s[i] === '"') {
          if (s[i + 1] === '"') { t += '"'; i += 2; continue; }
          break;
        }
        t += s[i++];
      }
      i++;
      out.push({ text: t, quoted: true, other: false });
      continue;
    }
    const m = /^[\p{L}_][\p{L}\p{N}_$]*/u.exec(s.slice(i));
    if (m) {
      out.push({ text: m[0].toLowerCase(), quoted: false, other: false });
      i += m[0].length;
      continue;
    }
    out.push({ text: c, quoted: false, other: true });
    i++;
  }
  return out;
}

const isKw = (t: Token | undefined, ...kw: string[]) => !!t && !t.quoted && !t.other && kw.includes(t.text);

/** Removes a leading `ALTER TABLE [IF EXISTS] [ONLY] name [*]` when the user gave a whole statement. */
export function alterClauses(alter: string): string {
  let s = alter.trim().replace(/;\s*$/, '');
  const m = /^alter\s+table\s+(?:if\s+exists\s+)?(?:only\s+)?/i.exec(s);
  if (!m) return s;
  s = s.slice(m[0].length);
  // Skip the (possibly qualified, possibly quoted) table name.
  let i = 0;
  for (;;) {
    if (s[i] === '"') {
      i++;
      while (i < s.length && !(s[i] === '"' && s[i + 1] !== '"')) i += s[i] === '"' ? 2 : 1;
      i++;
    } else {
      while (i < s.length && /[\p{L}\p{N}_$]/u.test(s[i]!)) i++;
    }
    if (s[i] === '.') { i++; continue; }
    break;
  }
  return s.slice(i).replace(/^\s*\*/, '').trim();
}

export function analyzeAlter(alter: string): AlterAnalysis {
  const result: AlterAnalysis = {
    renamedColumns: new Map(),
    droppedColumns: new Set(),
    addedColumns: new Set(),
    renamesTable: false,
  };
  const statements = splitTopLevel(alterClauses(alter), ';');
  if (statements.length > 1) result.secondStatement = statements[1]!;
  const clauses = splitTopLevel(alterClauses(alter));
  if (clauses.length === 0) throw new UsageError('the ALTER is empty: give the clauses, e.g. "ADD COLUMN note text"');
  const NON_COLUMN_ADD = ['constraint', 'primary', 'unique', 'check', 'foreign', 'exclude'];
  for (const clause of clauses) {
    const w = words(clause);
    if (isKw(w[0], 'rename')) {
      if (isKw(w[1], 'to')) { result.renamesTable = true; continue; }
      if (isKw(w[1], 'constraint')) continue;
      const i = isKw(w[1], 'column') ? 2 : 1;
      if (w[i] && !w[i]!.other && isKw(w[i + 1], 'to') && w[i + 2] && !w[i + 2]!.other) {
        result.renamedColumns.set(w[i]!.text, w[i + 2]!.text);
      }
      continue;
    }
    if (isKw(w[0], 'set') && isKw(w[1], 'schema')) { result.renamesTable = true; continue; }
    if (isKw(w[0], 'drop')) {
      if (isKw(w[1], 'constraint')) continue;
      let i = isKw(w[1], 'column') ? 2 : 1;
      if (isKw(w[i], 'if') && isKw(w[i + 1], 'exists')) i += 2;
      if (w[i] && !w[i]!.other) result.droppedColumns.add(w[i]!.text);
      continue;
    }
    if (isKw(w[0], 'add')) {
      if (isKw(w[1], ...NON_COLUMN_ADD)) continue;
      let i = isKw(w[1], 'column') ? 2 : 1;
      if (isKw(w[i], 'if') && isKw(w[i + 1], 'not') && isKw(w[i + 2], 'exists')) i += 3;
      if (w[i] && !w[i]!.other) result.addedColumns.add(w[i]!.text);
      continue;
    }
  }
  return result;
}

/**
 * The ALTER as statements for `target`. PostgreSQL accepts RENAME only on its own, so
 * each RENAME clause becomes its own statement; other clauses stay grouped, in order.
 */
export function alterStatements(target: string, alter: string): string[] {
  const out: string[] = [];
  let group: string[] = [];
  const flush = () => {
    if (group.length) out.push(`ALTER TABLE ${target} ${group.join(', ')}`);
    group = [];
  };
  for (const clause of splitTopLevel(alterClauses(alter))) {
    if (isKw(words(clause, 1)[0], 'rename')) {
      flush();
      out.push(`ALTER TABLE ${target} ${clause}`);
    } else group.push(clause);
  }
  flush();
  return out;
}

/**
 * `ALTER COLUMN c TYPE t USING expr` clauses whose expression is more than a cast of
 * the column itself. The copy and the applier convert with casts, so any other USING
 * expression would silently give different data: such ALTERs are refused.
 */
export function unsupportedUsing(alter: string): Array<{ column: string; using: string }> {
  const out: Array<{ column: string; using: string }> = [];
  for (const clause of splitTopLevel(alterClauses(alter))) {
    const w = words(clause, 6);
    if (!isKw(w[0], 'alter')) continue;
    const ci = isKw(w[1], 'column') ? 2 : 1;
    const col = w[ci];
    if (!col || col.other) continue;
    const isType = isKw(w[ci + 1], 'type') || (isKw(w[ci + 1], 'set') && isKw(w[ci + 2], 'data') && isKw(w[ci + 3], 'type'));
    if (!isType) continue;
    const m = /\busing\b([\s\S]*)$/i.exec(clause);
    if (!m) continue;
    const expr = m[1]!.trim().replace(/\s+/g, ' ');
    const name = col.quoted ? `"${col.text.replace(/"/g, '""')}"` : col.text;
    const esc = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const plain = new RegExp(`^\\(*\\s*${esc}\\s*\\)*(\\s*::\\s*[^()]+(\\([0-9, ]*\\))?(\\[\\])?)?\\s*\\)*$`, col.quoted ? '' : 'i');
    const cast = new RegExp(`^cast\\s*\\(\\s*${esc}\\s+as\\s+[^()]+(\\([0-9, ]*\\))?\\s*\\)$`, col.quoted ? '' : 'i');
    if (plain.test(expr) || cast.test(expr)) continue;
    out.push({ column: col.text, using: expr });
  }
  return out;
}
