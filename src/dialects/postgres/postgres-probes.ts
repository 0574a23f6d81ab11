// Read-only signals for the throttler on PostgreSQL (plus the heartbeat row the job
// writes on the primary so each standby's lag can be read on the standby).
//
// Heartbeat: one small table per schema, shared by every job in it,
//   _shadowshift_heartbeat (job_id varchar(64) PRIMARY KEY, beat_at timestamptz NOT NULL)
// Each job upserts its own row with clock_timestamp(). On a standby, the lag is
// clock_timestamp() minus the beat_at it has replayed: while replay is paused or slow
// the row stays old and the lag grows. Clocks are assumed in sync (NTP).
//
// Gotcha: a FOR ALL TABLES publication of someone else's also publishes this table.

import pg from 'pg';
import type { ArtefactNames, LoadProbes } from '../dialect.js';
import { clientConfigFor, type PgContext } from './postgres-context.js';
import { parseConnectionUrl, type ConnectionConfig } from '../../util/connection-url.js';
import { ShadowshiftError } from '../../util/errors.js';
import { HeartbeatWriter } from '../heartbeat-writer.js';

export const HEARTBEAT_TABLE = '_shadowshift_heartbeat';

/** Status values --max-load / --critical-load can name on PostgreSQL (server-wide, client backends). */
const STATUS_SQL: Record<string, string> = {
  active_backends: `SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND backend_type = 'client backend' AND pid <> pg_backend_pid()`,
  total_backends: `SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'`,
  waiting_backends: `SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'`,
  longest_transaction_seconds: `SELECT coalesce(max(extract(epoch FROM clock_timestamp() - xact_start)), 0) FROM pg_stat_activity WHERE xact_start IS NOT NULL AND backend_type = 'client backend' AND pid <> pg_backend_pid()`,
};

export const POSTGRES_STATUS_NAMES = Object.keys(STATUS_SQL);

/** What the probes need of a replica connection (a pg.Client fits). */
export interface PgReplicaConnection {
  query(text: string, values?: unknown[]): Promise<{ rows: Array<Record<string, unknown>> }>;
  end(): Promise<void>;
  on?(event: 'error', listener: (err: Error) => void): unknown;
}

export interface PostgresProbeOptions {
  /** Key of the job's heartbeat row (at most 64 characters). */
  jobId: string;
  /** Schema of the heartbeat table (the job's table's schema); default `public`. */
  schema?: string;
  /** The job's replication slot, for streamRetainedBytes(); without it that probe returns null. */
  slotName?: string | null;
  /** How to open a connection to a replica; defaults to pg with the URL's user, password and TLS options. */
  connectReplica?: (config: ConnectionConfig) => Promise<PgReplicaConnection>;
}

const UNDEFINED_TABLE = '42P01';
const UNIQUE_VIOLATION = '23505';

