// The PostgreSQL half of the migration planner: every DDL runs with a short
// lock_timeout and retries; CREATE/DROP INDEX become CONCURRENTLY; FOREIGN KEY /
// CHECK become NOT VALID + VALIDATE; SET NOT NULL on a big table goes through a
// validated CHECK; UNIQUE/PRIMARY KEY through a concurrent unique index; a
// rewriting ALTER on a big table goes through the engine.

import type { Phase } from '../../migrations/migration-files.js';
import type { TableStats } from '../../migrations/migration-store.js';
import { isBig, planDml, RATE, secs, tableName, viaEngine, type PlanContext, type PlannedStatement, type PlannerHalf, type StatementClass, type Step } from '../../migrations/planner.js';
import { parseStatement, readIdentifier, readQualifiedName, type ParsedStatement } from '../../migrations/sql-analysis.js';
import { classifyPgClause } from './postgres-alter-classes.js';
import { quoteIdent } from './postgres-quote.js';

export const postgresPlanner: PlannerHalf = { plan: planPostgres };

/** CREATE [UNIQUE] INDEX name ... -> with CONCURRENTLY; and the index name when given. */
export function concurrentIndexSql(sql: string): { sql: string; index: string | null } {
  const m = /^(\s*create\s+(?:unique\s+)?index\s+)(concurrently\s+)?(if\s+not\s+exists\s+)?/i.exec(sql);
  if (!m) return { sql, index: null };
  const rest = sql.slice(m[0].length);
  const name = /^\s*on\b/i.test(rest) ? null : (readQualifiedName(rest, 'postgres')?.name.split('.').pop() ?? null);
  return { sql: `${m[1]}CONCURRENTLY ${m[3] ?? ''}${rest}`, index: name };
}

function constraintNameOf(clause: string): string | null {
  const m = /^add\s+constraint\s+/i.exec(clause);
  return m ? (readIdentifier(clause.slice(m[0].length), 'postgres')?.name ?? null) : null;
}

