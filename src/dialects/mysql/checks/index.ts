// The MySQL/MariaDB preflight checks, one per file, each with the phase it runs in.

import type { PreflightCheck } from '../../dialect.js';
import type { MyContext } from '../mysql-context.js';
import { logBinCheck } from './log-bin.js';
import { binlogFormatCheck } from './binlog-format.js';
import { binlogRowImageCheck } from './binlog-row-image.js';
import { binlogRowMetadataCheck } from './binlog-row-metadata.js';
import { binlogDecodableCheck } from './binlog-decodable.js';
import { privilegesCheck } from './privileges.js';
import { tableExistsCheck } from './table-exists.js';
import { foreignKeysCheck } from './foreign-keys.js';
import { triggersCheck } from './triggers.js';
import { hasKeyCheck } from './has-key.js';
import { noTableRenameCheck } from './no-table-rename.js';
import { noPartitionMaintenanceCheck } from './no-partition-maintenance.js';
import { sharedKeyCheck } from './shared-key.js';
import { cutoverNamesCheck } from './cutover-names.js';
import { timeZonesCheck } from './time-zones.js';
import { cutoverBackupVisibilityCheck } from './cutover-backup-visibility.js';
import { noLeftoversCheck } from './no-leftovers.js';
import { redoLogSizeCheck } from './redo-log-size.js';

export function mysqlChecks(ctx: MyContext, flavor: 'mariadb' | 'mysql'): PreflightCheck[] {
  return [
    logBinCheck(ctx),
    binlogFormatCheck(ctx),
    binlogRowImageCheck(ctx),
    binlogRowMetadataCheck(ctx),
    binlogDecodableCheck(ctx),
    privilegesCheck(ctx, flavor),
    cutoverBackupVisibilityCheck(ctx, flavor),
    tableExistsCheck(),
    foreignKeysCheck(ctx, flavor),
    triggersCheck(ctx, flavor),
    hasKeyCheck(),
    cutoverNamesCheck(),
    noTableRenameCheck(),
    noPartitionMaintenanceCheck(),
    noLeftoversCheck(ctx),
    sharedKeyCheck(),
    timeZonesCheck(ctx),
    redoLogSizeCheck(ctx),
  ];
}
