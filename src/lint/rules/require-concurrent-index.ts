import type { LintRule } from '../rule.js';
import { tableKey } from '../rule.js';

export const requireConcurrentIndex: LintRule = {
  id: 'require-concurrent-index',
  dialects: ['postgres'],
  severity: 'error',
  reason: 'CREATE INDEX / DROP INDEX without CONCURRENTLY holds a lock that blocks every write to the table for as long as the index takes to build or drop.',
  safeAlternative: 'CREATE INDEX CONCURRENTLY ... / DROP INDEX CONCURRENTLY ... (outside a transaction; shadowshift migrate rewrites it this way itself).',
  check(ctx) {
    const p = ctx.parsed;
    if (p.kind !== 'create-index' && p.kind !== 'drop-index') return null;
    if (/\bconcurrently\b/i.test(p.text)) return null;
    if (p.kind === 'create-index' && ctx.createdHere.has(tableKey(p.table))) return null;
    return { message: `${p.kind === 'create-index' ? 'CREATE' : 'DROP'} INDEX without CONCURRENTLY blocks writes to ${p.table ?? 'the table'}` };
  },
};
