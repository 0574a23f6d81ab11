import type { LintRule } from '../rule.js';
import { tableKey } from '../rule.js';
import { hasVolatileDefault } from '../../migrations/sql-analysis.js';

export const volatileDefault: LintRule = {
  id: 'volatile-default',
  dialects: ['postgres', 'mysql'],
  severity: 'error',
  reason: 'A new column whose default is volatile (random(), gen_random_uuid(), clock_timestamp(), UUID(), ...) is computed for every existing row: the table is rewritten while writes are blocked.',
  safeAlternative: 'Add the column without a default (or with a constant one), set the volatile default in a separate ALTER ... SET DEFAULT, and backfill existing rows in a backfill phase.',
  check(ctx) {
    const p = ctx.parsed;
    if (p.kind !== 'alter-table' || ctx.createdHere.has(tableKey(p.table))) return null;
    for (const clause of p.clauses) {
      if (!/^add\s+(column\s+)?/i.test(clause) || /^add\s+(constraint|index|key|unique|primary|foreign|check)\b/i.test(clause)) continue;
      const fn = hasVolatileDefault(clause);
      if (fn) return { message: `new column with volatile default ${fn}() rewrites ${p.table}` };
    }
    return null;
  },
};
