import type { LintRule } from '../rule.js';
import { tableKey } from '../rule.js';

export const constraintNotValid: LintRule = {
  id: 'constraint-not-valid',
  dialects: ['postgres'],
  severity: 'error',
  reason: 'Adding a FOREIGN KEY or CHECK constraint checks every existing row while holding a lock that blocks writes (a foreign key also locks the referenced table).',
  safeAlternative: 'ADD CONSTRAINT ... NOT VALID, then in a later statement ALTER TABLE ... VALIDATE CONSTRAINT ... (validation allows reads and writes).',
  check(ctx) {
    const p = ctx.parsed;
    if (p.kind !== 'alter-table' || ctx.createdHere.has(tableKey(p.table))) return null;
    for (const clause of p.clauses) {
      if (/^add\s+(constraint\s+\S+\s+)?(foreign\s+key|check)\b/i.test(clause) && !/\bnot\s+valid\b/i.test(clause)) {
        return { message: `"${clause.slice(0, 80)}" is validated under a write-blocking lock; add it NOT VALID and VALIDATE separately` };
      }
    }
    return null;
  },
};
