// What the registry loads for MySQL/MariaDB.

import type { DialectModule } from '../registry.js';
import { mysqlDialect } from './mysql-dialect.js';
import { openMysqlMigrationStore } from './mysql-migration-store.js';
import { mysqlPlanner } from './mysql-planner.js';
import { mysqlSyntax } from './mysql-syntax.js';

export const mysqlModule: DialectModule = {
  syntax: mysqlSyntax,
  factory: mysqlDialect,
  openMigrationStore: openMysqlMigrationStore,
  planner: mysqlPlanner,
};
