// Coalescing a batch of change events into one final action per key, so that a batch
// is a few set-based statements instead of one statement per event.
//
// An action is relative to the shadow as the previous group left it:
//   delete  remove the row at key
//   upsert  the full image at key
//   update  a partial image (unchanged TOAST): set the provided columns of the row at key
//   move    a partial image whose key changed: the row now at `from` goes to key, with
//           the provided columns set; its unchanged columns come from that row. `xid` is
//           the transaction in which the row left `from`: the applier trusts the shadow
//           row at `from` only if no read of the original can have seen it
//           (postgres-original-reads.ts)
//
// Moves are what make coalescing delicate. A move needs the row at `from` as the group
// found it, so:
//  - when a later change replaces a move (a delete, a full image), the row at `from`
//    would stay behind as a ghost: the replacement also deletes `from`;
//  - a chain (1→2, 2→3) stays one move from the first key (1→3); the intermediate key
//    keeps a delete, because a stale shadow row there is what the move would have
//    deleted before taking the key;
//  - a change that touches a key some move still reads from (the old key re-inserted,
//    1→2 followed by 2→1, a swap or rotation through a spare key) starts a new group.
//    Within one group, then, no action writes a key a move reads, and the order of
//    deletes, moves and upserts inside the group cannot matter; groups are applied one
//    after another.

import type { RowChange, Row, Value } from '../dialect.js';
import { toParam, type PlanSql } from './postgres-plan-sql.js';
import { ShadowshiftError } from '../../util/errors.js';

export type Action =
  | { op: 'delete'; key: Value[] }
  /** `fresh`: a new row at key in this batch (inserted, or moved here whole), not the one the shadow holds there (CopyPlan.keepsOtherColumns). */
  | { op: 'upsert'; key: Value[]; row: Row; fresh?: 'inserted' | 'moved' }
  | { op: 'update'; key: Value[]; row: Row }
  | { op: 'move'; key: Value[]; from: Value[]; row: Row; xid?: number };

export const keyString = (k: Value[]) => JSON.stringify(k.map((v) => toParam(v)));

function keyOf(p: PlanSql, row: Row): Value[] | null {
  const out: Value[] = [];
  for (const k of p.key) {
    const v = row[k.source];
    if (v === undefined || v === null) return null;
    out.push(v);
  }
  return out;
}

function missingKey(p: PlanSql): ShadowshiftError {
  return new ShadowshiftError(
    `a change event carries no value for the key column(s) ${p.key.map((k) => k.source).join(', ')} of the old row: the table's replica identity does not cover the copy key. Set REPLICA IDENTITY DEFAULT (primary key) or FULL and run the job again.`,
  );
}

/** `over`'s provided values on top of `base`. */
function merge(base: Row, over: Row): Row {
  const merged: Row = { ...base };
  for (const [k, v] of Object.entries(over)) if (v !== undefined) merged[k] = v;
  return merged;
}

/** Groups of final actions, to be applied in order; the actions within a group are independent. */
export function coalesce(p: PlanSql, events: RowChange[]): Action[][] {
  const groups: Action[][] = [];
  let state = new Map<string, Action>();
  /** Keys that a move of this group reads from. */
  let sources = new Set<string>();
  const isPartial = (row: Row) => p.columns.some((col) => row[col.source] === undefined);

  const put = (a: Action) => {
    const ks = keyString(a.key);
    state.delete(ks); // keep the order of the latest change
    state.set(ks, a);
    if (a.op === 'move') sources.add(keyString(a.from));
  };
  /** `a` takes the key over; a move it replaces no longer carries its row away from `from`. */
  const replace = (a: Action) => {
    const prev = state.get(keyString(a.key));
    if (prev?.op === 'move') {
      const from = keyString(prev.from);
      sources.delete(from);
      if (!state.has(from)) put({ op: 'delete', key: prev.from });
    }
    put(a);
  };

  for (const e of events) {
    if (e.kind === 'truncate') continue;
    const key = keyOf(p, e.kind === 'delete' ? e.before : e.after);
    if (!key) {
      if (e.kind === 'delete') throw missingKey(p);
      throw new ShadowshiftError(`a change event has no value for a key column (${p.key.map((k) => k.source).join(', ')})`);
    }
    let old: Value[] | null = null;
    if (e.kind === 'update' && e.before) {
      old = keyOf(p, e.before);
      if (!old) throw missingKey(p);
      if (keyString(old) === keyString(key)) old = null;
    }
    const touched = old ? [keyString(old), keyString(key)] : [keyString(key)];
    if (touched.some((k) => sources.has(k))) {
      groups.push([...state.values()]);
      state = new Map();
      sources = new Set();
    }

    if (e.kind === 'delete') {
      replace({ op: 'delete', key });
      continue;
    }
    let row = e.after;
    // For a partial image whose key changed: the shadow key its unchanged columns come
    // from, and the transaction in which the row left it.
    let from: Value[] | null = null;
    let leftIn: number | undefined;
    if (old) {
      const prevOld = state.get(keyString(old));
      if (prevOld && prevOld.op !== 'delete' && isPartial(row)) row = merge(prevOld.row, row);
      if (!isPartial(row)) {
        replace({ op: 'delete', key: old });
      } else if (prevOld?.op === 'move') {
        // A chain: the same row moves on, still from where the group found it.
        from = prevOld.from;
        leftIn = prevOld.xid;
        put({ op: 'delete', key: old });
      } else {
        // The move itself carries the row away from `old`.
        from = old;
        leftIn = e.xid;
        state.delete(keyString(old));
      }
    }
    if (!isPartial(row)) {
      const prev = state.get(keyString(key));
      const fresh = e.kind === 'insert' ? 'inserted' : old || prev?.op === 'move' ? 'moved' : prev?.op === 'upsert' ? prev.fresh : undefined;
      replace({ op: 'upsert', key, row, ...(fresh ? { fresh } : {}) });
    } else if (from) {
      replace({ op: 'move', key, from, row, xid: leftIn });
    } else {
      const prev = state.get(keyString(key));
      if (prev && prev.op !== 'delete') {
        const merged = merge(prev.row, row);
        const fresh = prev.op === 'move' ? 'moved' : prev.op === 'upsert' ? prev.fresh : undefined;
        if (!isPartial(merged)) replace({ op: 'upsert', key, row: merged, ...(fresh ? { fresh } : {}) });
        else if (prev.op === 'move') put({ op: 'move', key, from: prev.from, row: merged, xid: prev.xid });
        else put({ op: 'update', key, row: merged });
      } else {
        put({ op: 'update', key, row });
      }
    }
  }
  if (state.size) groups.push([...state.values()]);
  return groups;
}
