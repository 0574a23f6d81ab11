// Applies change events to the shadow, one transaction per apply() call.
//
// Events are coalesced by key first: only the last image of each key matters, and
// an update that changes the key is a delete of the old key plus an upsert of the
// new one. Deletes go first (DELETE ... WHERE key IN), then upserts.
//
// Upserts use multi-row REPLACE INTO when the shadow has no unique key the original
// lacks. REPLACE also removes a stale shadow row that conflicts on another unique
// key the original enforces; that is safe: the original enforces the key at every
// row change, so the stale row's owner was changed later, and its own later event
// (in this batch or a later one) writes it back. With a new unique key, a conflict
// can be real data loss, so upserts become DELETE + plain INSERT: a duplicate on a
// new unique key fails the job (DataLossError), one on an old key REPLACEs that row.
// A key the ALTER makes compare less finely (a collation, a scale) counts as new:
// the original does not keep its values apart, so REPLACE would delete another row.
// When the ALTER widened the key (`DROP PRIMARY KEY, ADD PRIMARY KEY (id, i)`), rows
// are matched on the original's key (id), which REPLACE does not see: DELETE + INSERT.

import type { PoolConnection } from 'mysql2/promise';
import type { Applier, ChangeEvent, CopyPlan, Row, Value } from '../dialect.js';
import type { MyContext } from './mysql-context.js';
import { valueExpressions, zoneFor } from './mysql-conversions.js';
import { keyString } from './mysql-keys.js';
import { applyCascades, splitAtCascades } from './mysql-cascades.js';
import { quoteIdent, quoteTable } from './mysql-quote.js';
import { ER_BAD_NULL_ERROR, ER_DUP_ENTRY, dataLossForDuplicate, dataLossForValue, duplicateOf, isDataError, wrapError } from './mysql-errors.js';
import { collisionsOfChangedRow, weakeningOf } from './mysql-duplicates.js';
import { withKeys } from '../../util/errors.js';
import type { Logger } from '../../util/logger.js';

/** Rows per multi-row statement; keeps each statement well under max_allowed_packet for ordinary rows. */
const ROWS_PER_STATEMENT = 200;
/**
 * Bytes of values per multi-row statement: rows with multi-megabyte BLOBs go a few (or
 * one) per statement, so the statement stays under max_allowed_packet (16 MB by default;
 * a value is sent as hex or escaped text, up to twice its size).
 */
const BYTES_PER_STATEMENT = 1024 * 1024;

/**
 * `fresh`: the row at this key is a new one in this batch (inserted, or moved here from
 * another key), not the one the shadow holds there: a writer that keeps the shadow's
 * other columns (CopyPlan.keepsOtherColumns) must not keep a stale row's values for it.
 */
type Final = { op: 'delete'; key: Value[] } | { op: 'upsert'; key: Value[]; values: Value[]; fresh?: 'inserted' | 'moved' };

/** The net effect of `events` per key of the shadow, in first-touched order. */
export function coalesce(plan: CopyPlan, events: ChangeEvent[]): Map<string, Final> {
  const out = new Map<string, Final>();
  const keyOf = (row: Row): Value[] => plan.key.map((k) => normalise(row[k.source]));
  const valuesOf = (row: Row): Value[] => plan.columns.map((c) => normalise(row[c.source]));
  const put = (key: Value[], f: Final) => {
    const s = keyString(key);
    out.delete(s); // re-insert so the map order follows the last change
    out.set(s, f);
  };
  for (const e of events) {
    switch (e.kind) {
      case 'insert': {
        const key = keyOf(e.after);
        put(key, { op: 'upsert', key, values: valuesOf(e.after), fresh: 'inserted' });
        break;
      }
      case 'update': {
        const key = keyOf(e.after);
        let moved = false;
        if (e.before) {
          const old = keyOf(e.before);
          moved = keyString(old) !== keyString(key);
          if (moved) put(old, { op: 'delete', key: old });
        }
        const prev = out.get(keyString(key));
        const fresh = moved ? 'moved' : prev?.op === 'upsert' ? prev.fresh : undefined;
        put(key, { op: 'upsert', key, values: valuesOf(e.after), ...(fresh ? { fresh } : {}) });
        break;
      }
      case 'delete': {
        const key = keyOf(e.before);
        put(key, { op: 'delete', key });
        break;
      }
      case 'truncate':
        throw new Error('a truncate cannot be applied to the shadow; the engine must stop the job');
      case 'cascade':
        throw new Error('a cascade is applied in its place among the events, not coalesced (MysqlApplier.apply)');
    }
  }
  return out;
}

