import type { LintContext, LintRule } from '../rule.js';
import { readIdentifier } from '../../migrations/sql-analysis.js';

type Finding = { message: string } | null;

/** What both dialects write: RENAME TABLE, RENAME [COLUMN] a TO b, RENAME TO/AS. */
function renameIn(clause: string, table: string | null): Finding {
  if (/^rename\s+(column\s+)?(?!to\b|as\b|constraint\b|index\b|key\b)\S+\s+to\b/i.test(clause)) return { message: `"${clause}" breaks clients using the old column name` };
  if (/^rename\s+(to|as)\b/i.test(clause)) return { message: `"${clause}" renames table ${table}` };
  return null;
}

/** MySQL's own ways: RENAME new_name (no TO), and CHANGE old new under another name. */
function mysqlRenameIn(clause: string, table: string | null): Finding {
  if (/^rename\s+\S+\s*$/i.test(clause)) return { message: `"${clause}" renames table ${table}` };
  const chg = /^change\s+(column\s+)?/i.exec(clause);
  if (!chg) return null;
  const first = readIdentifier(clause.slice(chg[0].length), 'mysql');
  const second = first ? readIdentifier(first.rest, 'mysql') : null;
  if (first && second && first.name.toLowerCase() !== second.name.toLowerCase()) return { message: `"${clause.slice(0, 80)}" renames column ${first.name} to ${second.name}` };
  return null;
}

function findRename(ctx: LintContext, ...rules: Array<(clause: string, table: string | null) => Finding>): Finding {
  const p = ctx.parsed;
  if (p.kind === 'rename-table') return { message: `RENAME TABLE ${p.table} breaks clients using the old name` };
  if (p.kind !== 'alter-table') return null;
  for (const clause of p.clauses) {
    for (const rule of rules) {
      const hit = rule(clause, p.table);
      if (hit) return hit;
    }
  }
  return null;
}

export const renameColumnOrTable: LintRule = {
  id: 'rename-column-or-table',
  dialects: ['postgres', 'mysql'],
  severity: 'error',
  reason: 'Renaming a column or table breaks every running application instance that still uses the old name the moment the statement commits.',
  safeAlternative: 'Use the renameColumn expand/contract operation in a TS migration (new column kept in sync by triggers until contract), or add a new table/view and move readers first.',
  check: {
    postgres: (ctx) => findRename(ctx, renameIn),
    mysql: (ctx) => findRename(ctx, renameIn, mysqlRenameIn),
  },
};
