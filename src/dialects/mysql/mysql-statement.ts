// What a statement from the binlog does, and to which tables: the change stream
// sees DDL, TRUNCATE and (from sessions logging STATEMENT/MIXED) DML only as query
// text, and must tell a write to the migrated table from a statement that merely
// mentions its name (`ALTER EVENT t`, `... REFERENCES t`, a column called t).
//
// Pure functions. Tokens are read lazily: a multi-megabyte INSERT from a statement-
// logging session costs a few tokens, not a scan of its VALUES. Comments are skipped
// except MySQL's versioned ones (`/*!40005 TEMPORARY */`, MariaDB's `/*M!100100 */`),
// whose content the server executes and so counts as code. Names are not folded:
// callers compare case-insensitively when the server does.
//
// Known blind spots, all of them conservative or unrecoverable from text alone:
// a view or a trigger on another table that writes the table is not seen; an
// UPDATE counts every table of its join as written; a string ending in `\` under
// NO_BACKSLASH_ESCAPES is misread.

import { Cursor, type Raw } from './mysql-sql-tokens.js';

export type StatementKind = 'transaction' | 'dml' | 'ddl' | 'other';

export interface TableName {
  /** null only when the statement names no schema and the session had none. */
  schema: string | null;
  name: string;
}

export interface Statement {
  kind: StatementKind;
  /** Upper-case leading keywords: 'COMMIT', 'INSERT', 'UPDATE', 'ALTER TABLE', 'TRUNCATE', 'ALTER EVENT', ... */
  verb: string;
  /** Tables whose rows the statement writes (dml) or whose definition or existence it changes (ddl). */
  tables: TableName[];
  /** RENAME TABLE pairs, in order. */
  renames: Array<{ from: TableName; to: TableName }>;
}

interface Ref {
  table: Raw;
  alias: string | null;
}

/** Words that end a table factor: never an alias. */
const RESERVED = new Set([
  'AS', 'SET', 'WHERE', 'ON', 'USING', 'JOIN', 'STRAIGHT_JOIN', 'INNER', 'CROSS', 'LEFT', 'RIGHT', 'NATURAL', 'FULL', 'OUTER',
  'ORDER', 'GROUP', 'HAVING', 'LIMIT', 'USE', 'IGNORE', 'FORCE', 'PARTITION', 'FOR', 'RETURNING', 'UNION', 'EXCEPT',
  'INTERSECT', 'WINDOW', 'VALUES', 'VALUE', 'SELECT', 'FROM', 'INTO', 'LOCK', 'WITH', 'TO', 'WAIT', 'NOWAIT',
]);
const JOIN_WORDS = new Set(['JOIN', 'STRAIGHT_JOIN', 'INNER', 'CROSS', 'NATURAL', 'LEFT', 'RIGHT', 'FULL', 'OUTER']);
const SUBQUERY_START = new Set(['SELECT', 'WITH', 'VALUES', 'TABLE']);
const DELETE_END = new Set(['WHERE', 'ORDER', 'LIMIT', 'RETURNING', 'USING', 'FOR']);

function isJoinStart(c: Cursor): boolean {
  const u = c.up();
  // LEFT( and RIGHT( are functions in an ON condition, not joins.
  return JOIN_WORDS.has(u) && u !== 'OUTER' && !((u === 'LEFT' || u === 'RIGHT') && c.op('(', 1));
}

function alias(c: Cursor, stop: Set<string>): string | null {
  let a: string | null = null;
  if (c.accept('AS')) {
    a = c.nameText();
    c.i++;
  } else {
    const t = c.tok();
    const word = t?.t === 'word' && !RESERVED.has(t.up) && !stop.has(t.up);
    if (word || t?.t === 'ident' || (t?.t === 'str' && t.q === '"')) {
      a = c.nameText();
      c.i++;
    }
  }
  if (a !== null && c.op('(')) c.skipParens(); // a derived table's column list
  return a;
}

/** Skips an ON condition up to what ends it: a comma, a join, a stop word or a closing parenthesis. */
function skipCondition(c: Cursor, stop: Set<string>): void {
  while (!c.end() && !c.op(',') && !c.op(')') && !isJoinStart(c) && !stop.has(c.up())) {
    if (c.op('(')) c.skipParens();
    else c.i++;
  }
}

/**
 * A table_references clause: names with aliases, partitions and index hints, joins
 * with ON/USING, parenthesised groups, derived tables (skipped). Stops before a word
 * of `stop`. `usingEnds`: USING ends the list (the FROM list of DELETE ... USING).
 */
