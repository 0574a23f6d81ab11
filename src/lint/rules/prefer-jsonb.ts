import type { LintRule } from '../rule.js';

export const preferJsonb: LintRule = {
  id: 'prefer-jsonb',
  dialects: ['postgres'],
  severity: 'error',
  reason: 'json stores the text as written: no indexing, no equality operator (DISTINCT, GROUP BY and UNIQUE fail), every access re-parses it. Changing it to jsonb later rewrites the table.',
  safeAlternative: 'Use jsonb: the same input syntax, stored parsed, indexable with GIN, with equality and containment operators.',
  check(ctx) {
    const p = ctx.parsed;
    if (p.kind !== 'create-table' && p.kind !== 'alter-table') return null;
    // A column typed json: `name json`, `TYPE json`, `json[]`; not jsonb, not a json_* function.
    const m = /(?:^|[\s,(])(?:"[^"]+"|[a-z_][a-z0-9_]*)\s+json(?:\[\])?(?=\s*(?:,|\)|$|\s+(?:not|null|default|primary|unique|references|check|constraint|collate|using)\b))/i.exec(p.text);
    const t = /\btype\s+json\b(?!b)/i.exec(p.text);
    return m || t ? { message: `column of type json in ${p.table ?? 'the table'}` } : null;
  },
};
