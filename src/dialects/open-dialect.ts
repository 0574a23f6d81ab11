import type { DialectSession } from './dialect.js';
import type { ConnectionConfig } from '../util/connection-url.js';
import type { Logger } from '../util/logger.js';

/** Opens the dialect the URL names; each dialect is loaded only when used. */
export async function openDialect(config: ConnectionConfig, log: Logger): Promise<DialectSession> {
  if (config.dialect === 'mysql') {
    const { mysqlDialect } = await import('./mysql/mysql-dialect.js');
    return mysqlDialect.open(config, log);
  }
  const { postgresDialect } = await import('./postgres/postgres-dialect.js');
  return postgresDialect.open(config, log);
}
