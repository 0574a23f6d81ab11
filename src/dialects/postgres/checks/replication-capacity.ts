import type { PreflightCheck } from '../../dialect.js';
import type { PgContext } from '../postgres-context.js';

export function replicationCapacityCheck(pg: PgContext): PreflightCheck {
  return {
    name: 'replication-capacity',
    phase: 'connect',
    async run() {
      const r = await pg.pool.query<{ max_slots: string; slots: string; max_senders: string; senders: string }>(
        `SELECT current_setting('max_replication_slots') AS max_slots, (SELECT count(*) FROM pg_replication_slots)::text AS slots,
                current_setting('max_wal_senders') AS max_senders, (SELECT count(*) FROM pg_stat_replication)::text AS senders`,
      );
      const row = r.rows[0]!;
      const problems: string[] = [];
      if (Number(row.slots) >= Number(row.max_slots)) {
        problems.push(
          `all ${row.max_slots} replication slots are taken (max_replication_slots). Drop an unused slot (SELECT pg_drop_replication_slot(name) FROM pg_replication_slots WHERE NOT active; check \`shadowshift cleanup\` first) or raise max_replication_slots and restart`,
        );
      }
      if (Number(row.senders) >= Number(row.max_senders)) {
        problems.push(`all ${row.max_senders} WAL senders are busy (max_wal_senders). Raise max_wal_senders and restart, or wait for a replication client to disconnect`);
      }
      return problems.length ? { ok: false, message: problems.join('; ') + '.' } : { ok: true, message: 'a replication slot and a WAL sender are free' };
    },
  };
}
