// The public API for TS migrations: `import { defineMigration, renameColumn,
// changeColumnType } from 'shadowshift/migrations'`, plus the runner for
// programmatic use.

export { defineMigration, renameColumn, changeColumnType } from './define-migration.js';
export type { MigrationDb, MigrationDefinition, Operation, PhaseFunction, BackfillSpec } from './define-migration.js';
export { MigrationRunner } from './runner.js';
export type { RunnerOptions } from './runner.js';
export { newMigrationFile } from './templates.js';
export type { CommandReport } from './commands.js';
export type { MigrationStatus } from './history.js';
export type { PlannedMigration } from './plan-files.js';
export { parseOnlineThreshold, DEFAULT_ONLINE_THRESHOLD } from './planner.js';
export type { PlannedStatement, StatementClass, OnlineThreshold } from './planner.js';
