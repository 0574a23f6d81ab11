// What every part of the MySQL dialect shares: the pool, the settings every
// connection gets, and a way to open a dedicated connection.

import mysql from 'mysql2/promise';
import type { ConnectionOptions, Pool, PoolConnection, Connection } from 'mysql2/promise';
import { connect as netConnect, isIP } from 'node:net';
import type { ConnectionConfig } from '../../util/connection-url.js';
import type { Logger } from '../../util/logger.js';
import { wrapError } from './mysql-errors.js';

/**
 * Pinned on every connection. time_zone +00:00: the binlog carries TIMESTAMP as
 * UTC epoch seconds and zongji renders it in UTC, so the session writing it back
 * must read and write TIMESTAMP text in UTC too (a type change between TIMESTAMP and
 * DATETIME/DATE converts explicitly: mysql-conversions.ts). The sql_mode is strict so a bad
 * value is an error (or, under INSERT IGNORE, a warning the copier turns into one);
 * NO_AUTO_VALUE_ON_ZERO keeps a row whose AUTO_INCREMENT key is 0 as 0. Zero dates
 * are allowed (no NO_ZERO_DATE): the shadow must accept whatever the original holds.
 * This relaxation is for rows only: the shadow's DDL runs under the server's own sql_mode
 * (mysql-shadow.ts), so an ALTER the server would refuse is refused with its message.
 */
export const SESSION_SQL_MODE = 'STRICT_ALL_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION,NO_AUTO_VALUE_ON_ZERO';
export const SESSION_SQL = `SET SESSION time_zone = '+00:00', SESSION sql_mode = '${SESSION_SQL_MODE}', NAMES utf8mb4`;

/**
 * The TCP socket for verify-full to an IP address. mysql2 gives tls.connect neither a
 * servername (none is allowed for an IP) nor the host, so Node checks the certificate
 * against the socket's `_host`, which it leaves null for an IP, and so against
 * "localhost": a certificate naming only the IP is refused, one naming localhost passes
 * whatever the IP. With `_host` set, the IP itself is checked. Otherwise as mysql2's own.
 */
function socketKnowingItsIp(opts: { config: { host: string; port: number; enableKeepAlive?: boolean; keepAliveInitialDelay?: number } }) {
  const { host, port, enableKeepAlive, keepAliveInitialDelay } = opts.config;
  const socket = netConnect(port, host);
  (socket as unknown as { _host: string })._host = host;
  if (enableKeepAlive) socket.on('connect', () => socket.setKeepAlive(true, keepAliveInitialDelay));
  socket.setNoDelay(true);
  return socket;
}

export function connectionOptionsFor(config: ConnectionConfig): ConnectionOptions {
  const tls = config.tls;
  let ssl: ConnectionOptions['ssl'];
  switch (tls.mode) {
    case 'disable':
      ssl = undefined;
      break;
    case 'prefer':
      // mysql2 cannot fall back from TLS to plain text: `prefer` means plain unless certificates are given.
      ssl = tls.ca || tls.cert ? { ca: tls.ca, cert: tls.cert, key: tls.key, rejectUnauthorized: Boolean(tls.ca) } : undefined;
      break;
    case 'require':
      ssl = { ca: tls.ca, cert: tls.cert, key: tls.key, rejectUnauthorized: Boolean(tls.ca) };
      break;
    case 'verify-ca':
      ssl = { ca: tls.ca, cert: tls.cert, key: tls.key, rejectUnauthorized: true, verifyIdentity: false } as ConnectionOptions['ssl'];
      break;
    case 'verify-full':
      ssl = { ca: tls.ca, cert: tls.cert, key: tls.key, rejectUnauthorized: true, verifyIdentity: true } as ConnectionOptions['ssl'];
      break;
  }
  return {
    host: config.host,
    port: config.port,
    user: config.user,
    password: config.password,
    database: config.database,
    ...(config.socketPath ? { socketPath: config.socketPath } : {}),
    ...(tls.mode === 'verify-full' && !config.socketPath && isIP(config.host) ? { stream: socketKnowingItsIp } : {}),
    ssl,
    charset: 'UTF8MB4_UNICODE_CI',
    supportBigNumbers: true,
    bigNumberStrings: true,
    dateStrings: true,
    // mysql2 parses JSON columns (and MariaDB's JSON-tagged LONGTEXT) into objects,
    // losing big numbers: keep the text.
    jsonStrings: true,
    timezone: 'Z',
  };
}

export interface MyContext {
  pool: Pool;
  config: ConnectionConfig;
  options: ConnectionOptions;
  log: Logger;
  /** Set once the server version is known. */
  flavor?: 'mariadb' | 'mysql';
  /** The server's time zone for TIMESTAMP/DATETIME conversions, read once (mysql-conversions.ts). */
  timeZone?: Promise<{ zone: string; problem: string | null }>;
  /** Connection ids of the job's own connections (pool and dedicated), for mysql-waits.ts. */
  sessions?: Set<number>;
}

/** A connection of its own (job lock, cut-over, change stream control): closed by the caller. */
export async function dedicatedConnection(ctx: MyContext): Promise<Connection> {
  const conn = await mysql.createConnection(ctx.options).catch((err: unknown) => Promise.reject(wrapError(err, 'connecting to the server')));
  conn.on('error', (err: Error) => ctx.log.debug({ err: err.message }, 'dedicated MySQL connection error'));
  await conn.query(SESSION_SQL);
  const id = conn.threadId;
  if (ctx.sessions && id) {
    ctx.sessions.add(id);
    conn.once('end', () => ctx.sessions?.delete(id));
  }
  return conn;
}

/** Runs `work` on one pooled connection. */
export async function withConnection<T>(ctx: MyContext, work: (conn: PoolConnection) => Promise<T>): Promise<T> {
  const conn = await ctx.pool.getConnection();
  try {
    return await work(conn);
  } finally {
    conn.release();
  }
}

export function createPool(config: ConnectionConfig, log: Logger): MyContext {
  const options = connectionOptionsFor(config);
  const pool = mysql.createPool({ ...options, connectionLimit: 8, waitForConnections: true, maxIdle: 4, idleTimeout: 30_000 });
  // Runs before the connection is handed out: commands on a connection are queued in order.
  const sessions = new Set<number>();
  (pool as unknown as { pool: { on(ev: string, fn: (c: { threadId: number | null; query(sql: string, cb: (err: Error | null) => void): void }) => void): void } }).pool.on(
    'connection',
    (conn) => {
      // Connection ids only grow: one left here after its connection closed names no other session.
      if (conn.threadId) sessions.add(conn.threadId);
      conn.query(SESSION_SQL, (err) => {
        if (err) log.warn({ err: err.message }, 'could not set the session settings on a MySQL connection');
      });
    },
  );
  // A connection that cannot be made (the server restarting: ECONNREFUSED, 1053) is a
  // transient failure like a lost one: every caller gets it already classified, also
  // where getConnection() sits outside the statement's own error handling.
  const getConnection = pool.getConnection.bind(pool);
  pool.getConnection = () => getConnection().catch((err: unknown) => Promise.reject(wrapError(err, 'connecting to the server')));
  return { pool, config, options, log, sessions };
}
