// Splits a SQL script into statements the way the dialect's own client would:
// a `;` inside a string, a quoted identifier, a comment or a PostgreSQL
// dollar-quoted body does not end a statement. MySQL scripts may change the
// delimiter with a `DELIMITER xx` line (as the mysql client does) so trigger
// and procedure bodies with `;` inside can be written.

import type { DialectName } from '../dialects/dialect.js';
import type { LexicalRules } from '../dialects/dialect-syntax.js';
import { syntaxOf } from '../dialects/registry.js';
import { UsageError } from '../util/errors.js';

export interface SqlStatement {
  /** The statement without its delimiter, trimmed. Comments inside it are kept. */
  text: string;
  /** 1-based line of the statement's first character in the script (plus the offset given). */
  line: number;
}

/** The statement with its comments removed and whitespace collapsed: what rules and the planner match on. */
export function stripComments(sql: string, dialect: DialectName): string {
  return strip(sql, syntaxOf(dialect).lexical);
}

function strip(sql: string, lex: LexicalRules): string {
  let out = '';
  let i = 0;
  const n = sql.length;
  while (i < n) {
    const c = sql[i]!;
    const next = sql[i + 1];
    if (c === '-' && next === '-') {
      while (i < n && sql[i] !== '\n') i++;
      out += ' ';
      continue;
    }
    if (c === '#' && lex.hashComments) {
      while (i < n && sql[i] !== '\n') i++;
      out += ' ';
      continue;
    }
    if (c === '/' && next === '*') {
      const end = skipBlockComment(sql, i, lex);
      out += ' ';
      i = end;
      continue;
    }
    const quoted = quotedEnd(sql, i, lex);
    if (quoted > i) {
      out += sql.slice(i, quoted);
      i = quoted;
      continue;
    }
    out += c;
    i++;
  }
  return out.replace(/\s+/g, ' ').trim();
}

function skipBlockComment(sql: string, start: number, lex: LexicalRules): number {
  let depth = 0;
  let i = start;
  while (i < sql.length) {
    if (sql[i] === '/' && sql[i + 1] === '*') {
      depth++;
      i += 2;
      if (!lex.nestedBlockComments && depth > 1) depth = 1;
      continue;
    }
    if (sql[i] === '*' && sql[i + 1] === '/') {
      depth--;
      i += 2;
      if (depth === 0) return i;
      continue;
    }
    i++;
  }
  throw new UsageError(`unterminated /* comment starting at character ${start}; close it with */`);
}

