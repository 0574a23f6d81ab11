// Read-only signals for the throttler on MySQL/MariaDB (plus the heartbeat row the
// job writes on the primary so each replica's lag can be read from the replica).
//
// Heartbeat: one small table per database, shared by every job in it,
//   _shadowshift_heartbeat (job_id VARCHAR(64) PRIMARY KEY, beat_at DATETIME(6) NOT NULL)
// Each job REPLACEs its own row with UTC_TIMESTAMP(6). A replica's lag is its own
// UTC_TIMESTAMP(6) minus the beat_at it has applied: while the replica's apply is
// stopped or slow, the row stays old and the lag grows. Primary and replica clocks
// are assumed to be in sync (NTP), as for pt-heartbeat and gh-ost.

import mysql from 'mysql2/promise';
import type { LoadProbes } from '../dialect.js';
import { parseConnectionUrl, type ConnectionConfig } from '../../util/connection-url.js';
import { ShadowshiftError } from '../../util/errors.js';
import { connectionOptionsFor } from './mysql-context.js';
import { HeartbeatWriter } from '../heartbeat-writer.js';
import { quoteIdent } from './mysql-quote.js';

export const HEARTBEAT_TABLE = '_shadowshift_heartbeat';

/** The subset of a mysql2 promise connection the replica reads need. */
export interface ReplicaConnection {
  query(options: mysql.QueryOptions, values?: unknown[]): Promise<[unknown, unknown]>;
  end(): Promise<void>;
}

export interface MysqlProbeOptions {
  /** Key of the job's heartbeat row (at most 64 characters). */
  jobId: string;
  /** Database the heartbeat table lives in (the job's table's database), on the primary and on every replica. */
  schema: string;
  /** How to open a connection to a replica; defaults to mysql2 with the URL's user, password and TLS options. */
  connectReplica?: (config: ConnectionConfig) => Promise<ReplicaConnection>;
}

const ER_NO_SUCH_TABLE = 1146;
const ER_PARSE_ERROR = 1064;


async function defaultConnectReplica(config: ConnectionConfig): Promise<ReplicaConnection> {
  const conn = await mysql.createConnection({ ...connectionOptionsFor(config), connectTimeout: 5000 });
  return conn as unknown as ReplicaConnection;
}

/** A value from a result row as text, without a detour through a JS number or Date. */
function asText(v: unknown): string | null {
  if (v === null || v === undefined) return null;
  if (Buffer.isBuffer(v)) return v.toString('utf8');
  if (v instanceof Date) return String(v.getTime());
  return String(v);
}

function toNumber(v: unknown, what: string): number {
  const text = asText(v);
  if (text === null) return 0;
  const n = Number(text.trim());
  if (text.trim() === '' || !Number.isFinite(n)) throw new ShadowshiftError(`${what} returned "${text}", which is not a number`);
  return n;
}

/** Microseconds as exact decimal text to seconds. */
function microsToSeconds(text: string): number {
  return Number(BigInt(text)) / 1e6;
}