function planPostgres(base: PlannedStatement, parsed: ParsedStatement, stats: TableStats | null, ctx: PlanContext, phase: Phase): PlannedStatement {
  const big = isBig(stats, ctx.threshold);
  const rows = stats?.rows ?? (parsed.table ? 0 : null);
  const table = tableName(stats, parsed.table);
  const q = quoteIdent;
  const qt = stats ? `${q(stats.schema)}.${q(stats.name)}` : parsed.table ?? '';
  const brief = 'ACCESS EXCLUSIVE, brief (lock_timeout, retried with backoff)';
  switch (parsed.kind) {
    case 'dml':
      return planDml(base, parsed, stats, 'postgres', phase);
    case 'set':
      return { ...base, class: 'instant', how: 'as written', lock: 'none', steps: [{ kind: 'exec', sql: base.sql }] };
    case 'other':
      return { ...base, class: 'instant', how: 'as written, under a short lock_timeout with retries', lock: 'unknown: not a statement the planner knows', steps: [{ kind: 'ddl', sql: base.sql }] };
    case 'create-table':
      return { ...base, class: 'instant', how: 'catalog only', lock: 'none on existing tables (a REFERENCES locks the parent briefly)', steps: [{ kind: 'ddl', sql: base.sql }] };
    case 'drop-table':
    case 'rename-table':
      return { ...base, class: 'instant', how: 'catalog only, under lock_timeout with retries', lock: brief, steps: [{ kind: 'ddl', sql: base.sql }] };
    case 'create-index': {
      if (/\bconcurrently\b/i.test(parsed.text)) {
        const c = concurrentIndexSql(base.sql.replace(/\bconcurrently\s+/i, ''));
        return { ...base, class: 'online', how: 'CREATE INDEX CONCURRENTLY (as written)', lock: 'SHARE UPDATE EXCLUSIVE: reads and writes continue', estimatedRows: rows, estimatedSeconds: secs(rows, RATE.concurrentIndex), steps: [{ kind: 'concurrent-index', sql: base.sql, index: c.index }] };
      }
      const c = concurrentIndexSql(base.sql);
      return {
        ...base,
        class: 'online',
        how: 'rewritten to CREATE INDEX CONCURRENTLY (outside a transaction)',
        lock: 'SHARE UPDATE EXCLUSIVE: reads and writes continue',
        estimatedRows: rows,
        estimatedSeconds: secs(rows, RATE.concurrentIndex),
        steps: [{ kind: 'concurrent-index', sql: c.sql, index: c.index }],
        notes: c.index ? [] : ['the index has no name: if the build fails, find and drop the INVALID index yourself'],
      };
    }
    case 'drop-index': {
      if (/\bconcurrently\b/i.test(parsed.text) || /\bcascade\b/i.test(parsed.text) || /,/.test(parsed.text)) {
        return { ...base, class: /\bconcurrently\b/i.test(parsed.text) ? 'online' : 'instant', how: 'as written', lock: brief, steps: [{ kind: 'ddl', sql: base.sql }] };
      }
      return { ...base, class: 'online', how: 'rewritten to DROP INDEX CONCURRENTLY', lock: 'SHARE UPDATE EXCLUSIVE: reads and writes continue', steps: [{ kind: 'exec', sql: base.sql.replace(/^(\s*drop\s+index\s+)/i, '$1CONCURRENTLY ') }] };
    }
    case 'alter-table': {
      const classes = parsed.clauses.map((c) => ({ clause: c, k: classifyPgClause(c, stats?.columns) }));
      const p: PlannedStatement = { ...base, estimatedRows: rows, notes: classes.filter((c) => c.k.cls !== 'instant').map((c) => c.k.why) };
      if (classes.every((c) => c.k.cls === 'instant')) {
        return { ...p, class: 'instant', how: 'catalog only, under lock_timeout with retries', lock: brief, estimatedSeconds: 0, steps: [{ kind: 'ddl', sql: base.sql }] };
      }
      if (classes.every((c) => c.k.cls === 'instant' || c.k.cls === 'rewrite' || c.k.cls === 'blocking')) {
        if (big && classes.every((c) => c.k.cls !== 'blocking')) {
          return viaEngine(p, stats!, rows, [{ kind: 'engine', table, alter: parsed.alterBody }]);
        }
        return {
          ...p,
          class: 'blocking',
          how: big ? 'as written (a clause the engine cannot take)' : 'as written, under lock_timeout with retries (table below --online-threshold)',
          lock: `ACCESS EXCLUSIVE for the whole rewrite (~${secs(rows, RATE.blockingRewrite) ?? '?'} s)`,
          estimatedSeconds: secs(rows, RATE.blockingRewrite),
          steps: [{ kind: 'ddl', sql: base.sql }],
        };
      }
      if (classes.length > 1) {
        // Split: each clause becomes its own statement, planned on its own.
        const steps: Step[] = [];
        const hows: string[] = [];
        let cls: StatementClass = 'instant';
        for (const c of classes) {
          const sub = planPostgres({ ...base, sql: `ALTER TABLE ${qt} ${c.clause}` }, parseStatement(`ALTER TABLE ${qt} ${c.clause}`, 'postgres'), stats, ctx, phase);
          steps.push(...sub.steps);
          hows.push(sub.how);
          if (sub.class === 'blocking' || (sub.class === 'online' && cls === 'instant')) cls = sub.class;
        }
        return { ...p, class: cls, how: `split into one statement per clause: ${hows.join('; ')}`, lock: 'per clause (see how)', steps };
      }
      const { clause, k } = classes[0]!;
      if (k.cls === 'validate') {
        return { ...p, class: 'online', how: 'VALIDATE CONSTRAINT', lock: 'SHARE UPDATE EXCLUSIVE: reads and writes continue', estimatedSeconds: secs(rows, RATE.validate), steps: [{ kind: 'ddl', sql: base.sql }] };
      }
      if (k.cls === 'add-constraint') {
        let name = constraintNameOf(clause);
        let body = clause;
        if (!name) {
          const isFk = /foreign\s+key/i.test(clause);
          const cols = /\(([^)]*)\)/.exec(clause)?.[1]?.split(',').map((s) => s.trim().replace(/"/g, '')) ?? [];
          name = `${stats?.name ?? parsed.table ?? 't'}_${isFk ? cols.join('_') + '_fkey' : 'check'}`.slice(0, 63);
          body = clause.replace(/^add\s+/i, `ADD CONSTRAINT ${q(name)} `);
        }
        return {
          ...p,
          class: 'online',
          how: 'ADD ... NOT VALID (brief lock), then VALIDATE CONSTRAINT (reads and writes continue)',
          lock: 'brief ACCESS EXCLUSIVE / SHARE ROW EXCLUSIVE to add; SHARE UPDATE EXCLUSIVE while validating',
          estimatedSeconds: secs(rows, RATE.validate),
          steps: [
            { kind: 'ddl', sql: `ALTER TABLE ${qt} ${body} NOT VALID` },
            { kind: 'ddl', sql: `ALTER TABLE ${qt} VALIDATE CONSTRAINT ${q(name)}` },
          ],
        };
      }
      if (k.cls === 'set-not-null') {
        if (!big) {
          return { ...p, class: 'blocking', how: 'as written (table below --online-threshold: the scan is short)', lock: `ACCESS EXCLUSIVE while scanning (~${secs(rows, RATE.validate) ?? '?'} s)`, estimatedSeconds: secs(rows, RATE.validate), steps: [{ kind: 'ddl', sql: base.sql }] };
        }
        const col = /^alter\s+(?:column\s+)?/i.exec(clause)!;
        const colName = readIdentifier(clause.slice(col[0].length), 'postgres')!.name;
        const check = `${(stats?.name ?? 't').slice(0, 30)}_${colName.slice(0, 20)}_not_null_ss`;
        return {
          ...p,
          class: 'online',
          how: 'through a CHECK (col IS NOT NULL) NOT VALID, VALIDATE, then SET NOT NULL (uses the valid CHECK, no scan) and DROP the CHECK',
          lock: 'brief ACCESS EXCLUSIVE steps; SHARE UPDATE EXCLUSIVE while validating',
          estimatedSeconds: secs(rows, RATE.validate),
          steps: [
            { kind: 'ddl', sql: `ALTER TABLE ${qt} ADD CONSTRAINT ${q(check)} CHECK (${q(colName)} IS NOT NULL) NOT VALID` },
            { kind: 'ddl', sql: `ALTER TABLE ${qt} VALIDATE CONSTRAINT ${q(check)}` },
            { kind: 'ddl', sql: base.sql },
            { kind: 'ddl', sql: `ALTER TABLE ${qt} DROP CONSTRAINT ${q(check)}` },
          ],
        };
      }
      if (k.cls === 'add-unique') {
        const m = /^add\s+(?:constraint\s+(\S+)\s+)?(unique|primary\s+key)\s*\(([^)]*)\)\s*$/i.exec(clause);
        if (!m) {
          return { ...p, class: 'blocking', how: 'as written (the unique clause has a form the planner does not rewrite)', lock: `ACCESS EXCLUSIVE while the index builds (~${secs(rows, RATE.concurrentIndex) ?? '?'} s)`, steps: [{ kind: 'ddl', sql: base.sql }] };
        }
        const cname = m[1] ? readIdentifier(m[1], 'postgres')!.name : `${stats?.name ?? 't'}_${m[3]!.split(',').map((s) => s.trim().replace(/"/g, '')).join('_')}_key`.slice(0, 63);
        const kind = /primary/i.test(m[2]!) ? 'PRIMARY KEY' : 'UNIQUE';
        return {
          ...p,
          class: 'online',
          how: `CREATE UNIQUE INDEX CONCURRENTLY, then ADD CONSTRAINT ... ${kind} USING INDEX`,
          lock: 'SHARE UPDATE EXCLUSIVE while building; ACCESS EXCLUSIVE, brief, to attach',
          estimatedSeconds: secs(rows, RATE.concurrentIndex),
          steps: [
            { kind: 'concurrent-index', sql: `CREATE UNIQUE INDEX CONCURRENTLY ${q(cname)} ON ${qt} (${m[3]})`, index: cname },
            { kind: 'ddl', sql: `ALTER TABLE ${qt} ADD CONSTRAINT ${q(cname)} ${kind} USING INDEX ${q(cname)}` },
          ],
        };
      }
      return { ...p, class: 'blocking', how: 'as written', lock: 'ACCESS EXCLUSIVE', steps: [{ kind: 'ddl', sql: base.sql }] };
    }
    default:
      return { ...base, class: 'blocking', steps: [{ kind: 'exec', sql: base.sql }] };
  }
}
