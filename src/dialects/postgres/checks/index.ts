// The PostgreSQL preflight checks, one per file.

import type { PreflightCheck } from '../../dialect.js';
import type { PgContext } from '../postgres-context.js';
import { walLevelCheck } from './wal-level.js';
import { replicationCapacityCheck } from './replication-capacity.js';
import { notPartitionedCheck } from './not-partitioned.js';
import { hasKeyCheck } from './has-key.js';
import { privilegesCheck } from './privileges.js';

export const POSTGRES_CHECKS: Array<(pg: PgContext) => PreflightCheck> = [
  walLevelCheck,
  replicationCapacityCheck,
  privilegesCheck,
  notPartitionedCheck,
  hasKeyCheck,
];

export function postgresChecks(pg: PgContext): PreflightCheck[] {
  return POSTGRES_CHECKS.map((make) => make(pg));
}
