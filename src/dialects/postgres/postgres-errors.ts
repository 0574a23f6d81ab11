// Classifies driver errors into the errors the engine understands.

import { TransientDatabaseError } from '../../util/errors.js';

export interface PgError extends Error {
  code?: string;
  detail?: string;
  hint?: string;
  column?: string;
  constraint?: string;
  table?: string;
  schema?: string;
}

const TRANSIENT_CODES = new Set([
  '40001', // serialization_failure
  '40P01', // deadlock_detected
  '55P03', // lock_not_available (lock_timeout)
  '57014', // query_canceled (statement_timeout)
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now
  '53300', // too_many_connections
  '08000', '08003', '08006', '08001', '08004', // connection exceptions
]);

const TRANSIENT_MESSAGES = /Connection terminated|ECONNRESET|ECONNREFUSED|EPIPE|ETIMEDOUT|Client has encountered a connection error|terminating connection/i;

export function pgCode(err: unknown): string | undefined {
  return (err as PgError | undefined)?.code;
}

/** Node's socket errors carry their own `code` (not a SQLSTATE): a server going away mid-statement. */
const NETWORK_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'ECONNABORTED', 'EHOSTUNREACH', 'ENETUNREACH']);

export function isTransient(err: unknown): boolean {
  if (err instanceof TransientDatabaseError) return true;
  const code = pgCode(err);
  if (code && (TRANSIENT_CODES.has(code) || NETWORK_CODES.has(code))) return true;
  const msg = (err as Error | undefined)?.message ?? '';
  return !code && TRANSIENT_MESSAGES.test(msg);
}

/** Wraps deadlocks, lock and statement timeouts and dropped connections; returns other errors unchanged. */
export function classify(err: unknown, what: string): unknown {
  if (err instanceof TransientDatabaseError) return err;
  if (isTransient(err)) {
    return new TransientDatabaseError(`${what}: ${(err as Error).message} (transient; retrying is safe)`, { cause: err });
  }
  return err;
}
