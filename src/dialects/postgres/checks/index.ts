// The PostgreSQL preflight checks, one per file.

import type { PreflightCheck } from '../../dialect.js';
import type { PgContext } from '../postgres-context.js';
import { walLevelCheck } from './wal-level.js';
import { replicationCapacityCheck } from './replication-capacity.js';
import { notPartitionedCheck } from './not-partitioned.js';
import { hasKeyCheck } from './has-key.js';
import { privilegesCheck } from './privileges.js';
import { alterSupportedCheck } from './alter-supported.js';
import { loggedTableCheck } from './logged-table.js';
import { replicaIdentityCheck } from './replica-identity.js';
import { dependentsCheck } from './dependents.js';

export const POSTGRES_CHECKS: Array<(pg: PgContext) => PreflightCheck> = [
  walLevelCheck,
  replicationCapacityCheck,
  privilegesCheck,
  notPartitionedCheck,
  hasKeyCheck,
  alterSupportedCheck,
  loggedTableCheck,
  replicaIdentityCheck,
  dependentsCheck,
];

export function postgresChecks(pg: PgContext): PreflightCheck[] {
  return POSTGRES_CHECKS.map((make) => make(pg));
}
