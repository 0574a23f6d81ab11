import type { LintContext, LintRule } from '../rule.js';
import { tableKey } from '../rule.js';
import { clauseColumn, readIdentifier } from '../../migrations/sql-analysis.js';

/** The ALTER's clauses, unless the statement is no ALTER TABLE or its table is created in the same file. */
function clausesOf(ctx: LintContext): { table: string | null; clauses: string[] } | null {
  const p = ctx.parsed;
  if (p.kind !== 'alter-table' || ctx.createdHere.has(tableKey(p.table))) return null;
  return { table: p.table, clauses: p.clauses };
}

export const rewritingTypeChange: LintRule = {
  id: 'rewriting-type-change',
  dialects: ['postgres', 'mysql'],
  severity: 'error',
  reason: 'Changing a column type rewrites (PostgreSQL) or copies (MySQL ALGORITHM=COPY) the whole table while writes are blocked, unless the change is binary-compatible (e.g. widening a varchar).',
  safeAlternative: 'Run the ALTER through shadowshift (migrate sends it to the online engine above --online-threshold), or use the changeColumnType expand/contract operation in a TS migration.',
  check: {
    postgres(ctx) {
      const a = clausesOf(ctx);
      for (const clause of a?.clauses ?? []) {
        if (!/^alter\s+(column\s+)?\S+\s+(set\s+data\s+)?type\b/i.test(clause)) continue;
        if (/\b(varchar|character\s+varying)\s*\(\s*\d+\s*\)\s*$|\btype\s+text\s*$/i.test(clause) && !/\busing\b/i.test(clause)) {
          return { message: `"${clause}" rewrites ${a!.table} unless it only widens a varchar; check with \`shadowshift migrate plan\``, severity: 'warning' };
        }
        return { message: `"${clause}" rewrites ${a!.table} under ACCESS EXCLUSIVE` };
      }
      return null;
    },
    mysql(ctx) {
      const a = clausesOf(ctx);
      for (const clause of a?.clauses ?? []) {
        if (/^modify\s+/i.test(clause)) return { message: `"${clause}" copies ${a!.table} unless only attributes change` };
        const chg = /^change\s+(column\s+)?/i.exec(clause);
        if (chg) {
          const from = clauseColumn(clause, 'mysql');
          const to = readIdentifier(readIdentifier(clause.slice(chg[0].length), 'mysql')?.rest ?? '', 'mysql')?.name;
          if (from && to && from.toLowerCase() === to.toLowerCase()) return { message: `"${clause}" copies ${a!.table} unless only attributes change` };
        }
      }
      return null;
    },
  },
};
