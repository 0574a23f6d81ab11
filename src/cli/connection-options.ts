import type { Argv } from 'yargs';
import { parseConnectionUrl, resolveUrl, type ConnectionConfig } from '../util/connection-url.js';

export function withConnectionOptions<T>(y: Argv<T>) {
  return y
    .option('url', {
      type: 'string',
      describe: 'mysql://user@host:3306/db or postgres://user@host:5432/db (prefer SHADOWSHIFT_URL or --url-file: argv is visible to every user of the host)',
    })
    .option('url-file', { type: 'string', describe: 'read the connection URL from this file' });
}

export function connectionFrom(args: { url?: string; urlFile?: string }): ConnectionConfig {
  return parseConnectionUrl(resolveUrl(args));
}
