// The PostgreSQL preflight checks, one per file.

import type { PreflightCheck } from '../../dialect.js';
import type { PgContext } from '../postgres-context.js';
import { serverVersionCheck } from './server-version.js';
import { walLevelCheck } from './wal-level.js';
import { replicationCapacityCheck } from './replication-capacity.js';
import { notPartitionedCheck } from './not-partitioned.js';
import { hasKeyCheck } from './has-key.js';
import { privilegesCheck } from './privileges.js';
import { alterSupportedCheck } from './alter-supported.js';
import { loggedTableCheck } from './logged-table.js';
import { replicaIdentityCheck } from './replica-identity.js';
import { dependentsCheck } from './dependents.js';
import { noLeftoversCheck } from './no-leftovers.js';
import { newIndexNamesCheck } from './new-index-names.js';

export const POSTGRES_CHECKS: Array<(pg: PgContext) => PreflightCheck> = [
  // First: on an older server the other checks' catalog queries may fail.
  serverVersionCheck,
  walLevelCheck,
  replicationCapacityCheck,
  privilegesCheck,
  notPartitionedCheck,
  hasKeyCheck,
  alterSupportedCheck,
  loggedTableCheck,
  replicaIdentityCheck,
  dependentsCheck,
  noLeftoversCheck,
  newIndexNamesCheck,
];

export function postgresChecks(pg: PgContext): PreflightCheck[] {
  return POSTGRES_CHECKS.map((make) => make(pg));
}
