// Runs the lint rules over migration files.
//
// In a file, comments configure the rules for that file:
//   -- shadowshift-lint-disable rule-id[, rule-id ...]     (no ids: every rule)
//   -- shadowshift-lint-config rule-id=warning|error|off
// The dialect comes from --dialect, else from the path (a directory named
// mysql/mariadb or postgres/postgresql/pg), else both dialects' rules run.

import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join, sep } from 'node:path';
import type { DialectName } from '../dialects/dialect.js';
import { UsageError } from '../util/errors.js';
import { dialectNames, syntaxOf } from '../dialects/registry.js';
import { PHASES, parseSqlPhases } from '../migrations/migration-files.js';
import { parseStatement } from '../migrations/sql-analysis.js';
import { splitStatements } from '../migrations/statement-splitter.js';
import { RULES } from './rules/index.js';
import { checkFor, tableKey, type LintFinding, type LintRule, type LintStatement, type Severity } from './rule.js';

export interface LintOptions {
  /** Dialect of the files; null = from the path, else both. */
  dialect?: DialectName | null;
  /** Estimated rows of a table when a database is at hand. */
  tableRows?: (table: string) => number | null;
  /** Rows from which a table counts as big. */
  bigTableRows?: number;
  rules?: LintRule[];
}

export interface FileLintResult {
  file: string;
  dialects: DialectName[];
  findings: LintFinding[];
  /** Set when the file was not linted (TS migrations), with the reason. */
  skipped?: string;
}

interface FileConfig {
  disabled: Set<string>;
  allDisabled: boolean;
  severity: Map<string, Severity | 'off'>;
}

export function readFileConfig(content: string, rules: LintRule[] = RULES): FileConfig {
  const config: FileConfig = { disabled: new Set(), allDisabled: false, severity: new Map() };
  const known = new Set(rules.map((r) => r.id));
  for (const m of content.matchAll(/--[ \t]*shadowshift-lint-(disable|config)\b([^\n]*)/g)) {
    const args = m[2]!.trim();
    if (m[1] === 'disable') {
      if (!args) config.allDisabled = true;
      for (const id of args.split(/[\s,]+/).filter(Boolean)) {
        if (!known.has(id)) throw new UsageError(`unknown lint rule "${id}" in "-- shadowshift-lint-disable"; known rules: ${[...known].join(', ')}`);
        config.disabled.add(id);
      }
    } else {
      for (const pair of args.split(/[\s,]+/).filter(Boolean)) {
        const [id, level] = pair.split('=');
        if (!id || !known.has(id)) throw new UsageError(`unknown lint rule "${id}" in "-- shadowshift-lint-config"; known rules: ${[...known].join(', ')}`);
        if (level !== 'error' && level !== 'warning' && level !== 'off') {
          throw new UsageError(`"-- shadowshift-lint-config ${pair}": the level must be error, warning or off`);
        }
        config.severity.set(id, level);
      }
    }
  }
  return config;
}

export function dialectFromPath(path: string): DialectName | null {
  const parts = path.toLowerCase().split(/[\\/]/);
  return dialectNames().find((d) => parts.some((p) => syntaxOf(d).pathNames.includes(p))) ?? null;
}

/** Lints SQL text as one migration file. */
export function lintSql(content: string, file: string, options: LintOptions = {}): FileLintResult {
  const rules = options.rules ?? RULES;
  const dialects: DialectName[] = options.dialect ? [options.dialect] : (dialectFromPath(file) ? [dialectFromPath(file)!] : dialectNames());
  const config = readFileConfig(content, rules);
  const phases = parseSqlPhases(content, basename(file));
  const findings: LintFinding[] = [];
  for (const dialect of dialects) {
    const all: LintStatement[] = [];
    for (const phase of PHASES) {
      const text = phases[phase];
      if (!text) continue;
      for (const statement of splitStatements(text.sql, dialect, text.firstLine - 1)) {
        all.push({ phase, statement, parsed: parseStatement(statement.text, dialect) });
      }
    }
    const createdHere = new Set(all.filter((s) => s.parsed.kind === 'create-table').map((s) => tableKey(s.parsed.table)));
    all.forEach((s, position) => {
      for (const rule of rules) {
        const check = rule.dialects.includes(dialect) ? checkFor(rule, dialect) : null;
        if (!check) continue;
        if (config.allDisabled || config.disabled.has(rule.id)) continue;
        const configured = config.severity.get(rule.id);
        if (configured === 'off') continue;
        const hit = check({
          ...s,
          dialect,
          file,
          all,
          position,
          createdHere,
          tableRows: options.tableRows ?? (() => null),
          bigTableRows: options.bigTableRows ?? 100_000,
        });
        if (!hit) continue;
        if (findings.some((f) => f.rule === rule.id && f.line === s.statement.line)) continue;
        findings.push({
          rule: rule.id,
          severity: configured ?? hit.severity ?? rule.severity,
          file,
          line: s.statement.line,
          phase: s.phase,
          message: hit.message,
          reason: rule.reason,
          safeAlternative: rule.safeAlternative,
          statement: s.statement.text.split('\n')[0]!.slice(0, 120),
        });
      }
    });
  }
  findings.sort((a, b) => a.line - b.line || a.rule.localeCompare(b.rule));
  return { file, dialects, findings };
}

export function lintFile(path: string, options: LintOptions = {}): FileLintResult {
  if (path.endsWith('.ts')) {
    return { file: path, dialects: [], findings: [], skipped: 'TS migration: its SQL is built when it runs, so lint cannot read it; `migrate plan` classifies nothing in it either' };
  }
  return lintSql(readFileSync(path, 'utf8'), path, options);
}

/** Files to lint: each path is a .sql/.ts file or a directory searched (not recursively) for them. */
export function collectLintTargets(paths: string[]): string[] {
  const out: string[] = [];
  for (const p of paths) {
    if (!existsSync(p)) throw new UsageError(`${p} does not exist; pass migration files or directories`);
    if (statSync(p).isDirectory()) {
      for (const e of readdirSync(p).sort()) {
        const full = p.endsWith(sep) ? p + e : join(p, e);
        if (statSync(full).isFile() && /\.(sql|ts)$/.test(e) && !e.endsWith('.d.ts')) out.push(full);
      }
    } else {
      out.push(p);
    }
  }
  return out;
}

export function formatFindings(results: FileLintResult[]): string {
  const lines: string[] = [];
  let errors = 0;
  let warnings = 0;
  for (const r of results) {
    if (r.skipped) {
      lines.push(`${r.file}: skipped (${r.skipped})`);
      continue;
    }
    for (const f of r.findings) {
      if (f.severity === 'error') errors++;
      else warnings++;
      lines.push(`${f.file}:${f.line}: ${f.severity} [${f.rule}] ${f.message}`);
      lines.push(`    why: ${f.reason}`);
      lines.push(`    instead: ${f.safeAlternative}`);
    }
  }
  lines.push(`${results.length} file(s) checked: ${errors} error(s), ${warnings} warning(s)`);
  return lines.join('\n');
}
