import type { LintRule } from '../rule.js';
import { tableKey } from '../rule.js';
import { syntaxOf } from '../../dialects/registry.js';

export const missingLockTimeout: LintRule = {
  id: 'missing-lock-timeout',
  dialects: ['postgres', 'mysql'],
  severity: 'warning',
  reason: 'A DDL statement waiting for its lock behind a long transaction makes every later query on the table queue behind it: the application stalls although the DDL itself is quick.',
  safeAlternative: "SET lock_timeout = '1s' (PostgreSQL) or SET SESSION lock_wait_timeout = 5 (MySQL) before the DDL, and retry. shadowshift migrate does both itself; this warning is for files other tools may run.",
  check(ctx) {
    const p = ctx.parsed;
    const ddl = p.kind === 'alter-table' || p.kind === 'create-index' || p.kind === 'drop-index' || p.kind === 'drop-table';
    if (!ddl || ctx.createdHere.has(tableKey(p.table))) return null;
    const { pattern, setting } = syntaxOf(ctx.dialect).lockTimeout;
    for (let i = ctx.position - 1; i >= 0; i--) {
      const s = ctx.all[i]!;
      if (s.phase !== ctx.phase) continue;
      if (s.parsed.kind === 'set' && pattern.test(s.parsed.text)) return null;
      // Reported once per phase: at its first DDL on an existing table.
      const k = s.parsed.kind;
      if ((k === 'alter-table' || k === 'create-index' || k === 'drop-index' || k === 'drop-table') && !ctx.createdHere.has(tableKey(s.parsed.table))) return null;
    }
    return { message: `no ${setting} is set before this DDL on ${p.table ?? 'an existing table'}` };
  },
};
