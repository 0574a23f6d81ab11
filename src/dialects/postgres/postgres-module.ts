// What the registry loads for PostgreSQL.

import type { DialectModule } from '../registry.js';
import { postgresDialect } from './postgres-dialect.js';
import { openPostgresMigrationStore } from './postgres-migration-store.js';
import { postgresPlanner } from './postgres-planner.js';
import { postgresSyntax } from './postgres-syntax.js';

export const postgresModule: DialectModule = {
  syntax: postgresSyntax,
  factory: postgresDialect,
  openMigrationStore: openPostgresMigrationStore,
  planner: postgresPlanner,
};
