// Plans of whole migration files for up, contract, down and `migrate plan`:
// each statement classified by the planner against table sizes read once and
// kept until statements run, then linted with those sizes known.

import type { LintFinding } from '../lint/rule.js';
import { lintSql } from '../lint/lint-runner.js';
import type { MigrationFile, Phase } from './migration-files.js';
import type { MigrationStore, TableStats } from './migration-store.js';
import { planPhase, type OnlineThreshold, type PlannedStatement } from './planner.js';
import { splitStatements, type SqlStatement } from './statement-splitter.js';
import { planTsPhases } from './ts-migrations.js';

export interface PlannedMigration {
  version: string;
  name: string;
  file: string;
  kind: 'sql' | 'ts';
  phases: Array<{ phase: Phase; statements: PlannedStatement[]; note?: string }>;
  /** Where a previous run stopped, when resuming. */
  resume: string | null;
}

export class FilePlanner {
  private tables = new Map<string, TableStats | null>();

  constructor(
    private readonly store: MigrationStore,
    private readonly threshold: OnlineThreshold,
  ) {}

  /** Statements ran (or are about to, after others): the sizes and shapes read so far may be stale. */
  forgetTables(): void {
    this.tables.clear();
  }

  private async stats(table: string): Promise<TableStats | null> {
    if (!this.tables.has(table)) this.tables.set(table, await this.store.tableStats(table));
    return this.tables.get(table)!;
  }

  statements(statements: SqlStatement[], phase: Phase): Promise<PlannedStatement[]> {
    return planPhase(statements, phase, { dialect: this.store.dialect, stats: (t) => this.stats(t), threshold: this.threshold });
  }

  async file(f: MigrationFile, phases: Phase[], resume: string | null = null): Promise<PlannedMigration> {
    const out: PlannedMigration = { version: f.version, name: f.name, file: f.file, kind: f.kind, phases: [], resume };
    if (f.kind === 'ts') {
      out.phases = await planTsPhases(f, phases);
      return out;
    }
    // Plan first (fills the table cache), then lint with the sizes known.
    for (const p of phases) {
      const text = f.phases[p];
      if (!text) continue;
      const statements = splitStatements(text.sql, this.store.dialect, text.firstLine - 1);
      out.phases.push({ phase: p, statements: await this.statements(statements, p) });
    }
    const lint = this.lintOf(f);
    for (const ph of out.phases) for (const s of ph.statements) s.lint = lint.filter((l) => l.line === s.line);
    return out;
  }

  private lintOf(f: MigrationFile): LintFinding[] {
    if (f.kind !== 'sql') return [];
    try {
      return lintSql(f.content, f.file, {
        dialect: this.store.dialect,
        bigTableRows: Number.isFinite(this.threshold.rows) ? this.threshold.rows : 100_000,
        tableRows: (t) => this.tables.get(t)?.rows ?? null,
      }).findings.filter((l) => l.rule !== 'missing-lock-timeout'); // the runner sets lock timeouts itself
    } catch (err) {
      return [{ rule: 'lint', severity: 'warning', file: f.file, line: 1, phase: 'expand', message: (err as Error).message, reason: '', safeAlternative: '', statement: '' }];
    }
  }
}
