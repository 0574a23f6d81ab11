import type { LintRule } from '../rule.js';
import { readIdentifier } from '../../migrations/sql-analysis.js';

export const renameColumnOrTable: LintRule = {
  id: 'rename-column-or-table',
  dialects: ['postgres', 'mysql'],
  severity: 'error',
  reason: 'Renaming a column or table breaks every running application instance that still uses the old name the moment the statement commits.',
  safeAlternative: 'Use the renameColumn expand/contract operation in a TS migration (new column kept in sync by triggers until contract), or add a new table/view and move readers first.',
  check(ctx) {
    const p = ctx.parsed;
    if (p.kind === 'rename-table') return { message: `RENAME TABLE ${p.table} breaks clients using the old name` };
    if (p.kind !== 'alter-table') return null;
    for (const clause of p.clauses) {
      if (/^rename\s+(column\s+)?(?!to\b|as\b|constraint\b|index\b|key\b)\S+\s+to\b/i.test(clause)) return { message: `"${clause}" breaks clients using the old column name` };
      if (/^rename\s+(to|as)\b/i.test(clause) || (/^rename\s+\S+\s*$/i.test(clause) && ctx.dialect === 'mysql')) return { message: `"${clause}" renames table ${p.table}` };
      const chg = /^change\s+(column\s+)?/i.exec(clause);
      if (chg && ctx.dialect === 'mysql') {
        const first = readIdentifier(clause.slice(chg[0].length), 'mysql');
        const second = first ? readIdentifier(first.rest, 'mysql') : null;
        if (first && second && first.name.toLowerCase() !== second.name.toLowerCase()) return { message: `"${clause.slice(0, 80)}" renames column ${first.name} to ${second.name}` };
      }
    }
    return null;
  },
};
