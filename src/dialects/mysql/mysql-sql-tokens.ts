// MySQL/MariaDB statement text as tokens, produced on demand (see mysql-statement.ts).
//
// Skipped: whitespace, `/* */`, `# ...` and `-- ...` (MySQL needs a space or control
// character after the dashes; `1--1` is arithmetic). Kept as code: the content of
// versioned comments `/*!NNNNN ... */` and MariaDB's `/*M!NNNNNN ... */`, which the
// server runs. Backtick identifiers are unquoted (`` `a``b` `` is a`b); strings keep
// their quote character, since "x" is an identifier under ANSI_QUOTES. Cursor reads
// them on demand, with the lookahead and name reading the classifier needs.

export type Tok =
  | { t: 'word'; v: string; up: string }
  | { t: 'ident'; v: string }
  | { t: 'str'; v: string; q: "'" | '"' }
  | { t: 'op'; v: string };

const WORD_CHAR = /[A-Za-z0-9_$\u0080-\uffff]/;
const VERSIONED = /^\/\*M?!\d{0,6}/;

function quoted(sql: string, start: number, q: string): { v: string; end: number } {
  let v = '';
  let i = start + 1;
  while (i < sql.length) {
    const ch = sql[i]!;
    if (ch === '\\' && q !== '`' && i + 1 < sql.length) {
      v += sql[i + 1];
      i += 2;
    } else if (ch === q) {
      if (sql[i + 1] === q) {
        v += q;
        i += 2;
      } else return { v, end: i + 1 };
    } else {
      v += ch;
      i++;
    }
  }
  return { v, end: i };
}

export function* tokens(sql: string): Generator<Tok> {
  const n = sql.length;
  let i = 0;
  let versioned = false;
  while (i < n) {
    const ch = sql[i]!;
    const next = sql[i + 1];
    if (ch <= ' ') {
      i++;
    } else if (ch === '#' || (ch === '-' && next === '-' && (i + 2 >= n || sql[i + 2]! <= ' '))) {
      const eol = sql.indexOf('\n', i);
      i = eol < 0 ? n : eol + 1;
    } else if (ch === '/' && next === '*') {
      const v = VERSIONED.exec(sql.slice(i, i + 11));
      if (v) {
        versioned = true;
        i += v[0].length;
      } else {
        const close = sql.indexOf('*/', i + 2);
        i = close < 0 ? n : close + 2;
      }
    } else if (versioned && ch === '*' && next === '/') {
      versioned = false;
      i += 2;
    } else if (ch === '`' || ch === "'" || ch === '"') {
      const { v, end } = quoted(sql, i, ch);
      i = end;
      yield ch === '`' ? { t: 'ident', v } : { t: 'str', v, q: ch };
    } else if (WORD_CHAR.test(ch)) {
      let j = i + 1;
      while (j < n && WORD_CHAR.test(sql[j]!)) j++;
      const v = sql.slice(i, j);
      i = j;
      yield { t: 'word', v, up: v.toUpperCase() };
    } else {
      i++;
      yield { t: 'op', v: ch };
    }
  }
}

/** A name as written: `qualifier` is null when no schema was given. */
export interface Raw {
  qualifier: string | null;
  name: string;
}

export class Cursor {
  private readonly buf: Tok[] = [];
  private readonly src: Iterator<Tok>;
  private done = false;
  i = 0;

  constructor(sql: string) {
    this.src = tokens(sql);
  }

  tok(k = 0): Tok | undefined {
    const want = this.i + k;
    while (!this.done && this.buf.length <= want) {
      const n = this.src.next();
      if (n.done) this.done = true;
      else this.buf.push(n.value);
    }
    return this.buf[want];
  }

  /** The upper-case word at i + k, or '' when that token is not a bare word. */
  up(k = 0): string {
    const t = this.tok(k);
    return t?.t === 'word' ? t.up : '';
  }

  op(v: string, k = 0): boolean {
    const t = this.tok(k);
    return t?.t === 'op' && t.v === v;
  }

  end(): boolean {
    return this.tok() === undefined;
  }

  accept(...words: string[]): boolean {
    for (let k = 0; k < words.length; k++) if (this.up(k) !== words[k]) return false;
    this.i += words.length;
    return true;
  }

  skipWhile(words: Set<string> | string[]): void {
    const set = words instanceof Set ? words : new Set(words);
    while (set.has(this.up())) this.i++;
  }

  /** A token that can stand for a name: bare word, `backticked`, or "double-quoted" (ANSI_QUOTES). */
  nameText(k = 0): string | null {
    const t = this.tok(k);
    if (t?.t === 'word' || t?.t === 'ident') return t.v;
    if (t?.t === 'str' && t.q === '"') return t.v;
    return null;
  }

  /** `name`, `schema.name`, with an optional `.*` (multi-table DELETE lists). */
  name(): Raw | null {
    const first = this.nameText();
    if (first === null) return null;
    this.i++;
    let out: Raw = { qualifier: null, name: first };
    if (this.op('.') && this.nameText(1) !== null) {
      out = { qualifier: first, name: this.nameText(1)! };
      this.i += 2;
    }
    if (this.op('.') && this.op('*', 1)) this.i += 2;
    return out;
  }

  nameList(): Raw[] {
    const out: Raw[] = [];
    for (;;) {
      const n = this.name();
      if (!n) return out;
      out.push(n);
      if (!this.op(',')) return out;
      this.i++;
    }
  }

  /** At `(`: moves past its matching `)`. */
  skipParens(): void {
    let depth = 0;
    do {
      if (this.op('(')) depth++;
      else if (this.op(')')) depth--;
      this.i++;
    } while (depth > 0 && !this.end());
  }

  /** Moves to the first top-level occurrence of `words` in order; false (at the end) when there is none. */
  seek(...words: string[]): boolean {
    while (!this.end()) {
      if (this.op('(')) {
        this.skipParens();
        continue;
      }
      if (words.every((w, k) => this.up(k) === w)) return true;
      this.i++;
    }
    return false;
  }
}