/** A JSON document decoded into an object (MySQL 8 binary JSON) goes back as its text. */
function normalise(v: Value | object): Value {
  if (v === undefined) return null;
  if (v !== null && typeof v === 'object' && !Buffer.isBuffer(v)) return JSON.stringify(v);
  return v as Value;
}

export class MysqlApplier implements Applier {
  constructor(private readonly ctx: MyContext) {}

  async apply(plan: CopyPlan, events: ChangeEvent[]): Promise<void> {
    if (events.length === 0) return;
    const conn = await this.ctx.pool.getConnection();
    let open = false;
    try {
      await conn.query('BEGIN');
      open = true;
      const zone = await zoneFor(this.ctx, plan);
      // A parent's cascade acts on rows by their key's value: the row changes before it are applied first.
      for (const part of splitAtCascades(events)) {
        if ('rows' in part) await applyFinals(conn, plan, [...coalesce(plan, part.rows).values()], zone, this.ctx.log);
        else await applyCascades(conn, plan, part.cascades);
      }
      await conn.query('COMMIT');
      open = false;
    } catch (err) {
      if (open) await conn.query('ROLLBACK').catch(() => conn.destroy());
      throw wrapError(err, `applying changes to ${plan.shadow.ref.name}`);
    } finally {
      conn.release();
    }
  }
}

function chunks<T>(items: T[], n: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += n) out.push(items.slice(i, i + n));
  return out;
}

function valueBytes(v: Value): number {
  if (Buffer.isBuffer(v)) return v.length * 2;
  if (typeof v === 'string') return v.length * 2;
  return 24;
}

/** Upserts in groups of at most ROWS_PER_STATEMENT rows and, beyond one row, BYTES_PER_STATEMENT bytes. */
function upsertGroups<T extends { values: Value[] }>(items: T[]): T[][] {
  const out: T[][] = [];
  let group: T[] = [];
  let bytes = 0;
  for (const item of items) {
    const size = item.values.reduce<number>((n, v) => n + valueBytes(v), 0);
    if (group.length > 0 && (group.length >= ROWS_PER_STATEMENT || bytes + size > BYTES_PER_STATEMENT)) {
      out.push(group);
      group = [];
      bytes = 0;
    }
    group.push(item);
    bytes += size;
  }
  if (group.length > 0) out.push(group);
  return out;
}

async function deleteKeys(conn: PoolConnection, plan: CopyPlan, keys: Value[][]): Promise<void> {
  const table = quoteTable(plan.shadow.ref.schema, plan.shadow.ref.name);
  const cols = plan.key.map((k) => quoteIdent(k.target));
  for (const part of chunks(keys, ROWS_PER_STATEMENT)) {
    const tuple = cols.length === 1 ? '?' : `(${cols.map(() => '?').join(', ')})`;
    const lhs = cols.length === 1 ? cols[0]! : `(${cols.join(', ')})`;
    await conn.query(`DELETE FROM ${table} WHERE ${lhs} IN (${part.map(() => tuple).join(', ')})`, part.flat());
  }
}

