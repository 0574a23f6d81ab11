// TS migrations: loading a file's definition, what a plan says of its phases
// (code, planned only when it runs), and the `db` handle its phases get, whose
// DDL and backfills go through the same executor as SQL files' statements.

import { pathToFileURL } from 'node:url';
import { UsageError } from '../util/errors.js';
import { definedPhases, validateDefinition, type BackfillSpec, type MigrationDb, type MigrationDefinition } from './define-migration.js';
import type { MigrationExecutor } from './executor.js';
import type { MigrationFile, Phase } from './migration-files.js';
import type { HistoryRecord } from './migration-store.js';
import type { PlannedStatement } from './planner.js';
import { splitStatements } from './statement-splitter.js';

export async function loadDefinition(f: MigrationFile): Promise<MigrationDefinition> {
  let mod: { default?: unknown };
  try {
    const { tsImport } = await import('tsx/esm/api');
    mod = (await tsImport(pathToFileURL(f.path).href, import.meta.url)) as { default?: unknown };
  } catch (err) {
    throw new UsageError(`${f.file}: cannot load the TS migration: ${(err as Error).message}`);
  }
  const def = (mod.default as { default?: unknown } | undefined)?.default ?? mod.default;
  validateDefinition(def, f.file);
  return def;
}

export async function planTsPhases(f: MigrationFile, phases: Phase[]): Promise<Array<{ phase: Phase; statements: PlannedStatement[]; note: string }>> {
  const def = await loadDefinition(f);
  const have = definedPhases(def);
  const ops = (def.operations ?? []).map((o) => o.description);
  return phases
    .filter((p) => have.has(p))
    .map((phase) => ({ phase, statements: [], note: `TS migration: code runs here${ops.length ? ` (operations: ${ops.join('; ')})` : ''}; its DDL is planned when it runs` }));
}

/** The `db` of a TS migration's phase; `track` is told each statement, to name the one that failed. */
export function migrationDb(executor: MigrationExecutor, rec: HistoryRecord, track: (sql: string) => void): MigrationDb {
  const { store, planner } = executor;
  return {
    dialect: store.dialect,
    log: executor.log,
    query: async <T = Record<string, unknown>>(sql: string, params?: unknown[]) => {
      track(sql);
      return store.query<T>(sql, params);
    },
    exec: async (sql, params) => {
      track(sql);
      return store.exec(sql, params);
    },
    param: (i) => store.placeholder(i),
    quote: (name) => store.quoteIdent(name),
    async ddl(sql) {
      track(sql);
      planner.forgetTables();
      const [planned] = await planner.statements(splitStatements(sql, store.dialect), 'expand');
      if (!planned) return;
      const ran = await executor.runSteps(planned, rec, 0);
      executor.progress(`    ${planned.class}: ${ran}: ${sql.split('\n')[0]}`);
      planner.forgetTables();
    },
    async backfill(spec: BackfillSpec) {
      const stats = await store.tableStats(spec.table);
      if (!stats) throw new UsageError(`backfill: table ${spec.table} does not exist`);
      if (stats.primaryKey.length === 0) throw new UsageError(`backfill: ${spec.table} has no primary key to walk in batches`);
      const table = `${stats.schema}.${stats.name}`;
      const head = `UPDATE ${store.quoteIdent(stats.schema)}.${store.quoteIdent(stats.name)} SET ${spec.set}`;
      track(`${head}${spec.where ? ` WHERE ${spec.where}` : ''}`);
      const id = `ts:${spec.id ?? `${spec.table}:${spec.set}`}`;
      const { result } = await executor.resumableBackfill(rec, id, { table, key: stats.primaryKey, head, where: spec.where ?? null }, { batchSize: spec.batchSize, silenceSyncTriggers: spec.silenceSyncTriggers });
      return result;
    },
    table: (name) => store.tableStats(name),
    async atomically(table, statements) {
      for (const s of statements) track(s);
      await store.runAtomically(table, statements, executor.ddlOptions());
    },
    syncTriggers: (spec) => store.syncTriggers(spec),
  };
}
