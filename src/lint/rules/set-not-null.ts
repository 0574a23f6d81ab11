import type { LintRule } from '../rule.js';
import { tableKey } from '../rule.js';

export const setNotNull: LintRule = {
  id: 'set-not-null',
  dialects: ['postgres'],
  severity: 'error',
  reason: 'ALTER COLUMN ... SET NOT NULL scans the whole table under ACCESS EXCLUSIVE: no reads or writes until it finishes.',
  safeAlternative: 'ADD CONSTRAINT c CHECK (col IS NOT NULL) NOT VALID; VALIDATE CONSTRAINT c; then SET NOT NULL (PostgreSQL 12+ uses the valid CHECK and skips the scan) and DROP CONSTRAINT c. shadowshift migrate does this for big tables.',
  check(ctx) {
    const p = ctx.parsed;
    if (p.kind !== 'alter-table' || ctx.createdHere.has(tableKey(p.table))) return null;
    const clause = p.clauses.find((c) => /^alter\s+(column\s+)?\S+\s+set\s+not\s+null\b/i.test(c));
    return clause ? { message: `"${clause}" scans ${p.table} under ACCESS EXCLUSIVE` } : null;
  },
};
