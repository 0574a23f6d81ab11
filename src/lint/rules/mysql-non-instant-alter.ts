import type { LintRule } from '../rule.js';
import { tableKey } from '../rule.js';
import { classifyMysqlClause } from '../../dialects/mysql/mysql-alter-classes.js';

export const mysqlNonInstantAlter: LintRule = {
  id: 'mysql-non-instant-alter',
  dialects: ['mysql'],
  severity: 'error',
  reason: 'An ALTER that is not INSTANT rebuilds or copies a big table: with ALGORITHM=COPY writes are blocked for the whole copy, and even INPLACE holds replicas behind for as long as it runs.',
  safeAlternative: 'Keep ALTERs on big tables INSTANT (ADD/DROP COLUMN, defaults, renames of indexes), or let shadowshift migrate send the statement through the online engine (above --online-threshold it does so itself).',
  check(ctx) {
    const p = ctx.parsed;
    if (p.kind !== 'alter-table' || ctx.createdHere.has(tableKey(p.table))) return null;
    const slow = p.clauses
      .map((c) => ({ c, k: classifyMysqlClause(c) }))
      .filter((x) => x.k.cls === 'copy' || x.k.cls === 'rebuild');
    if (slow.length === 0) return null;
    const rows = p.table ? ctx.tableRows(p.table) : null;
    const what = slow.map((x) => `"${x.c.slice(0, 60)}" (${x.k.why})`).join('; ');
    if (rows === null) return { message: `not INSTANT: ${what}; harmful if ${p.table} is big (run lint with --url to check its size)`, severity: 'warning' };
    if (rows < ctx.bigTableRows) return null;
    return { message: `not INSTANT on ${p.table} (~${rows} rows): ${what}` };
  },
};
