// The MySQL/MariaDB half of the migration planner: every ALTER first tries
// ALGORITHM=INSTANT, then INPLACE/LOCK=NONE where it does not rebuild a big
// table, else (above --online-threshold) the online engine.

import type { Phase } from '../../migrations/migration-files.js';
import type { TableStats } from '../../migrations/migration-store.js';
import { isBig, planDml, RATE, secs, tableName, viaEngine, type PlanContext, type PlannedStatement, type PlannerHalf } from '../../migrations/planner.js';
import type { ParsedStatement } from '../../migrations/sql-analysis.js';
import { classifyMysqlClause, MYSQL_RANK, type MysqlAlterClass } from './mysql-alter-classes.js';

export const mysqlPlanner: PlannerHalf = { plan: planMysql };

function planMysql(base: PlannedStatement, parsed: ParsedStatement, stats: TableStats | null, ctx: PlanContext, phase: Phase): PlannedStatement {
  const big = isBig(stats, ctx.threshold);
  const rows = stats?.rows ?? (parsed.table ? 0 : null);
  const table = tableName(stats, parsed.table);
  switch (parsed.kind) {
    case 'dml':
      return planDml(base, parsed, stats, 'mysql', phase);
    case 'set':
    case 'other':
      return { ...base, class: parsed.kind === 'set' ? 'instant' : 'blocking', how: 'as written', lock: parsed.kind === 'set' ? 'none' : 'unknown: not a statement the planner knows', steps: [{ kind: 'exec', sql: base.sql }] };
    case 'create-table':
    case 'drop-table':
    case 'rename-table':
      return { ...base, class: 'instant', how: 'metadata only, under a short lock_wait_timeout with retries', lock: 'metadata lock, brief', steps: [{ kind: 'ddl', sql: base.sql }] };
    case 'drop-index':
      return { ...base, class: 'instant', how: 'metadata only', lock: 'metadata lock, brief', steps: [{ kind: 'mysql-alter', sql: base.sql, algorithms: [], otherwise: 'plain', table, alter: '' }] };
    case 'create-index': {
      if (/\b(algorithm|lock)\s*=/i.test(parsed.text)) return { ...base, class: 'online', how: 'as written (ALGORITHM/LOCK given)', lock: 'as the ALGORITHM/LOCK given', estimatedRows: rows, steps: [{ kind: 'ddl', sql: base.sql }] };
      return {
        ...base,
        class: 'online',
        how: 'ALGORITHM=INPLACE, LOCK=NONE (index built while reads and writes continue)',
        lock: 'metadata lock at start and end only',
        estimatedRows: rows,
        estimatedSeconds: secs(rows, RATE.concurrentIndex),
        steps: [{ kind: 'mysql-alter', sql: base.sql, algorithms: ['INPLACE'], otherwise: 'plain', table, alter: '' }],
      };
    }
    case 'alter-table': {
      if (parsed.clauses.some((c) => /^(algorithm|lock)\s*=?/i.test(c))) {
        return { ...base, class: /lock\s*=?\s*none/i.test(parsed.text) ? 'online' : 'blocking', how: 'as written (ALGORITHM/LOCK given)', lock: 'as the ALGORITHM/LOCK given', estimatedRows: rows, steps: [{ kind: 'ddl', sql: base.sql }] };
      }
      const classes = parsed.clauses.map((c) => classifyMysqlClause(c, stats?.columns));
      let worst: MysqlAlterClass = 'instant';
      for (const k of classes) if (MYSQL_RANK[k.cls] > MYSQL_RANK[worst]) worst = k.cls;
      const why = classes.filter((k) => k.cls === worst).map((k) => k.why);
      const p: PlannedStatement = { ...base, estimatedRows: rows, notes: [...why] };
      if (worst === 'instant') {
        return {
          ...p,
          class: 'instant',
          how: `ALGORITHM=INSTANT${big ? ' (if refused: the online engine)' : ' (if refused: INPLACE, LOCK=NONE, then as written)'}`,
          lock: 'metadata lock, brief',
          estimatedSeconds: 0,
          steps: [{ kind: 'mysql-alter', sql: base.sql, algorithms: big ? ['INSTANT'] : ['INSTANT', 'INPLACE'], otherwise: big ? 'engine' : 'plain', table, alter: parsed.alterBody }],
        };
      }
      if (worst === 'inplace') {
        return {
          ...p,
          class: 'online',
          how: `ALGORITHM=INPLACE, LOCK=NONE (no rebuild; reads and writes continue)${big ? '; if refused: the online engine' : ''}`,
          lock: 'metadata lock at start and end only',
          estimatedSeconds: secs(rows, RATE.concurrentIndex),
          steps: [{ kind: 'mysql-alter', sql: base.sql, algorithms: ['INSTANT', 'INPLACE'], otherwise: big ? 'engine' : 'plain', table, alter: parsed.alterBody }],
        };
      }
      if (big) {
        return viaEngine(p, stats!, rows, [{ kind: 'mysql-alter', sql: base.sql, algorithms: ['INSTANT'], otherwise: 'engine', table, alter: parsed.alterBody }]);
      }
      if (worst === 'rebuild') {
        return {
          ...p,
          class: 'online',
          how: 'ALGORITHM=INPLACE, LOCK=NONE (small table rebuilt in place; if refused: as written)',
          lock: 'metadata lock at start and end; writes continue',
          estimatedSeconds: secs(rows, RATE.blockingRewrite),
          steps: [{ kind: 'mysql-alter', sql: base.sql, algorithms: ['INSTANT', 'INPLACE'], otherwise: 'plain', table, alter: parsed.alterBody }],
        };
      }
      return {
        ...p,
        class: 'blocking',
        how: 'as written (ALGORITHM=COPY): the table is below --online-threshold',
        lock: `writes blocked for the whole copy (~${secs(rows, RATE.blockingRewrite) ?? '?'} s)`,
        estimatedSeconds: secs(rows, RATE.blockingRewrite),
        steps: [{ kind: 'mysql-alter', sql: base.sql, algorithms: ['INSTANT', 'INPLACE'], otherwise: 'plain', table, alter: parsed.alterBody }],
      };
    }
    default:
      return { ...base, class: 'blocking', steps: [{ kind: 'exec', sql: base.sql }] };
  }
}
