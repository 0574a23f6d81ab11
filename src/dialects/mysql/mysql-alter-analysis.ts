// What an ALTER TABLE clause list says about columns, so the engine can carry data
// across renames and knows which columns start empty. Only the clause list is
// parsed (no `ALTER TABLE t` prefix); the server itself validates the syntax in
// previewShadow(). Top-level commas split clauses; commas inside parentheses,
// strings and backtick-quoted names do not.

import type { AlterAnalysis } from '../dialect.js';

type Token = { text: string; quoted: boolean };

/** Splits at top-level commas (or at `separator`, e.g. ';' to find statements). */
export function splitClauses(alter: string, separator = ','): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (let i = 0; i < alter.length; i++) {
    const ch = alter[i]!;
    if (ch === "'" || ch === '"' || ch === '`') {
      const end = skipQuoted(alter, i);
      cur += alter.slice(i, end);
      i = end - 1;
      continue;
    }
    if (ch === '-' && alter[i + 1] === '-' && /\s/.test(alter[i + 2] ?? ' ')) {
      const nl = alter.indexOf('\n', i);
      i = nl < 0 ? alter.length : nl;
      cur += ' ';
      continue;
    }
    if (ch === '#') {
      const nl = alter.indexOf('\n', i);
      i = nl < 0 ? alter.length : nl;
      cur += ' ';
      continue;
    }
    if (ch === '/' && alter[i + 1] === '*') {
      const end = alter.indexOf('*/', i + 2);
      i = end < 0 ? alter.length : end + 1;
      cur += ' ';
      continue;
    }
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === separator && (depth === 0 || separator === ';')) {
      out.push(cur);
      cur = '';
      continue;
    }
    cur += ch;
  }
  out.push(cur);
  return out.map((c) => c.trim()).filter((c) => c.length > 0);
}

/** Index just past the quoted run starting at `start` (the quote doubles as its own escape; `\` escapes in strings). */
function skipQuoted(s: string, start: number): number {
  const q = s[start]!;
  for (let i = start + 1; i < s.length; i++) {
    const ch = s[i]!;
    if (ch === '\\' && q !== '`') {
      i++;
      continue;
    }
    if (ch === q) {
      if (s[i + 1] === q) {
        i++;
        continue;
      }
      return i + 1;
    }
  }
  return s.length;
}

/** Words, backtick-quoted names and punctuation of one clause. */
export function tokenize(clause: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < clause.length) {
    const ch = clause[i]!;
    if (/\s/.test(ch)) {
      i++;
    } else if (ch === '`') {
      const end = skipQuoted(clause, i);
      tokens.push({ text: clause.slice(i + 1, end - 1).replace(/``/g, '`'), quoted: true });
      i = end;
    } else if (ch === "'" || ch === '"') {
      const end = skipQuoted(clause, i);
      tokens.push({ text: clause.slice(i, end), quoted: false });
      i = end;
    } else if (/[\p{L}\p{N}_$\u0080-\uFFFF]/u.test(ch)) {
      let j = i;
      while (j < clause.length && /[\p{L}\p{N}_$\u0080-\uFFFF]/u.test(clause[j]!)) j++;
      tokens.push({ text: clause.slice(i, j), quoted: false });
      i = j;
    } else {
      tokens.push({ text: ch, quoted: false });
      i++;
    }
  }
  return tokens;
}

function kw(t: Token | undefined, ...words: string[]): boolean {
  return Boolean(t && !t.quoted && words.includes(t.text.toUpperCase()));
}

/** Skips `IF EXISTS` / `IF NOT EXISTS` at position i. */
function skipIf(tokens: Token[], i: number): number {
  if (kw(tokens[i], 'IF')) {
    i++;
    if (kw(tokens[i], 'NOT')) i++;
    if (kw(tokens[i], 'EXISTS')) i++;
  }
  return i;
}

const NOT_A_COLUMN_AFTER_ADD = ['INDEX', 'KEY', 'UNIQUE', 'PRIMARY', 'FULLTEXT', 'SPATIAL', 'CONSTRAINT', 'FOREIGN', 'CHECK', 'PARTITION', 'PERIOD', 'SYSTEM', 'VECTOR'];
const NOT_A_COLUMN_AFTER_DROP = ['INDEX', 'KEY', 'PRIMARY', 'FOREIGN', 'CONSTRAINT', 'CHECK', 'PARTITION', 'PERIOD', 'SYSTEM', 'DEFAULT'];

