// What every part of the PostgreSQL dialect shares: the pool, the settings every
// connection gets, and a way to open a dedicated connection.

import pg from 'pg';
import type { ConnectionConfig } from '../../util/connection-url.js';
import type { Logger } from '../../util/logger.js';
import type { ShadowReads } from './postgres-original-reads.js';
import { classify } from './postgres-errors.js';

/**
 * Every value is handed over as the text the server sent: no int8/numeric/json/date
 * parsing, so nothing is rounded or moved in time. bytea stays `\x…` text.
 */
export const TEXT_TYPES: pg.CustomTypesConfig = {
  getTypeParser: (() => (value: string) => value) as unknown as pg.CustomTypesConfig['getTypeParser'],
};

/**
 * Output settings pinned on every connection (including the walsender, whose output
 * functions produce the change stream's text), so the text one session writes is
 * read back the same way by another.
 */
export const SESSION_OPTIONS = '-c DateStyle=ISO,MDY -c IntervalStyle=postgres -c extra_float_digits=3 -c bytea_output=hex';

export function clientConfigFor(config: ConnectionConfig): pg.ClientConfig {
  const tls = config.tls;
  let ssl: pg.ClientConfig['ssl'];
  switch (tls.mode) {
    case 'disable':
    case 'prefer':
    case 'require':
      // libpq: `require` verifies the CA (not the host name: that is verify-full) when a
      // root certificate is given. `prefer` uses TLS only when certificates are given.
      ssl =
        tls.mode === 'disable' || (tls.mode === 'prefer' && !tls.ca && !tls.cert)
          ? false
          : { rejectUnauthorized: Boolean(tls.ca), ca: tls.ca, cert: tls.cert, key: tls.key, checkServerIdentity: () => undefined };
      break;
    case 'verify-ca':
      ssl = { rejectUnauthorized: true, ca: tls.ca, cert: tls.cert, key: tls.key, checkServerIdentity: () => undefined };
      break;
    case 'verify-full':
      ssl = { rejectUnauthorized: true, ca: tls.ca, cert: tls.cert, key: tls.key };
      break;
  }
  return {
    host: config.socketPath ?? config.host,
    port: config.port,
    user: config.user,
    password: config.password,
    database: config.database,
    ssl,
    types: TEXT_TYPES,
    options: SESSION_OPTIONS,
    application_name: 'shadowshift',
  };
}

export interface PgContext {
  pool: pg.Pool;
  config: ConnectionConfig;
  clientConfig: pg.ClientConfig;
  log: Logger;
  /** Snapshots of the reads that put the original's rows into the shadow (copier, applier). */
  reads: ShadowReads;
  /**
   * The snapshot the copy reads the original in (postgres-copy-snapshot.ts), while its
   * connection holds it; null or absent: chunks read current data under row locks.
   */
  copySnapshot?: string | null;
  /** The shadow analyzed before the cut-over (postgres-vacuum-guard.ts, analyzeShadow): the swap need not analyze it again. */
  analyzedShadow?: string;
  /** Backend pids of the job's own connections (pool and dedicated), for postgres-waits.ts. */
  sessions?: Set<number>;
  /** Told when the server refuses a new connection (noteConnectFailure): the change stream closes its own. */
  serverAway?: Set<(err: Error) => void>;
}

/** Counts `client` among the job's own sessions until its connection ends. */
export function trackSession(ctx: Pick<PgContext, 'sessions'>, client: pg.Client | pg.PoolClient): void {
  const pid = (client as unknown as { processID: number | null }).processID;
  if (!ctx.sessions || pid === null || pid === undefined) return;
  ctx.sessions.add(pid);
  client.once('end', () => ctx.sessions?.delete(pid));
}

/** Refused at connect: the server is down or shutting down (57P03 "the database system is shutting down"). */
const AWAY = new Set(['57P03', 'ECONNREFUSED']);

/**
 * A failed connect, classified (a transient failure for the engine to retry). When the server
 * refuses new sessions, the listeners hear of it: an open replication connection would hold a
 * fast shutdown (its walsender waits for the job to confirm what it sent, and the job confirms
 * only what it applied, over connections the server now refuses), so the stream closes it.
 */
export function noteConnectFailure(ctx: PgContext, err: unknown): unknown {
  const code = (err as { code?: string } | undefined)?.code;
  if (code && AWAY.has(code)) for (const l of [...(ctx.serverAway ?? [])]) l(err as Error);
  return classify(err, 'connecting to the server');
}

/** A connection of its own (job lock, cut-over): not from the pool, closed by the caller. */
export async function dedicatedClient(ctx: PgContext, applicationName = 'shadowshift'): Promise<pg.Client> {
  const client = new pg.Client({ ...ctx.clientConfig, application_name: applicationName });
  client.on('error', (err) => ctx.log.warn({ err: err.message }, 'dedicated connection error'));
  // A server that cannot be reached (restarting) is a transient failure for the engine to retry.
  await client.connect().catch((err: unknown) => Promise.reject(noteConnectFailure(ctx, err)));
  trackSession(ctx, client);
  return client;
}

/** The server ended the backend (pg_terminate_backend, shutdown): the statement did not commit. */
const BACKEND_ENDED = new Set(['57P01', '57P02', '57P03']);
const SOCKET_GONE = /Connection terminated unexpectedly|not queryable|ECONNRESET|EPIPE/i;

/**
 * After the server ends pooled connections, an idle client whose termination notice is
 * still in flight can be handed out once more, and the next statement on it fails with
 * 57P01 although nothing is wrong with the server. Single statements through
 * `pool.query` are retried (up to 3 times, on a fresh client) when the backend was
 * ended — the statement never committed — or, for SELECT statements only, when the
 * socket died under it. Transactions on checked-out clients are not touched: their
 * callers decide (the engine retries chunks and batches as a whole).
 */
export function retryEndedConnections(pool: pg.Pool, log: Logger): void {
  const query = pool.query.bind(pool) as (...args: unknown[]) => Promise<unknown>;
  const wrapped = async (...args: unknown[]): Promise<unknown> => {
    const first = args[0] as string | { text?: string } | undefined;
    const text = typeof first === 'string' ? first : (first?.text ?? '');
    const readOnly = /^\s*SELECT\b/i.test(text) && !/pg_create_logical_replication_slot/i.test(text);
    for (let attempt = 1; ; attempt++) {
      try {
        return await query(...args);
      } catch (err) {
        const code = (err as { code?: string }).code;
        const retry = attempt < 4 && ((code !== undefined && BACKEND_ENDED.has(code)) || (code === undefined && readOnly && SOCKET_GONE.test((err as Error).message ?? '')));
        if (!retry) throw err;
        log.debug({ err: (err as Error).message, attempt }, 'a pooled connection was ended by the server; running the statement again on another');
        await new Promise((r) => setTimeout(r, 20 * attempt));
      }
    }
  };
  pool.query = ((...args: unknown[]) => {
    if (typeof args[args.length - 1] === 'function') return (query as (...a: unknown[]) => unknown)(...args);
    return wrapped(...args);
  }) as typeof pool.query;
}
