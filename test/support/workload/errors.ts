// What a failed statement means for the model: did it certainly not commit,
// and must its connection be replaced?

import type { Dialect } from '../db.js';

export interface Classified {
  key: string;
  code?: string;
  errno?: number;
  message: string;
  /** The statement certainly did not commit. */
  definite: boolean;
  /** The connection must be replaced. */
  fatal: boolean;
}

export class OpTimeout extends Error {
  constructor(ms: number) {
    super(`statement did not finish within ${ms} ms`);
  }
}

export class ConnectError extends Error {
  constructor(override readonly cause: unknown) {
    super(`connect failed: ${(cause as Error)?.message ?? String(cause)}`);
  }
}

/**
 * Every workload statement is a single autocommit statement, so a server error
 * on a live connection means it was rolled back (statement atomicity). Lost
 * connections, client timeouts and a server shutting the session down leave
 * the outcome unknown.
 */
export function classifyError(dialect: Dialect, err: unknown): Classified {
  const e = err as { code?: string; errno?: number; sqlState?: string; fatal?: boolean; message?: string };
  const message = String(e?.message ?? err);
  if (err instanceof OpTimeout) return { key: 'TIMEOUT', message, definite: false, fatal: true };
  if (dialect === 'mysql') {
    const server = typeof e.errno === 'number' && typeof e.sqlState === 'string' && !e.fatal;
    // Server shutdown / connection killed: the session is gone; don't guess whether it committed.
    const killed = server && [1053, 1927, 3169].includes(e.errno!);
    return { key: server ? String(e.errno) : String(e.code ?? 'UNKNOWN'), code: e.code, errno: e.errno, message, definite: server && !killed, fatal: !server || killed };
  }
  const sqlstate = typeof e.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code) ? e.code : undefined;
  const lost = !sqlstate || sqlstate.startsWith('08') || sqlstate.startsWith('57P');
  return { key: sqlstate ?? String(e.code ?? 'UNKNOWN'), code: e.code, message, definite: !lost, fatal: lost };
}

/** classifyError, except that a failed connect (nothing was sent) is definite and replaces the connection. */
export function classifyOpError(dialect: Dialect, err: unknown): Classified {
  if (err instanceof ConnectError) return { ...classifyError(dialect, err.cause), key: 'CONNECT', definite: true, fatal: true };
  return classifyError(dialect, err);
}
