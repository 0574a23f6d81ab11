import type { DialectSession } from './dialect.js';
import type { ConnectionConfig } from '../util/connection-url.js';
import type { Logger } from '../util/logger.js';
import { ShadowshiftError } from '../util/errors.js';
import { loadDialect } from './registry.js';

/** Opens the dialect the URL names; each dialect is loaded only when used. */
export async function openDialect(config: ConnectionConfig, log: Logger): Promise<DialectSession> {
  const { factory } = await loadDialect(config.dialect);
  try {
    return await factory.open(config, log);
  } catch (err) {
    if (err instanceof ShadowshiftError) throw err;
    const e = err as Error & { code?: string };
    throw new ShadowshiftError(
      `cannot connect to ${config.redacted}: ${e.message}${e.code ? ` (${e.code})` : ''}. ` +
        'Check the host, port, user and password in the URL, that the server is up, and its TLS settings (?ssl= / ?sslmode=)',
      { cause: err },
    );
  }
}
