// The indexes an ALTER creates under a name of its own (`ADD CONSTRAINT items_code_key
// UNIQUE (code)`, a column's `CONSTRAINT c_key PRIMARY KEY`, `EXCLUDE`): an index name
// belongs to the schema, not the table, so created on the shadow under that name it
// would be taken while the job runs, and a shadow left behind kept it (issue 11: the
// next job failed with `relation "items_code_key" already exists`). The shadow gets
// job-unique names instead (`_ss_<tag>_k<n>_<name>`), recorded in the artefact names
// (so a resumed job has them), and the cut-over gives each the name the ALTER asked for.
// Other constraints (CHECK, FOREIGN KEY) are named per table and keep their names.

import { alterClauses, splitTopLevel } from './postgres-alter-analysis.js';
import { artefactName } from './postgres-names.js';
import { quoteIdent } from './postgres-quote.js';
import { ShadowshiftError } from '../../util/errors.js';

interface Word {
  text: string;
  quoted: boolean;
  start: number;
  end: number;
  depth: number;
}

/** The words of one clause with where they are (strings, comments and dollar quotes skipped). */
function scan(clause: string): Word[] {
  const out: Word[] = [];
  let depth = 0;
  let i = 0;
  const n = clause.length;
  while (i < n) {
    const c = clause[i]!;
    if (c === "'") {
      const escapes = i > 0 && /[eE]/.test(clause[i - 1]!) && (i < 2 || !/[A-Za-z0-9_]/.test(clause[i - 2]!));
      for (i++; i < n; i++) {
        if (escapes && clause[i] === '\\') { i++; continue; }
        if (clause[i] === "'") {
          if (clause[i + 1] === "'") { i++; continue; }
          break;
        }
      }
      i++;
      continue;
    }
    if (c === '"') {
      const start = i;
      let text = '';
      for (i++; i < n; i++) {
        if (clause[i] === '"') {
          if (clause[i + 1] === '"') { text += '"'; i++; continue; }
          break;
        }
        text += clause[i];
      }
      i++;
      out.push({ text, quoted: true, start, end: i, depth });
      continue;
    }
    if (c === '$') {
      const m = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(clause.slice(i));
      if (m && (i === 0 || !/[A-Za-z0-9_]/.test(clause[i - 1]!))) {
        const end = clause.indexOf(m[0], i + m[0].length);
        i = end < 0 ? n : end + m[0].length;
        continue;
      }
    }
    if (c === '-' && clause[i + 1] === '-') {
      const end = clause.indexOf('\n', i);
      i = end < 0 ? n : end + 1;
      continue;
    }
    if (c === '/' && clause[i + 1] === '*') {
      const end = clause.indexOf('*/', i + 2);
      i = end < 0 ? n : end + 2;
      continue;
    }
    if (c === '(' || c === '[') depth++;
    else if (c === ')' || c === ']') depth--;
    const m = /^[\p{L}_][\p{L}\p{N}_$]*/u.exec(clause.slice(i));
    if (m) {
      // Unquoted identifiers fold to lower case, as the server stores them.
      out.push({ text: m[0].toLowerCase(), quoted: false, start: i, end: i + m[0].length, depth });
      i += m[0].length;
      continue;
    }
    i++;
  }
  return out;
}

const kw = (w: Word | undefined, ...words: string[]) => !!w && !w.quoted && words.includes(w.text);

/** Each `CONSTRAINT <name> UNIQUE | PRIMARY KEY | EXCLUDE` of the clause (table or column constraint). */
function namedIndexWords(clause: string): Word[] {
  const words = scan(clause);
  const out: Word[] = [];
  for (let i = 0; i + 2 < words.length; i++) {
    const [con, name, kind] = [words[i]!, words[i + 1]!, words[i + 2]!];
    if (con.depth === 0 && kw(con, 'constraint') && name.depth === 0 && kw(kind, 'unique', 'primary', 'exclude')) out.push(name);
  }
  return out;
}

/** The names the ALTER gives the indexes it creates, in the order it creates them. */
export function namedIndexes(alter: string): string[] {
  return splitTopLevel(alterClauses(alter)).flatMap((clause) => namedIndexWords(clause).map((w) => w.text));
}

const EXTRA_KEY = 'indexNames';

/** Job-unique name -> the name the ALTER asked for, to record in `ArtefactNames.extra`; null when it names none. */
export function jobIndexNames(alter: string, tag: string): Record<string, string> | null {
  const asked = namedIndexes(alter);
  if (asked.length === 0) return null;
  return { [EXTRA_KEY]: JSON.stringify(asked.map((name, n) => [artefactName(`k${n + 1}`, tag, name), name])) };
}

/** The recorded renames, job-unique name -> asked name (empty for jobs that recorded none). */
export function indexRenames(extra: Record<string, string>): Map<string, string> {
  const text = extra[EXTRA_KEY];
  return new Map(text ? (JSON.parse(text) as Array<[string, string]>) : []);
}

/** The ALTER clauses with each asked index name replaced by its job-unique name, in the same order. */
export function withJobIndexNames(clauses: string, extra: Record<string, string>): string {
  const jobNames = [...indexRenames(extra).keys()];
  if (jobNames.length === 0) return clauses;
  if (namedIndexes(clauses).length !== jobNames.length) {
    throw new ShadowshiftError(`the job recorded ${jobNames.length} index name(s) for another ALTER than ${clauses}; start the job again`);
  }
  let n = 0;
  return splitTopLevel(clauses)
    .map((clause) => {
      let out = clause;
      // Right to left, so the earlier positions stay valid.
      const names = namedIndexWords(clause);
      const mine = names.map(() => jobNames[n++]!);
      for (let i = names.length - 1; i >= 0; i--) out = out.slice(0, names[i]!.start) + quoteIdent(mine[i]!) + out.slice(names[i]!.end);
      return out;
    })
    .join(', ');
}
