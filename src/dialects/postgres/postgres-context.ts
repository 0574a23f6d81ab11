// What every part of the PostgreSQL dialect shares: the pool, the settings every
// connection gets, and a way to open a dedicated connection.

import pg from 'pg';
import type { ConnectionConfig } from '../../util/connection-url.js';
import type { Logger } from '../../util/logger.js';

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
      ssl = tls.ca || tls.cert ? { rejectUnauthorized: Boolean(tls.ca), ca: tls.ca, cert: tls.cert, key: tls.key } : false;
      if (tls.mode === 'disable') ssl = false;
      break;
    case 'require':
      // libpq: `require` verifies the CA when a root certificate is given.
      ssl = { rejectUnauthorized: Boolean(tls.ca), ca: tls.ca, cert: tls.cert, key: tls.key };
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
}

/** A connection of its own (job lock, cut-over): not from the pool, closed by the caller. */
export async function dedicatedClient(ctx: PgContext, applicationName = 'shadowshift'): Promise<pg.Client> {
  const client = new pg.Client({ ...ctx.clientConfig, application_name: applicationName });
  client.on('error', (err) => ctx.log.warn({ err: err.message }, 'dedicated connection error'));
  await client.connect();
  return client;
}
