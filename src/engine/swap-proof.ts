// After the swap: proof, from the change stream, that no write reached the old table
// after the cut-over's drain.
//
// The cut-over drains the stream to a marker while the original is locked, and the
// swap must then come before any write the application queued meanwhile. Where the
// stream shows the swap as a step of its own (the MySQL binlog's RENAME), every row
// event on the original between that marker and the swap is a write that went into the
// old table only. The dialect's cut-over prevents what it can see (on MariaDB, a backup
// waiting for the backup lock), but it cannot see everything: a backup can begin
// between its last look and the unlock, and without PROCESS it sees no other user's
// sessions. So this check runs after every such swap, and is what the guarantee rests on.
//
// Whatever it finds, the swap has happened: the new table is live, and the job must
// say so rather than claim a clean success. Such writes are not rolled forward into the
// new table: the application may have written the same rows there since the swap, and
// only it knows which version wins. The job fails instead (exit 4), naming them.

import type { ChangeEvent, Row, StreamPosition, Value } from '../dialects/dialect.js';
import { SwapUnverifiedError, WritesAfterDrainError } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import type { EventPump } from './event-pump.js';

/** How long the swap may take to come through the stream after it happened. */
export const SWAP_PROOF_TIMEOUT_MS = 30_000;
/** Keys named in the message and the log. */
const KEYS_SHOWN = 10;

export interface SwapProofInput {
  pump: EventPump;
  /** `schema.table`, now the new table. */
  table: string;
  /** `schema.backup`, the old table. */
  backup: string;
  /** The original's key columns, which every event row carries. */
  keyColumns: string[];
  log: Logger;
  timeoutMs?: number;
}

function literal(v: Value): string {
  if (v === null) return 'NULL';
  if (v === undefined) return '?';
  if (Buffer.isBuffer(v)) return `0x${v.subarray(0, 32).toString('hex')}${v.length > 32 ? '…' : ''}`;
  if (typeof v === 'string') return `'${v.length > 40 ? `${v.slice(0, 40)}…` : v}'`;
  return String(v);
}

function keyOf(row: Row, columns: string[]): string {
  const parts = columns.map((c) => `${c}=${literal(row[c])}`);
  return parts.length === 1 ? parts[0]! : `(${parts.join(', ')})`;
}

/** One line per write: what it did and to which key. */
export function describeWrite(e: ChangeEvent, columns: string[]): string {
  switch (e.kind) {
    case 'insert':
      return `insert ${keyOf(e.after, columns)}`;
    case 'delete':
      return `delete ${keyOf(e.before, columns)}`;
    case 'update': {
      const after = keyOf(e.after, columns);
      const before = e.before ? keyOf(e.before, columns) : after;
      return before === after ? `update ${after}` : `update ${before} -> ${after}`;
    }
    case 'truncate':
      return 'truncate';
    case 'cascade':
      return `${e.action === 'delete' ? 'cascaded delete' : e.action === 'set-null' ? 'cascaded set null' : 'cascaded key change'} through ${e.key} of ${e.from.map(String).join(', ')}`;
  }
}

/**
 * Throws when writes reached the old table after the drain, or when that could not be
 * checked. Returns where the writes to the new table begin in the stream (a revert reads
 * from there), or null where the stream does not show the swap.
 */
export async function proveSwap(input: SwapProofInput): Promise<StreamPosition | null> {
  const { pump, table, backup, keyColumns, log } = input;
  const witness = await pump.changesBeforeSwap(input.timeoutMs ?? SWAP_PROOF_TIMEOUT_MS);
  if (witness.t === 'blind') return null;
  if (witness.t === 'lost') {
    const message =
      `the tables were swapped (${table} is the new table, the old one is kept as ${backup}), but the job could not check that no write reached the old table ` +
      `after the cut-over's drain: ${witness.reason}. Rows of ${backup} that ${table} lacks or holds differently may be such writes (or changes made to ${table} since the swap); compare them before dropping ${backup}.`;
    log.error({ table, backup, reason: witness.reason }, message);
    throw new SwapUnverifiedError(message);
  }
  const writes = witness.events;
  if (writes.length === 0) {
    log.info({ table }, 'the change stream shows no write to the old table between the drain and the swap');
    return witness.afterSwap;
  }
  const shown = writes.slice(0, KEYS_SHOWN).map((e) => describeWrite(e, keyColumns));
  const n = writes.length;
  const message =
    `the tables were swapped (${table} is the new table), but ${n} write${n === 1 ? '' : 's'} reached the old table after the cut-over's drain ` +
    `and ${n === 1 ? 'is' : 'are'} not in the new table: ${shown.join(', ')}${n > KEYS_SHOWN ? `, and ${n - KEYS_SHOWN} more` : ''}. ` +
    `The old table is kept as ${backup} and holds ${n === 1 ? 'it' : 'them'}. Something let the writes queued on the table run before the swap ` +
    '(on MariaDB: a FLUSH TABLES WITH READ LOCK or BACKUP STAGE, such as a backup, that started during the cut-over). ' +
    `To reconcile, compare the rows with ${n === 1 ? 'that key' : 'those keys'} (${keyColumns.join(', ')}) in ${backup} with ${table} and re-apply what ${table} lacks, ` +
    `minding what the application has written to ${table} since the swap.`;
  log.error({ table, backup, writes: n, keys: shown }, message);
  throw new WritesAfterDrainError(message, n, backup);
}