const DOLLAR_TAG = /^\$([A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?\$/;

/**
 * If a quoted token (string, quoted identifier, dollar-quoted body) starts at
 * `i`, the index just past its end; otherwise `i`.
 */
function quotedEnd(sql: string, i: number, lex: LexicalRules): number {
  const c = sql[i]!;
  if (lex.dollarQuotes && c === '$') {
    // $1 is a parameter, not a dollar quote: a tag never starts with a digit.
    const m = DOLLAR_TAG.exec(sql.slice(i, i + 80));
    if (m && !(i > 0 && /[A-Za-z0-9_]/.test(sql[i - 1]!))) {
      const tag = m[0];
      const end = sql.indexOf(tag, i + tag.length);
      if (end < 0) throw new UsageError(`unterminated dollar-quoted string ${tag} at character ${i}; close it with ${tag}`);
      return end + tag.length;
    }
    return i;
  }
  let quote: string | null = null;
  let backslash = false;
  if (c === "'") {
    quote = "'";
    backslash = lex.backslashEscapes === 'always' || (i > 0 && /[eE]/.test(sql[i - 1]!) && !(i > 1 && /[A-Za-z0-9_]/.test(sql[i - 2]!)));
  } else if (c === '"') {
    quote = '"';
    // A double-quoted identifier takes no escapes; a double-quoted string takes the string's.
    backslash = lex.doubleQuotedStrings && lex.backslashEscapes === 'always';
  } else if (c === '`' && lex.backtickIdentifiers) {
    quote = '`';
  }
  if (!quote) return i;
  let j = i + 1;
  while (j < sql.length) {
    const d = sql[j]!;
    if (backslash && d === '\\') {
      j += 2;
      continue;
    }
    if (d === quote) {
      if (sql[j + 1] === quote) {
        j += 2;
        continue;
      }
      return j + 1;
    }
    j++;
  }
  throw new UsageError(`unterminated ${quote === '`' ? 'backtick identifier' : quote === '"' ? 'double-quoted token' : 'string'} starting at character ${i}; close the quote`);
}

function lineAt(sql: string, index: number): number {
  let line = 1;
  for (let k = 0; k < index; k++) if (sql.charCodeAt(k) === 10) line++;
  return line;
}

/** True when the text holds something other than whitespace and comments. */
function hasCode(text: string, lex: LexicalRules): boolean {
  return strip(text, lex).length > 0;
}

function firstCodeIndex(text: string, lex: LexicalRules): number {
  let i = 0;
  while (i < text.length) {
    if (/\s/.test(text[i]!)) {
      i++;
      continue;
    }
    if (text[i] === '-' && text[i + 1] === '-') {
      while (i < text.length && text[i] !== '\n') i++;
      continue;
    }
    if (text[i] === '#' && lex.hashComments) {
      while (i < text.length && text[i] !== '\n') i++;
      continue;
    }
    if (text[i] === '/' && text[i + 1] === '*') {
      i = skipBlockComment(text, i, lex);
      continue;
    }
    return i;
  }
  return i;
}

/**
 * Splits `sql` into statements. `lineOffset` is added to the line numbers
 * (a phase that starts on line 10 of its file passes 9).
 */
export function splitStatements(sql: string, dialect: DialectName, lineOffset = 0): SqlStatement[] {
  const lex = syntaxOf(dialect).lexical;
  const out: SqlStatement[] = [];
  let delimiter = ';';
  let start = 0;
  let i = 0;
  const n = sql.length;
  const push = (end: number) => {
    const raw = sql.slice(start, end);
    if (hasCode(raw, lex)) {
      const lead = firstCodeIndex(raw, lex);
      out.push({ text: raw.slice(lead).trim(), line: lineAt(sql, start + lead) + lineOffset });
    }
  };
  while (i < n) {
    const c = sql[i]!;
    // DELIMITER directive (the mysql client's syntax), only at the start of a line.
    if (lex.delimiterDirective && (i === 0 || sql[i - 1] === '\n') && /^[ \t]*delimiter[ \t]+\S/i.test(sql.slice(i, i + 40))) {
      const eol = sql.indexOf('\n', i);
      const lineText = sql.slice(i, eol < 0 ? n : eol);
      const pending = sql.slice(start, i);
      if (hasCode(pending, lex)) {
        throw new UsageError(`DELIMITER on line ${lineAt(sql, i) + lineOffset} follows a statement that was not ended with ${JSON.stringify(delimiter)}; end it first`);
      }
      delimiter = lineText.trim().split(/\s+/)[1]!;
      i = eol < 0 ? n : eol + 1;
      start = i;
      continue;
    }
    if (c === '-' && sql[i + 1] === '-') {
      while (i < n && sql[i] !== '\n') i++;
      continue;
    }
    if (c === '#' && lex.hashComments) {
      while (i < n && sql[i] !== '\n') i++;
      continue;
    }
    if (c === '/' && sql[i + 1] === '*') {
      i = skipBlockComment(sql, i, lex);
      continue;
    }
    const q = quotedEnd(sql, i, lex);
    if (q > i) {
      i = q;
      continue;
    }
    if (sql.startsWith(delimiter, i)) {
      push(i);
      i += delimiter.length;
      start = i;
      continue;
    }
    i++;
  }
  push(n);
  return out;
}
