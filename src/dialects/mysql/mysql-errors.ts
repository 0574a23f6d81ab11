// Maps driver errors to the errors the engine understands.

import { DataLossError, ShadowshiftError, TransientDatabaseError } from '../../util/errors.js';

export interface MysqlError extends Error {
  errno?: number;
  code?: string;
  sqlMessage?: string;
  fatal?: boolean;
}

export const ER_DUP_ENTRY = 1062;
export const ER_BAD_NULL_ERROR = 1048;
export const ER_LOCK_DEADLOCK = 1213;
export const ER_LOCK_WAIT_TIMEOUT = 1205;
export const ER_QUERY_INTERRUPTED = 1317;
export const ER_CONNECTION_KILLED = 1927;
/** Multi-statement transaction required more than 'max_binlog_cache_size' bytes of storage. */
export const ER_TRANS_CACHE_FULL = 1197;

const TRANSIENT_ERRNOS = new Set([ER_LOCK_DEADLOCK, ER_LOCK_WAIT_TIMEOUT, 2006, 2013, ER_CONNECTION_KILLED, 1053 /* server shutdown */, 1040 /* too many connections */]);
const TRANSIENT_CODES = new Set(['PROTOCOL_CONNECTION_LOST', 'ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'PROTOCOL_SEQUENCE_TIMEOUT']);

/** Errors that mean a value would be changed or lost on the way into the shadow. */
const DATA_ERRNOS = new Set([
  1048, // Column cannot be null
  1264, // Out of range value
  1265, // Data truncated
  1292, // Incorrect date/time value
  1366, // Incorrect integer/string value
  1406, // Data too long
  1367, // Illegal value during parsing
  3140, // Invalid JSON text (MySQL)
  4025, // CONSTRAINT failed (MariaDB CHECK)
  3819, // Check constraint violated (MySQL)
]);

export function isTransient(err: unknown): boolean {
  const e = err as MysqlError;
  return (
    err instanceof TransientDatabaseError ||
    (e.errno !== undefined && TRANSIENT_ERRNOS.has(e.errno)) ||
    (e.code !== undefined && TRANSIENT_CODES.has(e.code)) ||
    e.fatal === true ||
    // mysql2 after the server closed the connection: no code, only this message.
    /connection is in closed state|Connection lost/i.test(e.message ?? '')
  );
}

/** The connection is gone (so a statement sent on it may or may not have run). */
export function isConnectionLost(err: unknown): boolean {
  const e = err as MysqlError;
  return (
    e.errno === 2006 || e.errno === 2013 || e.errno === ER_CONNECTION_KILLED ||
    (e.code !== undefined && ['PROTOCOL_CONNECTION_LOST', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT'].includes(e.code)) ||
    /connection is in closed state|Connection lost/i.test(e.message ?? '')
  );
}

export function isDataError(err: unknown): boolean {
  const e = err as MysqlError;
  return e.errno !== undefined && DATA_ERRNOS.has(e.errno);
}

/** The column a data error or warning names (`... for column 'b' at row 3`), if any. */
export function columnOf(message: string): string | null {
  // MariaDB qualifies some: "for column `db`.`table`.`col` at row 2".
  const q = /column ((?:`(?:[^`]|``)*`\.?)+)/i.exec(message);
  if (q) {
    const parts = [...q[1]!.matchAll(/`((?:[^`]|``)*)`/g)].map((x) => x[1]!.replace(/``/g, '`'));
    return parts[parts.length - 1] ?? null;
  }
  const m = /column '((?:[^']|'')*)'/i.exec(message);
  return m ? m[1]!.replace(/''/g, "'") : null;
}

/** Key name and value of a duplicate-key message: `Duplicate entry 'x' for key 'u_b'`. */
export function duplicateOf(message: string): { value: string; key: string } | null {
  const m = /Duplicate entry '([\s\S]*)' for key '([^']*)'/.exec(message);
  if (!m) return null;
  // MySQL 8 qualifies the key as `table.key`.
  const key = m[2]!.includes('.') ? m[2]!.slice(m[2]!.lastIndexOf('.') + 1) : m[2]!;
  return { value: m[1]!, key };
}

/** `row`: the row's key, as `id=5`, when known. */
export function dataLossForValue(table: string, message: string, where: string, row?: string): DataLossError {
  const column = columnOf(message);
  return new DataLossError(
    `${where}: the server would change or drop a value${column ? ` of column ${column}` : ''} of ${table}${row ? ` in the row ${row}` : ''} (${message}). ` +
      'The original table is untouched. Fix the data first (or widen the new type / keep the column NULL-able) and run the job again.',
  );
}

/** Two rows with one value of a unique key the new table has (dataLossForDuplicate). */
export class DuplicateKeyError extends DataLossError {}

/**
 * `rows` names the colliding rows where they could be found. `change` is set when
 * the original has the key too and the ALTER makes it compare less finely (a
 * collation, a scale): the user did not add a key, so say what made it new.
 */
export function dataLossForDuplicate(
  table: string,
  key: string,
  value: string,
  where: string,
  detail: { rows?: string | null; change?: string | null } = {},
): DataLossError {
  const rows = detail.rows ? `; ${detail.rows}` : '';
  if (detail.change) {
    return new DuplicateKeyError(
      `${where}: unique key ${key} would hold the same value twice in the new table ('${value}'${rows}), so a row would be lost. ` +
        `${table} has ${key} too, but the ALTER changes ${detail.change}: values the original keeps apart are equal in the new table. ` +
        `The original table is untouched. Make those rows differ under the new rules first, or leave the key's columns comparing as they do now.`,
    );
  }
  return new DuplicateKeyError(
    `${where}: the new unique key ${key} has duplicate values in ${table} (e.g. '${value}'${rows}), so rows would be lost. ` +
      `The original table is untouched. Remove the duplicates first (find them with GROUP BY over the key's columns HAVING COUNT(*) > 1), or do not make ${key} UNIQUE.`,
  );
}

/** Wraps a driver error: transient ones for the engine to retry, data errors as DataLossError. */
export function wrapError(err: unknown, what: string): Error {
  if (err instanceof ShadowshiftError) return err;
  const e = err as MysqlError;
  if (isTransient(e)) return new TransientDatabaseError(`${what}: ${e.message}`, { cause: err });
  if (e.errno === ER_TRANS_CACHE_FULL) {
    return new ShadowshiftError(
      `${what}: one transaction's binary log events outgrew the server's max_binlog_cache_size (${e.message}). Nothing was lost and the original table is untouched. ` +
        'Copy smaller chunks (--chunk-size, or a shorter --chunk-time), or raise the limit (SET GLOBAL max_binlog_cache_size = ...; new sessions get it), then run again.',
      { cause: err },
    );
  }
  return err as Error;
}
