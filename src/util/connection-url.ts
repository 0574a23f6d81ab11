import { readFileSync } from 'node:fs';
import { UsageError } from './errors.js';
import type { DialectName } from '../dialects/dialect.js';
import { dialectForScheme, syntaxOf, urlSchemes } from '../dialects/registry.js';

export interface TlsOptions {
  /** `require` (encrypt, verify unless `rejectUnauthorized` is false), `disable` (plain), `prefer` (driver default). */
  mode: 'disable' | 'prefer' | 'require' | 'verify-ca' | 'verify-full';
  ca?: string;
  cert?: string;
  key?: string;
}

export interface ConnectionConfig {
  dialect: DialectName;
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
  /** Unix socket path (`?socket=` for MySQL, `?host=/dir` for PostgreSQL). */
  socketPath?: string;
  tls: TlsOptions;
  /** The URL with the password replaced, safe for logs and status output. */
  redacted: string;
}

const TLS_MODES = new Set(['disable', 'prefer', 'require', 'verify-ca', 'verify-full']);

/**
 * Where the URL comes from, most explicit first. A password given on the command
 * line is visible to every user of the host, so `SHADOWSHIFT_URL` or `--url-file`
 * are the recommended ways.
 */
export function resolveUrl(args: { url?: string; urlFile?: string }, env = process.env): string {
  if (args.url) return args.url;
  if (args.urlFile) {
    try {
      return readFileSync(args.urlFile, 'utf8').trim();
    } catch (err) {
      throw new UsageError(`cannot read --url-file ${args.urlFile}: ${(err as Error).message}`);
    }
  }
  if (env.SHADOWSHIFT_URL) return env.SHADOWSHIFT_URL;
  throw new UsageError(
    'no database given: pass --url mysql://user@host/db (or postgres://...), set SHADOWSHIFT_URL, or use --url-file FILE',
  );
}

export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    for (const k of [...u.searchParams.keys()]) {
      if (/pass|secret|key/i.test(k) && k !== 'sslkey') u.searchParams.set(k, '***');
    }
    return u.toString();
  } catch {
    return url.replace(/\/\/([^:/@]+):[^@]*@/, '//$1:***@');
  }
}

export function parseConnectionUrl(url: string): ConnectionConfig {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new UsageError(`the connection URL is not a valid URL (${redactUrl(url)}); expected mysql://user:password@host:3306/database or postgres://user:password@host:5432/database`);
  }
  const scheme = u.protocol.replace(/:$/, '');
  const dialect = dialectForScheme(scheme);
  if (!dialect) throw new UsageError(`unsupported URL scheme "${scheme}:"; use ${urlSchemes().map((s) => `${s}://`).join(', ').replace(/, ([^,]*)$/, ' or $1')}`);
  const syntax = syntaxOf(dialect);

  const params = u.searchParams;
  const database = decodeURIComponent(u.pathname.replace(/^\//, ''));
  if (!database) {
    throw new UsageError(`the connection URL names no database (${redactUrl(url)}); add it as the path, e.g. ${scheme}://host/mydb`);
  }

  const sslParam = params.get('sslmode') ?? params.get('ssl-mode') ?? params.get('ssl');
  let mode: TlsOptions['mode'] = 'prefer';
  if (sslParam !== null) {
    const normalised = sslParam.toLowerCase().replace('_', '-');
    const alias: Record<string, TlsOptions['mode']> = { true: 'require', '1': 'require', false: 'disable', '0': 'disable', required: 'require', disabled: 'disable', preferred: 'prefer', 'verify-identity': 'verify-full' };
    const m = alias[normalised] ?? normalised;
    if (!TLS_MODES.has(m)) {
      throw new UsageError(`unknown TLS mode "${sslParam}" in the URL; use one of ${[...TLS_MODES].join(', ')}`);
    }
    mode = m as TlsOptions['mode'];
  }
  const readPem = (name: string): string | undefined => {
    const path = params.get(name);
    if (!path) return undefined;
    try {
      return readFileSync(path, 'utf8');
    } catch (err) {
      throw new UsageError(`cannot read ${name}=${path} from the URL: ${(err as Error).message}`);
    }
  };
  const tls: TlsOptions = { mode, ca: readPem('sslrootcert') ?? readPem('ssl-ca'), cert: readPem('sslcert') ?? readPem('ssl-cert'), key: readPem('sslkey') ?? readPem('ssl-key') };

  const socketPath = params.get('socket') ?? (params.get('host')?.startsWith('/') ? params.get('host')! : undefined);
  return {
    dialect,
    host: decodeURIComponent(u.hostname) || 'localhost',
    port: u.port ? Number(u.port) : syntax.defaultPort,
    user: decodeURIComponent(u.username) || syntax.defaultUser,
    password: decodeURIComponent(u.password),
    database,
    socketPath,
    tls,
    redacted: redactUrl(url),
  };
}
