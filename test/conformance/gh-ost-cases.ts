// Reads one case of gh-ost's localtests/ corpus (github/gh-ost) the way its own
// harness (localtests/test.sh) reads it: create.sql, extra_args (gh-ost flags; the
// last --alter wins over the harness's default `engine=innodb`), and the optional
// files that change what is checked. Only the files' meaning is used here; nothing
// of gh-ost is copied into this project.

import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

export interface GhostCase {
  name: string;
  dir: string;
  alter: string;
  /** gh-ost flags besides --alter, as written (for the report: what shadowshift has no counterpart for). */
  otherFlags: string[];
  /** null: the case must succeed; '' : any failure; text: gh-ost's log must contain it. */
  expectFailure: string | null;
  origColumns: string;
  ghostColumns: string;
  orderBy: string;
  /** Global sql_mode for the case (null: leave the server's). */
  sqlMode: string | null;
  ignoreVersions: string | null;
  expectTableStructure: string | null;
  /** Its own script (localtests/<case>/test.sh) replaces the default flow. */
  customScript: boolean;
  hasFile: (name: string) => boolean;
  file: (name: string) => string;
}

/** Splits a flag line as bash would for the simple quoting the corpus uses ('...', "...", bare words). */
export function shellWords(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let inWord = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (ch === "'" || ch === '"') {
      const end = line.indexOf(ch, i + 1);
      cur += line.slice(i + 1, end < 0 ? undefined : end);
      i = end < 0 ? line.length : end;
      inWord = true;
    } else if (/\s/.test(ch)) {
      if (inWord) out.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += ch;
      inWord = true;
    }
  }
  if (inWord) out.push(cur);
  return out;
}

export function parseExtraArgs(text: string): { alter: string; otherFlags: string[] } {
  const words = shellWords(text);
  let alter = 'engine=innodb';
  const otherFlags: string[] = [];
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    if (w === '--alter') alter = words[++i] ?? '';
    else if (w.startsWith('--alter=')) alter = w.slice('--alter='.length);
    else if (w.startsWith('--')) {
      // A separate value (`--default-retries 1`) is rare in the corpus; values are joined with `=`.
      otherFlags.push(w);
    }
  }
  return { alter, otherFlags };
}

export function readCase(localtests: string, name: string): GhostCase {
  const dir = join(localtests, name);
  const hasFile = (f: string) => existsSync(join(dir, f));
  const file = (f: string) => readFileSync(join(dir, f), 'utf8');
  const trimmed = (f: string) => (hasFile(f) ? file(f).trim() : null);
  const { alter, otherFlags } = parseExtraArgs(hasFile('extra_args') ? file('extra_args') : '');
  return {
    name,
    dir,
    alter,
    otherFlags,
    expectFailure: hasFile('expect_failure') ? file('expect_failure').trim() : null,
    origColumns: trimmed('orig_columns') ?? '*',
    ghostColumns: trimmed('ghost_columns') ?? '*',
    orderBy: hasFile('order_by') ? `order by ${file('order_by').trim()}` : '',
    sqlMode: hasFile('sql_mode') ? file('sql_mode').trim() : null,
    ignoreVersions: trimmed('ignore_versions'),
    expectTableStructure: trimmed('expect_table_structure'),
    customScript: hasFile('test.sh'),
    hasFile,
    file,
  };
}

export function listCases(localtests: string): string[] {
  return readdirSync(localtests)
    .filter((n) => statSync(join(localtests, n)).isDirectory())
    .sort();
}

/**
 * The harness's skip rule: `egrep "^<ignore_versions>"` on @@version, then case-blind on
 * @@version_comment (so `^A|b` is "starts with A, or contains b", as egrep reads it).
 */
export function skippedFor(c: GhostCase, version: string, versionComment: string): boolean {
  if (!c.ignoreVersions) return false;
  const re = `^${c.ignoreVersions}`;
  return new RegExp(re).test(version) || new RegExp(re, 'i').test(versionComment);
}