/** `zone`: the server's time zone, for TIMESTAMP/DATETIME changes (mysql-conversions.ts). */
export async function applyFinals(conn: PoolConnection, plan: CopyPlan, finals: Final[], zone: string | null, log?: Logger): Promise<void> {
  const table = quoteTable(plan.shadow.ref.schema, plan.shadow.ref.name);
  const columnList = plan.columns.map((c) => quoteIdent(c.target)).join(', ');
  const expressions = valueExpressions(plan, zone);
  const rowPh = `(${expressions.map((e) => e.sql).join(', ')})`;
  // A converting expression names its value more than once: repeat the parameter.
  const params = (values: Value[]) => values.flatMap((v, i) => Array<Value>(expressions[i]!.uses).fill(v));
  const deletes = finals.filter((f) => f.op === 'delete').map((f) => f.key);
  const upserts = finals.filter((f): f is Extract<Final, { op: 'upsert' }> => f.op === 'upsert');
  const name = plan.original.ref.name;

  if (deletes.length > 0) await deleteKeys(conn, plan, deletes);
  if (upserts.length === 0) return;

  const keyIndexes = plan.key.map((k) => plan.columns.findIndex((c) => c.target === k.target));
  const keyText = (row: Value[]) => plan.key.map((k, i) => `${k.source}=${Buffer.isBuffer(row[keyIndexes[i]!]) ? `0x${(row[keyIndexes[i]!] as Buffer).toString('hex')}` : String(row[keyIndexes[i]!])}`).join(', ');
  const run = async (verb: 'REPLACE' | 'INSERT' | 'IN PLACE', rows: Value[][]): Promise<void> => {
    try {
      const inPlace = verb === 'IN PLACE' ? ` ${keyGuardedUpdate(plan)}` : '';
      await conn.query(`${verb === 'REPLACE' ? 'REPLACE' : 'INSERT'} INTO ${table} (${columnList}) VALUES ${rows.map(() => rowPh).join(', ')}${inPlace}`, rows.flatMap(params));
    } catch (err) {
      if (!isDataError(err) || (verb === 'IN PLACE' && isConflictBesideKey(err, plan))) throw err;
      // Name the row: the server says which one ("at row N") for some errors; else one by one
      // (the statement was undone on its own, and the job's transaction is rolled back anyway).
      const message = (err as Error).message;
      const at = rows[Number(/ at row (\d+)/.exec(message)?.[1] ?? 0) - 1] ?? (rows.length === 1 ? rows[0] : undefined);
      if (!at) for (const row of rows) await run(verb, [row]);
      const lost = dataLossForValue(name, message, 'applying a change', at ? keyText(at) : undefined);
      throw at ? withKeys(lost, [keyIndexes.map((i) => at[i])]) : lost;
    }
  };

  const newUnique = new Set(plan.newUniqueIndexes.map((n) => n.toLowerCase()));
  /** One row written whole, the way below (delete by key, insert): a duplicate on a new unique key is data loss. */
  const writeWhole = async (u: Extract<Final, { op: 'upsert' }>): Promise<void> => {
    await deleteKeys(conn, plan, [u.key]);
    try {
      await run('INSERT', [u.values]);
    } catch (err) {
      if ((err as { errno?: number }).errno !== ER_DUP_ENTRY) throw err;
      const dup = duplicateOf((err as Error).message);
      if (!dup) throw dataLossForDuplicate(name, '(unknown key)', '?', 'applying a change');
      if (newUnique.has(dup.key.toLowerCase())) {
        const valueOf = (target: string) => u.values[plan.columns.findIndex((c) => c.target.toLowerCase() === target.toLowerCase())];
        const rows = await collisionsOfChangedRow(conn, plan, dup.key, u.key, valueOf);
        throw withKeys(dataLossForDuplicate(name, dup.key, dup.value, 'applying a change', { rows, change: weakeningOf(plan, dup.key) }), [u.key]);
      }
      await run('REPLACE', [u.values]);
    }
  };

  // The shadow's other columns keep their values (a revert): change rows in place, matched on the key.
  // A fresh row is no row the shadow holds: any row at its key goes first (it was deleted, or is stale).
  if (plan.keepsOtherColumns && !plan.keyWithin) {
    const fresh = upserts.filter((u) => u.fresh);
    if (fresh.length > 0) await deleteKeys(conn, plan, fresh.map((u) => u.key));
    const moved = fresh.filter((u) => u.fresh === 'moved');
    if (moved.length > 0) {
      log?.warn({ table: name, rows: moved.length, keys: moved.slice(0, 5).map((u) => keyText(u.values)) }, 'rows whose key changed since the swap are written whole: their columns the live table lacks take their defaults');
    }
    for (const part of upsertGroups(upserts)) {
      try {
        await run('IN PLACE', part.map((u) => u.values));
        continue;
      } catch (err) {
        if (!isConflictBesideKey(err, plan)) throw err;
      }
      for (const u of part) {
        try {
          await run('IN PLACE', [u.values]);
        } catch (err) {
          if (!isConflictBesideKey(err, plan)) throw err;
          // Another row holds one of its unique values: a stale row (REPLACE's case above), or data loss.
          log?.warn({ table: name, key: keyText(u.values) }, 'a row conflicted on a unique key with another row that still held the value; both were written whole: their columns the live table lacks took their defaults');
          await writeWhole(u);
        }
      }
    }
    return;
  }

  // REPLACE matches on the shadow's unique indexes: with a wider one (keyWithin) an update of
  // one of its other columns would leave the old row beside the new. Delete by key first.
  if (plan.newUniqueIndexes.length === 0 && !plan.keyWithin) {
    for (const part of upsertGroups(upserts)) await run('REPLACE', part.map((u) => u.values));
    return;
  }

  await deleteKeys(conn, plan, upserts.map((u) => u.key));
  for (const part of upsertGroups(upserts)) {
    try {
      await run('INSERT', part.map((u) => u.values));
      continue;
    } catch (err) {
      if ((err as { errno?: number }).errno !== ER_DUP_ENTRY) throw err;
      // The failed statement was rolled back on its own; the transaction goes on. Row by row now.
    }
    // Each row was deleted by key above: writing it whole again is the same.
    for (const u of part) await writeWhole(u);
  }
}

