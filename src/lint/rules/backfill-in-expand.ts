import type { LintRule } from '../rule.js';
import { tableKey } from '../rule.js';

export const backfillInExpand: LintRule = {
  id: 'backfill-in-expand',
  dialects: ['postgres', 'mysql'],
  severity: 'error',
  reason: 'A mass UPDATE/DELETE/INSERT ... SELECT next to DDL in the expand phase locks many rows in one long transaction and holds up the schema change behind it.',
  safeAlternative: 'Move it under -- shadowshift:backfill: the runner runs single-table UPDATE/DELETE there in key-range batches, throttled and resumable.',
  check(ctx) {
    if (ctx.phase !== 'expand') return null;
    const p = ctx.parsed;
    if (p.kind !== 'dml') return null;
    if (ctx.createdHere.has(tableKey(p.table)) && p.verb === 'insert' && !/\bselect\b/i.test(p.text)) return null;
    if ((p.verb === 'insert' || p.verb === 'replace') && !/\bselect\b/i.test(p.text)) return null;
    return { message: `${p.verb.toUpperCase()} on ${p.table ?? 'a table'} in the expand phase` };
  },
};
