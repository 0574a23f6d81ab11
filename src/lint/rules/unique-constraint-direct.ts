import type { LintRule } from '../rule.js';
import { tableKey } from '../rule.js';

export const uniqueConstraintDirect: LintRule = {
  id: 'unique-constraint-direct',
  dialects: ['postgres'],
  severity: 'error',
  reason: 'ADD CONSTRAINT ... UNIQUE / PRIMARY KEY builds its index while holding a lock that blocks all writes (and reads) on the table.',
  safeAlternative: 'CREATE UNIQUE INDEX CONCURRENTLY idx ON t (cols); then ALTER TABLE t ADD CONSTRAINT c UNIQUE USING INDEX idx.',
  check(ctx) {
    const p = ctx.parsed;
    if (p.kind !== 'alter-table' || ctx.createdHere.has(tableKey(p.table))) return null;
    const clause = p.clauses.find((c) => /^add\s+(constraint\s+\S+\s+)?(unique|primary\s+key)\b/i.test(c) && !/\busing\s+index\b/i.test(c));
    return clause ? { message: `"${clause}" builds a unique index under a write-blocking lock` } : null;
  },
};
