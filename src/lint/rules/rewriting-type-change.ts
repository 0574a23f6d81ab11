import type { LintRule } from '../rule.js';
import { tableKey } from '../rule.js';
import { clauseColumn, readIdentifier } from '../../migrations/sql-analysis.js';

export const rewritingTypeChange: LintRule = {
  id: 'rewriting-type-change',
  dialects: ['postgres', 'mysql'],
  severity: 'error',
  reason: 'Changing a column type rewrites (PostgreSQL) or copies (MySQL ALGORITHM=COPY) the whole table while writes are blocked, unless the change is binary-compatible (e.g. widening a varchar).',
  safeAlternative: 'Run the ALTER through shadowshift (migrate sends it to the online engine above --online-threshold), or use the changeColumnType expand/contract operation in a TS migration.',
  check(ctx) {
    const p = ctx.parsed;
    if (p.kind !== 'alter-table' || ctx.createdHere.has(tableKey(p.table))) return null;
    for (const clause of p.clauses) {
      if (ctx.dialect === 'postgres' && /^alter\s+(column\s+)?\S+\s+(set\s+data\s+)?type\b/i.test(clause)) {
        if (/\b(varchar|character\s+varying)\s*\(\s*\d+\s*\)\s*$|\btype\s+text\s*$/i.test(clause) && !/\busing\b/i.test(clause)) {
          return { message: `"${clause}" rewrites ${p.table} unless it only widens a varchar; check with \`shadowshift migrate plan\``, severity: 'warning' };
        }
        return { message: `"${clause}" rewrites ${p.table} under ACCESS EXCLUSIVE` };
      }
      if (ctx.dialect === 'mysql') {
        if (/^modify\s+/i.test(clause)) return { message: `"${clause}" copies ${p.table} unless only attributes change` };
        const chg = /^change\s+(column\s+)?/i.exec(clause);
        if (chg) {
          const from = clauseColumn(clause, 'mysql');
          const to = readIdentifier(readIdentifier(clause.slice(chg[0].length), 'mysql')?.rest ?? '', 'mysql')?.name;
          if (from && to && from.toLowerCase() === to.toLowerCase()) return { message: `"${clause}" copies ${p.table} unless only attributes change` };
        }
      }
    }
    return null;
  },
};