export function analyzeAlter(alter: string): AlterAnalysis {
  const renamedColumns = new Map<string, string>();
  const droppedColumns = new Set<string>();
  const addedColumns = new Set<string>();
  let renamesTable = false;
  const text = alter.trim().replace(/;\s*$/, '');

  for (const clause of splitClauses(text)) {
    const t = tokenize(clause);
    if (t.length === 0) continue;
    const head = t[0]!;
    if (kw(head, 'CHANGE')) {
      let i = 1;
      if (kw(t[i], 'COLUMN')) i++;
      i = skipIf(t, i);
      const from = t[i]?.text;
      const to = t[i + 1]?.text;
      if (from !== undefined && to !== undefined && from.toLowerCase() !== to.toLowerCase()) renamedColumns.set(from, to);
    } else if (kw(head, 'RENAME')) {
      if (kw(t[1], 'COLUMN')) {
        let i = skipIf(t, 2);
        const from = t[i]?.text;
        if (kw(t[i + 1], 'TO')) i++;
        const to = t[i + 1]?.text;
        if (from !== undefined && to !== undefined && from.toLowerCase() !== to.toLowerCase()) renamedColumns.set(from, to);
      } else if (kw(t[1], 'INDEX', 'KEY')) {
        // RENAME INDEX a TO b: not a table rename.
      } else {
        // RENAME [TO | AS] new_name, and RENAME TABLE ... (not valid inside ALTER, but refused either way)
        renamesTable = true;
      }
    } else if (kw(head, 'DROP')) {
      let i = 1;
      if (kw(t[i], 'COLUMN')) i++;
      else if (kw(t[i], ...NOT_A_COLUMN_AFTER_DROP)) continue;
      i = skipIf(t, i);
      const name = t[i]?.text;
      if (name !== undefined) droppedColumns.add(name);
    } else if (kw(head, 'ADD')) {
      let i = 1;
      if (kw(t[i], 'COLUMN')) i++;
      else if (kw(t[i], ...NOT_A_COLUMN_AFTER_ADD)) continue;
      i = skipIf(t, i);
      if (t[i]?.text === '(' && !t[i]!.quoted) {
        // ADD [COLUMN] (a INT, b INT): the first name of every inner definition.
        const close = clause.lastIndexOf(')');
        const inner = clause.slice(clause.indexOf('(') + 1, close < 0 ? undefined : close);
        for (const def of splitClauses(inner)) {
          const dt = tokenize(def);
          if (dt[0] && !kw(dt[0], ...NOT_A_COLUMN_AFTER_ADD)) addedColumns.add(dt[0].text);
        }
      } else {
        const name = t[i]?.text;
        if (name !== undefined) addedColumns.add(name);
      }
    }
  }
  const statements = splitClauses(text, ';');
  const maintenance = partitionMaintenance(statements[0] ?? '');
  return {
    renamedColumns,
    droppedColumns,
    addedColumns,
    renamesTable,
    setsAutoIncrement: setsAutoIncrement(text),
    ...(foreignKeyClause(statements[0] ?? '') !== null ? { foreignKeyClause: foreignKeyClause(statements[0] ?? '')! } : {}),
    ...(maintenance !== null ? { partitionMaintenance: maintenance } : {}),
    ...(statements.length > 1 ? { secondStatement: statements[1]! } : {}),
  };
}

/** The clause list sets the table option AUTO_INCREMENT (`AUTO_INCREMENT = 7`), not a column's attribute. */
export function setsAutoIncrement(alter: string): boolean {
  return splitClauses(alter.trim().replace(/;\s*$/, '')).some((clause) => {
    const t = tokenize(clause);
    return t.some((tok, i) => kw(tok, 'AUTO_INCREMENT') && (t[i + 1]?.text === '=' ? /^\d+$/.test(t[i + 2]?.text ?? '') : /^\d+$/.test(t[i + 1]?.text ?? '')));
  });
}

/** The first clause that adds or drops a foreign key (`ADD CONSTRAINT fk FOREIGN KEY ...`), whitespace folded; null when there is none. */
export function foreignKeyClause(alter: string): string | null {
  for (const clause of splitClauses(alter.trim().replace(/;\s*$/, ''))) {
    const t = tokenize(clause);
    if (t.some((tok, i) => kw(tok, 'FOREIGN') && kw(t[i + 1], 'KEY'))) {
      const flat = clause.replace(/\s+/g, ' ');
      return flat.length > 80 ? `${flat.slice(0, 80)}…` : flat;
    }
  }
  return null;
}

// Partition operations on the table's existing partitions, not a new definition. The
// grammar puts them after the other options without a comma, so the whole clause is searched.
const MAINTENANCE_VERBS = ['ADD', 'DROP', 'TRUNCATE', 'COALESCE', 'REORGANIZE', 'EXCHANGE', 'DISCARD', 'IMPORT', 'ANALYZE', 'CHECK', 'OPTIMIZE', 'REBUILD', 'REPAIR', 'CONVERT'];

/** The first partition-maintenance clause (`DROP PARTITION p0`), whitespace folded; null when there is none. */
export function partitionMaintenance(alter: string): string | null {
  for (const clause of splitClauses(alter.trim().replace(/;\s*$/, ''))) {
    const t = tokenize(clause);
    for (let i = 0; i + 1 < t.length; i++) {
      const found =
        (kw(t[i], ...MAINTENANCE_VERBS) && kw(t[i + 1], 'PARTITION')) ||
        // MariaDB's CONVERT TABLE t TO PARTITION p, MySQL 5.7's UPGRADE PARTITIONING.
        (kw(t[i], 'CONVERT') && kw(t[i + 1], 'TABLE')) ||
        (kw(t[i], 'UPGRADE') && kw(t[i + 1], 'PARTITIONING'));
      if (found) {
        // From the verb on: options before it without a comma are not what is refused.
        const flat = clause.replace(/\s+/g, ' ');
        const at = flat.search(new RegExp(`\\b${t[i]!.text}\\s+${t[i + 1]!.text}\\b`, 'i'));
        const from = at < 0 ? flat : flat.slice(at);
        return from.length > 80 ? `${from.slice(0, 80)}…` : from;
      }
    }
  }
  return null;
}

/** The ALTER gives the table partitions (`PARTITION BY`), which a temporary table cannot have. */
export function partitionsTable(alter: string): boolean {
  return splitClauses(alter.trim().replace(/;\s*$/, '')).some((clause) => {
    const t = tokenize(clause);
    return t.some((tok, i) => kw(tok, 'PARTITION') && kw(t[i + 1], 'BY'));
  });
}