/**
 * ON DUPLICATE KEY UPDATE of every filled column. The upsert may collide on any unique
 * index, and an update of the row it collided with would overwrite another row (a stale
 * one holding a unique value since changed). So the key columns are set first, to NULL
 * unless the collided row has the same key: strict mode makes that an error
 * (ER_BAD_NULL_ERROR on a key column, isConflictBesideKey) instead of a wrong update.
 */
export function keyGuardedUpdate(plan: CopyPlan): string {
  // Qualified: in INSERT ... SELECT the source table may have a column of the same name.
  const table = quoteTable(plan.shadow.ref.schema, plan.shadow.ref.name);
  const keys = new Set(plan.key.map((k) => k.target.toLowerCase()));
  const guards = plan.key.map((k) => {
    const c = `${table}.${quoteIdent(k.target)}`;
    return `${c} = IF(${c} <=> VALUES(${c}), VALUES(${c}), NULL)`;
  });
  const rest = plan.columns.filter((c) => !keys.has(c.target.toLowerCase())).map((c) => `${table}.${quoteIdent(c.target)} = VALUES(${table}.${quoteIdent(c.target)})`);
  return `ON DUPLICATE KEY UPDATE ${[...guards, ...rest].join(', ')}`;
}

/** The key guard of keyGuardedUpdate fired, or the in-place update collided on another unique index. */
export function isConflictBesideKey(err: unknown, plan: CopyPlan): boolean {
  const e = err as { errno?: number; message?: string };
  if (e.errno === ER_DUP_ENTRY) return true;
  if (e.errno !== ER_BAD_NULL_ERROR) return false;
  const column = /Column '(.*)' cannot be null/.exec(e.message ?? '')?.[1]?.toLowerCase();
  return plan.key.some((k) => k.target.toLowerCase() === column);
}
