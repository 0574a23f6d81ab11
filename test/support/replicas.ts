// Throwaway replicas of the throwaway servers in servers.ts, for replica-lag tests:
// a MariaDB replica (binlog replication) and a PostgreSQL hot standby (streaming,
// from pg_basebackup -R). Each can pause applying changes, so lag builds on demand
// while the primary keeps running.

import mysql from 'mysql2/promise';
import pg from 'pg';
import { startMariaDb, startPostgres, type RunningServer } from './servers.js';

export interface RunningReplica extends RunningServer {
  /** Stops applying changes (they still arrive), so the replica falls behind. */
  pauseApply(): Promise<void>;
  /** Applies again; the replica catches up. */
  resumeApply(): Promise<void>;
}

let nextServerId = 100 + Math.floor(Math.random() * 1000) * 10;

async function waitUntil<T>(what: string, timeoutMs: number, probe: () => Promise<T | null>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown = null;
  for (;;) {
    try {
      const v = await probe();
      if (v !== null) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`${what} within ${timeoutMs} ms${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function mysqlAdmin(server: RunningServer): Promise<mysql.Connection> {
  return mysql.createConnection({ host: '127.0.0.1', port: server.port, user: 'root', supportBigNumbers: true, bigNumberStrings: true, dateStrings: true });
}

type SlaveStatus = Record<string, string | null>;

async function slaveStatus(c: mysql.Connection): Promise<SlaveStatus | null> {
  const [rows] = await c.query('SHOW SLAVE STATUS');
  return ((rows as SlaveStatus[])[0] ?? null);
}

/**
 * A second MariaDB (its own server id and binlog) replicating everything from the
 * primary's first binlog file (file/position, not GTID), so it also receives every
 * database and row the primary had before it started, as long as the primary's
 * binlogs were not purged. Connects as root over 127.0.0.1 (root has no password).
 */
export async function startMariaDbReplica(primary: RunningServer): Promise<RunningReplica> {
  const p = await mysqlAdmin(primary);
  let firstLog: string;
  try {
    const [logs] = await p.query('SHOW BINARY LOGS');
    const list = logs as Array<{ Log_name: string }>;
    if (!list.length) throw new Error('the primary has no binary logs: start it with --log-bin');
    firstLog = list[0]!.Log_name;
  } finally {
    await p.end();
  }
  nextServerId += 1;
  const server = await startMariaDb({ serverId: nextServerId, extraArgs: ['--skip-slave-start', '--relay-log=relay-bin'] });
  const c = await mysqlAdmin(server);
  try {
    // MASTER_USE_GTID is MariaDB's (the replica is always a local MariaDB, but say so where it matters).
    const [[v]] = (await c.query('SELECT VERSION() AS v')) as unknown as [[{ v: string }]];
    const gtidOff = /mariadb/i.test(v.v) ? 'MASTER_USE_GTID = no, ' : '';
    await c.query(
      `CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = ${Number(primary.port)}, MASTER_USER = 'root', MASTER_PASSWORD = '', ` +
        `${gtidOff}MASTER_LOG_FILE = ?, MASTER_LOG_POS = 4, MASTER_CONNECT_RETRY = 1`,
      [firstLog],
    );
    await c.query('START SLAVE');
    await waitUntil('the MariaDB replica to connect and apply', 30_000, async () => {
      const s = await slaveStatus(c);
      if (s?.Last_IO_Error || s?.Last_SQL_Error) throw new Error(`replication error: ${s.Last_IO_Error || s.Last_SQL_Error}`);
      return s?.Slave_IO_Running === 'Yes' && s.Slave_SQL_Running === 'Yes' ? true : null;
    });
  } catch (err) {
    await c.end().catch(() => undefined);
    await server.stop();
    throw err;
  }
  await c.end();
  return {
    ...server,
    async pauseApply() {
      const a = await mysqlAdmin(server);
      try {
        await a.query('STOP SLAVE SQL_THREAD');
      } finally {
        await a.end();
      }
    },
    async resumeApply() {
      const a = await mysqlAdmin(server);
      try {
        await a.query('START SLAVE SQL_THREAD');
      } finally {
        await a.end();
      }
    },
    async stop() {
      const a = await mysqlAdmin(server).catch(() => null);
      await a?.query('STOP SLAVE').catch(() => undefined);
      await a?.end().catch(() => undefined);
      await server.stop();
    },
  };
}

async function pgAdmin(server: RunningServer): Promise<pg.Client> {
  const c = new pg.Client({ host: '127.0.0.1', port: server.port, user: 'postgres', database: 'postgres' });
  await c.connect();
  return c;
}

/**
 * A hot standby of `primary` (pg_basebackup -R over a replication connection from
 * 127.0.0.1, which initdb's trust pg_hba allows), streaming on its own port.
 */
export async function startPostgresReplica(primary: RunningServer): Promise<RunningReplica> {
  const server = await startPostgres({ standbyOfPort: primary.port, standbyOfDataDir: primary.dataDir });
  try {
    await waitUntil('the PostgreSQL standby to stream from the primary', 30_000, async () => {
      const c = await pgAdmin(primary);
      try {
        const r = await c.query(`SELECT count(*)::int AS n FROM pg_stat_replication WHERE state = 'streaming'`);
        return r.rows[0].n > 0 ? true : null;
      } finally {
        await c.end();
      }
    });
  } catch (err) {
    await server.stop();
    throw err;
  }
  const run = async (sql: string) => {
    const c = await pgAdmin(server);
    try {
      await c.query(sql);
    } finally {
      await c.end();
    }
  };
  return {
    ...server,
    // Replay stops before the next WAL record it would apply; WAL keeps arriving.
    pauseApply: () => run('SELECT pg_wal_replay_pause()'),
    resumeApply: () => run('SELECT pg_wal_replay_resume()'),
  };
}
