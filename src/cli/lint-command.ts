// `shadowshift lint [paths..]`: checks migration files for statements that
// would hurt a running application. Exit 0: no errors (warnings allowed);
// 1: at least one error; 2: bad input.

import type { Argv } from 'yargs';
import { parseConnectionUrl, resolveUrl } from '../util/connection-url.js';
import { UsageError } from '../util/errors.js';
import type { DialectName } from '../dialects/dialect.js';
import { dialectNames } from '../dialects/registry.js';
import { collectLintTargets, dialectFromPath, formatFindings, lintFile } from '../lint/lint-runner.js';
import { RULES } from '../lint/rules/index.js';
import { openMigrationStore, type MigrationStore } from '../migrations/migration-store.js';
import { parseSqlPhases, PHASES } from '../migrations/migration-files.js';
import { parseStatement } from '../migrations/sql-analysis.js';
import { splitStatements } from '../migrations/statement-splitter.js';
import { DEFAULT_ONLINE_THRESHOLD, parseOnlineThreshold } from '../migrations/planner.js';
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';

export function lintBuilder(y: Argv) {
  return y
    .positional('paths', { type: 'string', array: true, describe: 'migration files or directories (default: migrations)' })
    .option('dialect', { choices: dialectNames(), describe: 'dialect of the files (default: from a mysql/ or postgres/ directory in the path, else every dialect)' })
    .option('format', { choices: ['text', 'json'] as const, default: 'text' as const, describe: 'output format' })
    .option('url', { type: 'string', describe: 'optional: read table sizes from this database, so size-dependent rules know which tables are big' })
    .option('online-threshold', { type: 'string', describe: 'rows from which a table counts as big [default: 100000]' })
    .option('list-rules', { type: 'boolean', default: false, describe: 'print every rule with its reason and safe alternative' });
}

type LintArgs = Awaited<ReturnType<typeof lintBuilder>['argv']>;

export async function lintCommand(args: LintArgs): Promise<number> {
  if (args.listRules) {
    const rules = RULES.map((r) => ({ id: r.id, dialects: r.dialects, severity: r.severity, reason: r.reason, safeAlternative: r.safeAlternative }));
    process.stdout.write(
      (args.format === 'json'
        ? JSON.stringify({ rules })
        : rules.map((r) => `${r.id} (${r.dialects.join(', ')}; ${r.severity})\n    why: ${r.reason}\n    instead: ${r.safeAlternative}`).join('\n')) + '\n',
    );
    return 0;
  }
  const paths = (args.paths as string[] | undefined)?.length ? (args.paths as string[]) : ['migrations'];
  const targets = collectLintTargets(paths);
  if (targets.length === 0) throw new UsageError(`no .sql or .ts files in ${paths.join(', ')}`);
  const threshold = args.onlineThreshold ? parseOnlineThreshold(args.onlineThreshold) : DEFAULT_ONLINE_THRESHOLD;
  const bigTableRows = Number.isFinite(threshold.rows) ? threshold.rows : DEFAULT_ONLINE_THRESHOLD.rows;
  const sizes = new Map<string, number | null>();
  let store: MigrationStore | null = null;
  let urlDialect: DialectName | null = null;
  if (args.url || process.env.SHADOWSHIFT_URL) {
    const config = parseConnectionUrl(resolveUrl({ url: args.url }));
    urlDialect = config.dialect;
    try {
      store = await openMigrationStore(config);
    } catch (err) {
      // Sizes only sharpen one rule; lint still runs without them.
      process.stderr.write(`shadowshift lint: cannot connect to ${config.redacted} (${(err as Error).message}); table sizes unknown, size-dependent rules report warnings\n`);
    }
  }
  try {
    const results = [];
    for (const file of targets) {
      const dialect = (args.dialect as DialectName | undefined) ?? dialectFromPath(file) ?? urlDialect;
      if (store && file.endsWith('.sql') && (!dialect || dialect === store.dialect)) {
        const phases = parseSqlPhases(readFileSync(file, 'utf8'), basename(file));
        for (const p of PHASES) {
          const text = phases[p];
          if (!text) continue;
          for (const st of splitStatements(text.sql, store.dialect)) {
            const t = parseStatement(st.text, store.dialect).table;
            if (t && !sizes.has(t)) sizes.set(t, (await store.tableStats(t))?.rows ?? null);
          }
        }
      }
      results.push(lintFile(file, { dialect, bigTableRows, tableRows: (t) => sizes.get(t) ?? null }));
    }
    const errors = results.reduce((n, r) => n + r.findings.filter((f) => f.severity === 'error').length, 0);
    const warnings = results.reduce((n, r) => n + r.findings.filter((f) => f.severity === 'warning').length, 0);
    if (args.format === 'json') {
      process.stdout.write(JSON.stringify({ files: results, errors, warnings }) + '\n');
    } else {
      process.stdout.write(formatFindings(results) + '\n');
    }
    return errors > 0 ? 1 : 0;
  } finally {
    await store?.close();
  }
}