export function createMysqlProbes(pool: mysql.Pool, opts: MysqlProbeOptions): LoadProbes {
  if (opts.jobId.length > 64) throw new ShadowshiftError(`job id "${opts.jobId}" is longer than 64 characters`);
  const table = `${quoteIdent(opts.schema)}.${quoteIdent(HEARTBEAT_TABLE)}`;
  const connect = opts.connectReplica ?? defaultConnectReplica;
  const replicas = new Map<string, Promise<ReplicaConnection>>();

  const createTable = () =>
    pool
      .query(`CREATE TABLE IF NOT EXISTS ${table} (job_id VARCHAR(64) NOT NULL PRIMARY KEY, beat_at DATETIME(6) NOT NULL) ENGINE=InnoDB`)
      .then(() => undefined);

  const heartbeat = new HeartbeatWriter({
    createTable,
    beat: () => pool.query(`REPLACE INTO ${table} (job_id, beat_at) VALUES (?, UTC_TIMESTAMP(6))`, [opts.jobId]).then(() => undefined),
    isMissingTable: (err) => (err as { errno?: number }).errno === ER_NO_SUCH_TABLE,
  });

  async function replica(url: string): Promise<ReplicaConnection> {
    let p = replicas.get(url);
    if (!p) {
      const config = parseConnectionUrl(url);
      p = connect(config);
      replicas.set(url, p);
      p.catch(() => replicas.delete(url));
      const conn = await p;
      // A dropped connection is reopened on the next read.
      const emitter = conn as unknown as { on?: (ev: string, fn: () => void) => void };
      emitter.on?.('error', () => {
        if (replicas.get(url) === p) replicas.delete(url);
      });
    }
    return p;
  }

  async function onReplica<T>(url: string, run: (c: ReplicaConnection) => Promise<T>): Promise<T> {
    const c = await replica(url);
    try {
      return await run(c);
    } catch (err) {
      if ((err as { fatal?: boolean }).fatal) {
        replicas.delete(url);
        await c.end().catch(() => undefined);
      }
      throw err;
    }
  }

  /** SHOW REPLICA STATUS (MySQL 8.0.22+, MariaDB 10.5.1+), else SHOW SLAVE STATUS. */
  async function secondsBehind(c: ReplicaConnection, redacted: string): Promise<number> {
    let rows: Array<Record<string, unknown>>;
    try {
      [rows] = (await c.query({ sql: 'SHOW REPLICA STATUS' })) as [Array<Record<string, unknown>>, unknown];
    } catch (err) {
      if ((err as { errno?: number }).errno !== ER_PARSE_ERROR) throw err;
      [rows] = (await c.query({ sql: 'SHOW SLAVE STATUS' })) as [Array<Record<string, unknown>>, unknown];
    }
    const row = rows[0];
    if (!row) {
      throw new ShadowshiftError(`${redacted} is not a replica (SHOW REPLICA STATUS is empty) and has no heartbeat of this job yet; check --throttle-replicas`);
    }
    const v = asText(row.Seconds_Behind_Master ?? row.Seconds_Behind_Source);
    if (v === null) {
      const io = asText(row.Slave_IO_Running ?? row.Replica_IO_Running);
      const sql = asText(row.Slave_SQL_Running ?? row.Replica_SQL_Running);
      throw new ShadowshiftError(
        `replication on ${redacted} is not running (IO thread ${io ?? '?'}, SQL thread ${sql ?? '?'}; Seconds_Behind_Master is NULL) and no heartbeat of this job has reached it`,
      );
    }
    return Number(v);
  }

  return {
    async readStatus(names: string[]): Promise<Record<string, number>> {
      if (names.length === 0) return {};
      const [rows] = (await pool.query({ sql: `SHOW GLOBAL STATUS WHERE Variable_name IN (${names.map(() => '?').join(', ')})`, rowsAsArray: true }, names)) as [
        unknown[][],
        unknown,
      ];
      const byName = new Map<string, unknown>();
      for (const r of rows) byName.set(String(asText(r[0])).toLowerCase(), r[1]);
      const out: Record<string, number> = {};
      for (const name of names) {
        if (!byName.has(name.toLowerCase())) {
          throw new ShadowshiftError(`unknown status variable "${name}" (not in SHOW GLOBAL STATUS) for --max-load/--critical-load; for example Threads_running or Threads_connected`);
        }
        out[name] = toNumber(byName.get(name.toLowerCase()), `status variable ${name}`);
      }
      return out;
    },

    async throttleQueryValue(sql: string): Promise<number> {
      const [rows] = (await pool.query({ sql, rowsAsArray: true })) as [unknown, unknown];
      if (!Array.isArray(rows) || rows.length === 0) return 0;
      const first = rows[0] as unknown[];
      if (!Array.isArray(first)) return 0;
      return toNumber(first[0], '--throttle-query');
    },

    async writeHeartbeat(): Promise<void> {
      await heartbeat.write();
    },

    async replicaLagSeconds(url: string): Promise<number> {
      const redacted = parseConnectionUrl(url).redacted;
      return onReplica(url, async (c) => {
        let rows: Array<{ lag_us: unknown }> = [];
        try {
          [rows] = (await c.query({ sql: `SELECT TIMESTAMPDIFF(MICROSECOND, beat_at, UTC_TIMESTAMP(6)) AS lag_us FROM ${table} WHERE job_id = ?` }, [opts.jobId])) as [
            Array<{ lag_us: unknown }>,
            unknown,
          ];
        } catch (err) {
          // The table has not reached this replica yet.
          if ((err as { errno?: number }).errno !== ER_NO_SUCH_TABLE) throw err;
        }
        const lag = asText(rows[0]?.lag_us);
        if (lag !== null) return Math.max(0, microsToSeconds(lag));
        return secondsBehind(c, redacted);
      });
    },

    async streamRetainedBytes(): Promise<number | null> {
      return null;
    },

    async close(): Promise<void> {
      const conns = [...replicas.values()];
      replicas.clear();
      for (const p of conns) await p.then((c) => c.end()).catch(() => undefined);
      if (!(await heartbeat.close())) return;
      try {
        await pool.query(`DELETE FROM ${table} WHERE job_id = ?`, [opts.jobId]);
        const [rows] = (await pool.query({ sql: `SELECT 1 FROM ${table} LIMIT 1`, rowsAsArray: true })) as [unknown[], unknown];
        // Racing another job's first beat here is harmless: its next beat recreates the table.
        if (rows.length === 0) await pool.query(`DROP TABLE IF EXISTS ${table}`);
      } catch (err) {
        if ((err as { errno?: number }).errno !== ER_NO_SUCH_TABLE) throw err;
      }
    },
  };
}
