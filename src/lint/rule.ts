// The shape of one lint rule and of what it reports. One rule a file under rules/.

import type { DialectName } from '../dialects/dialect.js';
import type { Phase } from '../migrations/migration-files.js';
import type { ParsedStatement } from '../migrations/sql-analysis.js';
import type { SqlStatement } from '../migrations/statement-splitter.js';

export type Severity = 'error' | 'warning';

export interface LintStatement {
  phase: Phase;
  statement: SqlStatement;
  parsed: ParsedStatement;
}

export interface LintContext extends LintStatement {
  dialect: DialectName;
  file: string;
  /** Every statement of the file in order (for rules that look around, e.g. a lock timeout set earlier). */
  all: LintStatement[];
  /** Position of this statement in `all`. */
  position: number;
  /** Tables the file itself creates: empty, so index/constraint rules do not apply to them. */
  createdHere: Set<string>;
  /** Estimated rows of a table, when lint runs with a database (--url); null when unknown. */
  tableRows(table: string): number | null;
  /** Rows from which a table counts as big (the planner's --online-threshold). */
  bigTableRows: number;
}

export type LintCheck = (ctx: LintContext) => { message: string; severity?: Severity } | null;

export interface LintRule {
  id: string;
  dialects: DialectName[];
  severity: Severity;
  /** Why the pattern hurts a running application. */
  reason: string;
  /** What to write instead. */
  safeAlternative: string;
  /**
   * A message when the rule fires on this statement, else null. `severity` may be lowered
   * for this case. One check per dialect where the grammar differs (one rule id, each
   * dialect's way of writing the same hazard), so no check branches on a dialect's name.
   */
  check: LintCheck | Partial<Record<DialectName, LintCheck>>;
}

/** The rule's check for `dialect`, or null when it has none there. */
export function checkFor(rule: LintRule, dialect: DialectName): LintCheck | null {
  return typeof rule.check === 'function' ? rule.check : (rule.check[dialect] ?? null);
}

export interface LintFinding {
  rule: string;
  severity: Severity;
  file: string;
  line: number;
  phase: Phase;
  message: string;
  reason: string;
  safeAlternative: string;
  /** The first line of the statement, for context. */
  statement: string;
}

export function tableKey(name: string | null): string {
  return (name ?? '').toLowerCase();
}
