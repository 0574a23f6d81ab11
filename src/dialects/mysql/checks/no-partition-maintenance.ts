import type { PreflightCheck } from '../../dialect.js';

// Partition maintenance works on the partitions a table has, not on its definition: a
// shadow would gain nothing, and DROP/TRUNCATE PARTITION delete rows on purpose, which a
// copy followed by the binlog's row events would not reproduce (the shadow gets the rows).
export function noPartitionMaintenanceCheck(): PreflightCheck {
  return {
    name: 'no-partition-maintenance',
    phase: 'alter',
    async run(ctx) {
      const clause = ctx.alter?.partitionMaintenance;
      if (clause === undefined) return { ok: true, message: 'the ALTER maintains no partitions' };
      return {
        ok: false,
        message:
          `the ALTER maintains partitions ("${clause}"): that is no change of the table's definition for a shadow table to carry, ` +
          'and DROP/TRUNCATE PARTITION delete rows, which the copy would not reproduce. Run it as a plain ALTER TABLE (InnoDB does most partition ' +
          'operations in place or in its metadata), and leave it out of --alter; PARTITION BY and REMOVE PARTITIONING can go through shadowshift.',
      };
    },
  };
}
