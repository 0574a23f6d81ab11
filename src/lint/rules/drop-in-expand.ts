import type { LintRule } from '../rule.js';
import { tableKey } from '../rule.js';

export const dropInExpand: LintRule = {
  id: 'drop-in-expand',
  dialects: ['postgres', 'mysql'],
  severity: 'error',
  reason: 'The expand phase runs while the previous application version is still live; dropping a column or table it uses breaks it.',
  safeAlternative: 'Move the DROP to the contract phase (-- shadowshift:contract), which runs after every instance runs the new version.',
  check(ctx) {
    if (ctx.phase !== 'expand' && ctx.phase !== 'backfill') return null;
    const p = ctx.parsed;
    if (p.kind === 'drop-table' && !ctx.createdHere.has(tableKey(p.table))) return { message: `DROP TABLE ${p.table} in the ${ctx.phase} phase` };
    if (p.kind !== 'alter-table') return null;
    const clause = p.clauses.find((c) => /^drop\s+(column\s+)?(?!constraint\b|index\b|key\b|primary\b|foreign\b|check\b|default\b|partition\b)\S+/i.test(c));
    return clause ? { message: `"${clause}" in the ${ctx.phase} phase` } : null;
  },
};