function tableRefs(c: Cursor, stop: Set<string>, usingEnds = false): Ref[] {
  const refs: Ref[] = [];
  for (;;) {
    c.accept('LATERAL');
    if (c.op('(')) {
      const subquery = SUBQUERY_START.has(c.up(1));
      if (subquery) c.skipParens();
      else {
        c.i++;
        refs.push(...tableRefs(c, stop));
        if (c.op(')')) c.i++;
      }
      alias(c, stop);
    } else {
      const table = c.name();
      if (!table) return refs;
      if (c.up() === 'PARTITION' && c.op('(', 1)) {
        c.i++;
        c.skipParens();
      }
      const a = alias(c, stop);
      while (['USE', 'IGNORE', 'FORCE'].includes(c.up()) && ['INDEX', 'KEY'].includes(c.up(1))) {
        c.i += 2;
        while (!c.end() && !c.op('(')) c.i++; // FOR JOIN | ORDER BY | GROUP BY
        c.skipParens();
      }
      refs.push({ table, alias: a });
    }
    for (;;) {
      if (c.op(',')) {
        c.i++;
        break;
      }
      if (isJoinStart(c)) {
        c.skipWhile(JOIN_WORDS);
        break;
      }
      if (c.accept('ON')) {
        skipCondition(c, stop);
        continue;
      }
      if (!usingEnds && c.up() === 'USING' && c.op('(', 1)) {
        c.i++;
        c.skipParens();
        continue;
      }
      return refs;
    }
  }
}

/** Multi-table DELETE targets may be aliases of the tables listed in its FROM/USING clause. */
function resolveTargets(targets: Raw[], refs: Ref[]): Raw[] {
  return targets.map((t) => {
    if (t.qualifier !== null) return t;
    const n = t.name.toLowerCase();
    const byAlias = refs.find((r) => r.alias?.toLowerCase() === n);
    const byName = refs.find((r) => r.alias === null && r.table.name.toLowerCase() === n);
    return (byAlias ?? byName)?.table ?? t;
  });
}

function insert(c: Cursor, verb: string): [string, Raw[]] {
  c.i++;
  c.skipWhile(['LOW_PRIORITY', 'DELAYED', 'HIGH_PRIORITY', 'IGNORE']);
  c.accept('INTO');
  const t = c.name();
  return [verb, t ? [t] : []];
}

function update(c: Cursor): [string, Raw[]] {
  c.i++;
  c.skipWhile(['LOW_PRIORITY', 'IGNORE']);
  return ['UPDATE', tableRefs(c, new Set(['SET'])).map((r) => r.table)];
}

function del(c: Cursor): [string, Raw[]] {
  c.i++;
  c.skipWhile(['LOW_PRIORITY', 'QUICK', 'IGNORE', 'HISTORY']);
  if (!c.accept('FROM')) {
    // DELETE t1, a FROM t1 JOIN t2 AS a ...
    const targets = c.nameList();
    const refs = c.accept('FROM') ? tableRefs(c, DELETE_END) : [];
    return ['DELETE', resolveTargets(targets, refs)];
  }
  const listed = tableRefs(c, DELETE_END, true);
  if (c.accept('USING')) return ['DELETE', resolveTargets(listed.map((r) => r.table), tableRefs(c, DELETE_END))];
  return ['DELETE', listed.map((r) => r.table)];
}

function load(c: Cursor): [string, Raw[]] {
  const verb = `LOAD ${c.up(1)}`;
  if (!c.seek('INTO', 'TABLE')) return [verb, []];
  c.i += 2;
  const t = c.name();
  return [verb, t ? [t] : []];
}

function alter(c: Cursor): [string, Raw[]] {
  c.i++;
  c.skipWhile(['ONLINE', 'OFFLINE', 'IGNORE']);
  if (!c.accept('TABLE')) return [`ALTER ${c.up()}`.trim(), []];
  c.accept('IF', 'EXISTS');
  const t = c.name();
  const out = t ? [t] : [];
  // EXCHANGE PARTITION swaps rows with another table without a row event.
  while (c.seek('WITH', 'TABLE')) {
    c.i += 2;
    const other = c.name();
    if (other) out.push(other);
  }
  return ['ALTER TABLE', out];
}

function skipDefiner(c: Cursor): void {
  if (!c.accept('DEFINER')) return;
  if (c.op('=')) c.i++;
  c.i++; // user, or CURRENT_USER
  if (c.op('(') && c.op(')', 1)) c.i += 2;
  if (c.op('@')) c.i += 2;
}

function create(c: Cursor): [string, Raw[]] {
  c.i++;
  const orReplace = c.accept('OR', 'REPLACE');
  skipDefiner(c);
  const temporary = c.accept('TEMPORARY');
  c.skipWhile(['ONLINE', 'OFFLINE', 'UNIQUE', 'FULLTEXT', 'SPATIAL']);
  if (c.accept('TABLE')) {
    c.accept('IF', 'NOT', 'EXISTS');
    const t = c.name();
    // Without OR REPLACE an existing table is left alone; a temporary one hides it only for its session.
    return ['CREATE TABLE', t && orReplace && !temporary ? [t] : []];
  }
  if (c.up() === 'INDEX' || c.up() === 'TRIGGER') {
    const verb = `CREATE ${c.up()}`;
    if (!c.seek('ON')) return [verb, []];
    c.i++;
    const t = c.name();
    return [verb, t ? [t] : []];
  }
  return [`CREATE ${c.up()}`.trim(), []];
}

