// The parents' cascades, replayed into the shadow (issue 15; the design doc's "Child
// tables" section).
//
// InnoDB does not log what `ON DELETE/UPDATE CASCADE` and `SET NULL` do to the child's
// rows (before MySQL 9.6, refused there: checks/foreign-keys.ts). The parent's own change
// is a row event, though, and the stream reads the parents' events in binlog order with
// the table's. For each, the applier does to the shadow what InnoDB did to the original,
// at the same point of the history: delete the rows with that key (CASCADE), set the
// key to NULL (SET NULL), or move it to the parent's new key (ON UPDATE CASCADE).
// RESTRICT and NO ACTION need nothing: the original had no such child at that point.
//
// Why this is exact: the shadow carries no key until the cut-over, so the server does
// nothing to it out of order, and the replay sits where InnoDB's cascade sat, among the
// table's own events. Copy and replay overlap as copy and apply do (invariant 3): a
// chunk read after the parent's change does not see the cascaded rows (the marker
// commit makes the change visible first), and one read before it is followed by the
// replay. A row the replay removes or moves that the copy read later in a newer state
// had a newer change of its own, whose full image the stream applies afterwards.

import type { PoolConnection } from 'mysql2/promise';
import type { ChangeEvent, CopyPlan, Row, Value } from '../dialect.js';
import { cascades, type ForeignKey } from './mysql-foreign-keys.js';
import { keyString } from './mysql-keys.js';
import { quoteIdent, quoteTable } from './mysql-quote.js';
import { ShadowshiftError } from '../../util/errors.js';

export type CascadeEvent = Extract<ChangeEvent, { kind: 'cascade' }>;

/** The keys whose parents' events the stream must read, by parent table name. */
export function replayedKeysByParent(keys: ForeignKey[]): Map<string, ForeignKey[]> {
  const out = new Map<string, ForeignKey[]>();
  for (const k of keys.filter(cascades)) out.set(k.refTable, [...(out.get(k.refTable) ?? []), k]);
  return out;
}

const comparable = (v: unknown) => (v === undefined ? null : Buffer.isBuffer(v) ? v : v instanceof Date ? v.getTime() : typeof v === 'object' && v !== null ? JSON.stringify(v) : v);

/** Of the columns a parent's row event leaves out (binlog_row_image=MINIMAL), those a key references. */
export function referencedLeftOut(keys: ForeignKey[], leftOut: string[]): string[] {
  const out = new Set(leftOut.map((c) => c.toLowerCase()));
  return [...new Set(keys.flatMap((k) => k.refColumns))].filter((c) => out.has(c.toLowerCase()));
}

/**
 * What one change of a parent row does to the child's rows, as InnoDB does it: nothing
 * for an insert, nor for an update that leaves the referenced columns as they were
 * (compared byte for byte, as InnoDB decides), nor for a parent key with a NULL.
 */
export function cascadesOf(keys: ForeignKey[], change: { before: Row | null; after: Row | null }): CascadeEvent[] {
  const { before, after } = change;
  if (!before) return [];
  // A key may spell a column in another case than the table does (names are case-insensitive).
  const names = new Map(Object.keys(before).map((n) => [n.toLowerCase(), n]));
  const valueOf = (row: Row, c: string) => (row[names.get(c.toLowerCase()) ?? c] ?? null) as Value;
  const out: CascadeEvent[] = [];
  for (const k of keys) {
    const from = k.refColumns.map((c) => valueOf(before, c));
    if (from.some((v) => v === null)) continue;
    if (!after) {
      if (k.onDelete === 'CASCADE') out.push({ kind: 'cascade', action: 'delete', key: k.name, columns: k.columns, from });
      else if (k.onDelete === 'SET NULL') out.push({ kind: 'cascade', action: 'set-null', key: k.name, columns: k.columns, from });
      continue;
    }
    const to = k.refColumns.map((c) => valueOf(after, c));
    if (keyString(from.map(comparable) as Value[]) === keyString(to.map(comparable) as Value[])) continue;
    if (k.onUpdate === 'CASCADE') out.push({ kind: 'cascade', action: 'move', key: k.name, columns: k.columns, from, to });
    else if (k.onUpdate === 'SET NULL') out.push({ kind: 'cascade', action: 'set-null', key: k.name, columns: k.columns, from });
  }
  return out;
}

/**
 * The events in order: runs of row changes, and between them runs of cascades. Deletes
 * (or SET NULLs) through the same key that follow one another go in one run: they
 * commute. A move does not (a chain of key changes depends on its order): alone.
 */
export function splitAtCascades(events: ChangeEvent[]): Array<{ rows: ChangeEvent[] } | { cascades: CascadeEvent[] }> {
  const out: Array<{ rows: ChangeEvent[] } | { cascades: CascadeEvent[] }> = [];
  for (const e of events) {
    const last = out[out.length - 1];
    if (e.kind !== 'cascade') {
      if (last && 'rows' in last) last.rows.push(e);
      else out.push({ rows: [e] });
      continue;
    }
    const head = last && 'cascades' in last ? last.cascades[0]! : null;
    if (head && e.action !== 'move' && head.action === e.action && head.key === e.key) (last as { cascades: CascadeEvent[] }).cascades.push(e);
    else out.push({ cascades: [e] });
  }
  return out;
}

/** Rows per statement of a run of cascades. */
const KEYS_PER_STATEMENT = 500;

/** Does one run of cascades (splitAtCascades) to the shadow, inside the applier's transaction. */
export async function applyCascades(conn: PoolConnection, plan: CopyPlan, run: CascadeEvent[]): Promise<void> {
  const e = run[0]!;
  const table = quoteTable(plan.shadow.ref.schema, plan.shadow.ref.name);
  const targets = e.columns.map((c) => {
    const mapped = plan.columns.find((m) => m.source.toLowerCase() === c.toLowerCase());
    if (!mapped) throw new ShadowshiftError(`cannot replay the cascade of foreign key ${e.key}: its column ${c} is not carried to the new table`);
    return quoteIdent(mapped.target);
  });
  if (e.action === 'move') {
    await conn.query(`UPDATE ${table} SET ${targets.map((t) => `${t} = ?`).join(', ')} WHERE ${targets.map((t) => `${t} = ?`).join(' AND ')}`, [...e.to!, ...e.from]);
    return;
  }
  const lhs = targets.length === 1 ? targets[0]! : `(${targets.join(', ')})`;
  const tuple = targets.length === 1 ? '?' : `(${targets.map(() => '?').join(', ')})`;
  for (let i = 0; i < run.length; i += KEYS_PER_STATEMENT) {
    const part = run.slice(i, i + KEYS_PER_STATEMENT);
    const where = `${lhs} IN (${part.map(() => tuple).join(', ')})`;
    const params = part.flatMap((c) => c.from);
    if (e.action === 'delete') await conn.query(`DELETE FROM ${table} WHERE ${where}`, params);
    else await conn.query(`UPDATE ${table} SET ${targets.map((t) => `${t} = NULL`).join(', ')} WHERE ${where}`, params);
  }
}