function quote(name: string): string {
  return '"' + name.replace(/"/g, '""') + '"';
}

function toNumber(v: unknown, what: string): number {
  if (v === null || v === undefined) return 0;
  const text = Buffer.isBuffer(v) ? v.toString('utf8') : typeof v === 'boolean' ? (v ? '1' : '0') : String(v);
  const n = Number(text.trim());
  if (text.trim() === '' || !Number.isFinite(n)) throw new ShadowshiftError(`${what} returned "${text}", which is not a number`);
  return n;
}

async function defaultConnectReplica(config: ConnectionConfig): Promise<PgReplicaConnection> {
  const client = new pg.Client({ ...clientConfigFor(config), application_name: 'shadowshift-lag' });
  // A replica connection that drops must not emit an unhandled 'error'; its next query fails instead.
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

export function createPostgresProbes(pool: pg.Pool, opts: PostgresProbeOptions): LoadProbes {
  if (opts.jobId.length > 64) throw new ShadowshiftError(`job id "${opts.jobId}" is longer than 64 characters`);
  const table = `${quote(opts.schema ?? 'public')}.${quote(HEARTBEAT_TABLE)}`;
  const connect = opts.connectReplica ?? defaultConnectReplica;
  const replicas = new Map<string, Promise<PgReplicaConnection>>();

  const createTable = async () => {
    try {
      await pool.query(`CREATE TABLE IF NOT EXISTS ${table} (job_id varchar(64) PRIMARY KEY, beat_at timestamptz NOT NULL)`);
    } catch (err) {
      // Two jobs creating it at the same moment: the loser sees a unique violation on pg_type.
      if ((err as { code?: string }).code !== UNIQUE_VIOLATION) throw err;
    }
  };
  const heartbeat = new HeartbeatWriter({
    createTable,
    beat: () =>
      pool
        .query(`INSERT INTO ${table} (job_id, beat_at) VALUES ($1, clock_timestamp()) ON CONFLICT (job_id) DO UPDATE SET beat_at = excluded.beat_at`, [opts.jobId])
        .then(() => undefined),
    isMissingTable: (err) => (err as { code?: string }).code === UNDEFINED_TABLE,
  });

  async function replica(url: string): Promise<PgReplicaConnection> {
    let p = replicas.get(url);
    if (!p) {
      p = connect(parseConnectionUrl(url));
      const mine = p;
      replicas.set(url, mine);
      mine.then(
        (c) =>
          c.on?.('error', () => {
            if (replicas.get(url) === mine) replicas.delete(url);
          }),
        () => {
          if (replicas.get(url) === mine) replicas.delete(url);
        },
      );
    }
    return p;
  }

  return {
    async readStatus(names: string[]): Promise<Record<string, number>> {
      const out: Record<string, number> = {};
      for (const name of names) {
        const sql = STATUS_SQL[name.toLowerCase()];
        if (!sql) {
          throw new ShadowshiftError(`unknown PostgreSQL status "${name}" for --max-load/--critical-load; use one of ${POSTGRES_STATUS_NAMES.join(', ')}`);
        }
        const r = await pool.query({ text: sql, rowMode: 'array' });
        out[name] = toNumber(r.rows[0]?.[0], `status ${name}`);
      }
      return out;
    },

    async throttleQueryValue(sql: string): Promise<number> {
      const r = await pool.query({ text: sql, rowMode: 'array' });
      const first = Array.isArray(r) ? r[0] : r; // several statements: the first result
      return toNumber((first as pg.QueryResult<unknown[]>).rows?.[0]?.[0], '--throttle-query');
    },

    async writeHeartbeat(): Promise<void> {
      await heartbeat.write();
    },

    /**
     * The larger of: the age of this job's heartbeat as replayed on the standby, and
     * (while received WAL waits to be replayed) the age of the last replayed
     * transaction. Either alone grows while replay is paused.
     */
    async replicaLagSeconds(url: string): Promise<number> {
      const redacted = parseConnectionUrl(url).redacted;
      const c = await replica(url);
      try {
        const state = await c.query(
          `SELECT CASE WHEN pg_is_in_recovery() THEN 'yes' ELSE 'no' END AS standby,
                  CASE WHEN pg_last_wal_receive_lsn() IS NOT NULL AND pg_last_wal_receive_lsn() > pg_last_wal_replay_lsn()
                       THEN extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp())::text END AS replay_lag`,
        );
        let heartbeat: string | null = null;
        let found = false;
        try {
          const r = await c.query(`SELECT extract(epoch FROM clock_timestamp() - beat_at)::text AS lag FROM ${table} WHERE job_id = $1`, [opts.jobId]);
          if (r.rows.length) {
            found = true;
            heartbeat = r.rows[0]!.lag as string | null;
          }
        } catch (err) {
          // The table has not reached this standby yet.
          if ((err as { code?: string }).code !== UNDEFINED_TABLE) throw err;
        }
        const replay = state.rows[0]?.replay_lag as string | null | undefined;
        if (!found && (replay === null || replay === undefined)) {
          if (state.rows[0]?.standby !== 'yes') {
            throw new ShadowshiftError(`${redacted} is not a standby and has no heartbeat of this job; check --throttle-replicas`);
          }
          throw new ShadowshiftError(`no heartbeat of this job has been replayed on ${redacted} yet`);
        }
        const values = [heartbeat, replay].filter((v): v is string => v !== null && v !== undefined).map(Number);
        return Math.max(0, ...values);
      } catch (err) {
        // A broken connection is reopened on the next read.
        if (!(err instanceof ShadowshiftError) && (err as { code?: string }).code === undefined) {
          replicas.delete(url);
          await c.end().catch(() => undefined);
        }
        throw err;
      }
    },

    /**
     * WAL the job's slot keeps on the server's disk: from the slot's restart_lsn to the
     * current end of WAL. This is what fills the disk, so it is measured rather than
     * the (usually smaller) distance to confirmed_flush_lsn: restart_lsn also stays
     * behind while any transaction older than the confirmed point is still open.
     * Measured to the insert position: with synchronous_commit=off the write position
     * can trail what has been inserted by megabytes.
     */
    async streamRetainedBytes(): Promise<number | null> {
      if (!opts.slotName) return null;
      const r = await pool.query<{ b: string | null }>(
        `SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), coalesce(restart_lsn, confirmed_flush_lsn))::text AS b FROM pg_replication_slots WHERE slot_name = $1`,
        [opts.slotName],
      );
      const b = r.rows[0]?.b;
      return b === null || b === undefined ? null : Number(b);
    },

    async close(): Promise<void> {
      const conns = [...replicas.values()];
      replicas.clear();
      for (const p of conns) await p.then((c) => c.end()).catch(() => undefined);
      if (!(await heartbeat.close())) return;
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        await client.query(`SET LOCAL lock_timeout = '5s'`);
        // The strongest lock first, so two jobs finishing together cannot deadlock on an upgrade.
        await client.query(`LOCK TABLE ${table} IN ACCESS EXCLUSIVE MODE`);
        await client.query(`DELETE FROM ${table} WHERE job_id = $1`, [opts.jobId]);
        const left = await client.query(`SELECT 1 FROM ${table} LIMIT 1`);
        if (left.rows.length === 0) await client.query(`DROP TABLE ${table}`);
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        if ((err as { code?: string }).code !== UNDEFINED_TABLE) throw err;
      } finally {
        client.release();
      }
    },
  };
}

/** The probes of one job of a PostgresSession (what `openProbes` returns). */
export class PostgresProbes implements LoadProbes {
  private readonly probes: LoadProbes;

  constructor(ctx: PgContext, names: ArtefactNames) {
    this.probes = createPostgresProbes(ctx.pool, {
      jobId: names.extra.tag ?? names.shadow,
      schema: names.extra.schema ?? 'public',
      slotName: names.extra.slot ?? null,
    });
  }

  readStatus(names: string[]): Promise<Record<string, number>> {
    return this.probes.readStatus(names);
  }
  throttleQueryValue(sql: string): Promise<number> {
    return this.probes.throttleQueryValue(sql);
  }
  writeHeartbeat(): Promise<void> {
    return this.probes.writeHeartbeat();
  }
  replicaLagSeconds(url: string): Promise<number> {
    return this.probes.replicaLagSeconds(url);
  }
  streamRetainedBytes(): Promise<number | null> {
    return this.probes.streamRetainedBytes();
  }
  close(): Promise<void> {
    return this.probes.close();
  }
}