function drop(c: Cursor): [string, Raw[]] {
  c.i++;
  const temporary = c.accept('TEMPORARY');
  c.skipWhile(['ONLINE', 'OFFLINE']);
  if (c.accept('TABLE') || c.accept('TABLES')) {
    c.accept('IF', 'EXISTS');
    const list = c.nameList();
    return ['DROP TABLE', temporary ? [] : list];
  }
  if (c.up() === 'INDEX') {
    if (!c.seek('ON')) return ['DROP INDEX', []];
    c.i++;
    const t = c.name();
    return ['DROP INDEX', t ? [t] : []];
  }
  return [`DROP ${c.up()}`.trim(), []];
}

function rename(c: Cursor, renames: Array<{ from: Raw; to: Raw }>): [string, Raw[]] {
  c.i++;
  if (!c.accept('TABLE') && !c.accept('TABLES')) return [`RENAME ${c.up()}`.trim(), []];
  c.accept('IF', 'EXISTS');
  const out: Raw[] = [];
  for (;;) {
    const from = c.name();
    if (c.accept('WAIT')) c.i++;
    c.accept('NOWAIT');
    if (!from || !c.accept('TO')) break;
    const to = c.name();
    if (!to) break;
    out.push(from, to);
    renames.push({ from, to });
    if (!c.op(',')) break;
    c.i++;
  }
  return ['RENAME TABLE', out];
}

function tableList(c: Cursor, verb: string): [string, Raw[]] {
  c.i++;
  c.skipWhile(['NO_WRITE_TO_BINLOG', 'LOCAL']);
  c.accept('TABLE');
  return [verb, c.nameList()];
}

function skipPrefixes(c: Cursor): void {
  for (;;) {
    if (c.accept('WITH')) {
      c.accept('RECURSIVE');
      do {
        if (c.op(',')) c.i++;
        c.i++; // the CTE's name
        if (c.op('(')) c.skipParens();
        c.accept('AS');
        if (c.op('(')) c.skipParens();
      } while (c.op(','));
    } else if (c.up() === 'SET' && c.up(1) === 'STATEMENT') {
      // MariaDB's SET STATEMENT var = value [, ...] FOR <statement>
      if (!c.seek('FOR')) return;
      c.i++;
    } else return;
  }
}

const TRANSACTION = new Set(['BEGIN', 'COMMIT', 'ROLLBACK', 'SAVEPOINT', 'RELEASE', 'XA']);

/** Classifies one statement; `defaultSchema` is the session's database when it ran (the query event's schema). */
export function classifyStatement(sql: string, defaultSchema?: string | null): Statement {
  const c = new Cursor(sql);
  skipPrefixes(c);
  const first = c.up();
  const renames: Array<{ from: Raw; to: Raw }> = [];
  let kind: StatementKind;
  let found: [string, Raw[]];
  if (TRANSACTION.has(first) || (first === 'START' && c.up(1) === 'TRANSACTION')) {
    kind = 'transaction';
    found = [first === 'XA' || first === 'START' ? `${first} ${c.up(1)}` : first, []];
  } else if (first === 'INSERT' || first === 'REPLACE') [kind, found] = ['dml', insert(c, first)];
  else if (first === 'UPDATE') [kind, found] = ['dml', update(c)];
  else if (first === 'DELETE') [kind, found] = ['dml', del(c)];
  else if (first === 'LOAD') [kind, found] = ['dml', load(c)];
  else if (first === 'ALTER') [kind, found] = ['ddl', alter(c)];
  else if (first === 'CREATE') [kind, found] = ['ddl', create(c)];
  else if (first === 'DROP') [kind, found] = ['ddl', drop(c)];
  else if (first === 'RENAME') [kind, found] = ['ddl', rename(c, renames)];
  else if (first === 'TRUNCATE') {
    c.i++;
    c.accept('TABLE');
    const t = c.name();
    [kind, found] = ['ddl', ['TRUNCATE', t ? [t] : []]];
  } else if (first === 'REPAIR') {
    // REPAIR (MyISAM, Aria) may drop damaged rows with no row event for them.
    [kind, found] = ['ddl', tableList(c, 'REPAIR TABLE')];
  } else {
    // OPTIMIZE rebuilds InnoDB tables as ALTER TABLE ... FORCE: same rows, same definition,
    // and row events keep decoding (the table map is read again). ANALYZE, CHECK: statistics.
    kind = 'other';
    found = [first, []];
  }
  const resolve = (r: Raw): TableName => ({ schema: r.qualifier ?? (defaultSchema || null), name: r.name });
  return {
    kind,
    verb: found[0],
    tables: found[1].map(resolve),
    renames: renames.map((r) => ({ from: resolve(r.from), to: resolve(r.to) })),
  };
}
