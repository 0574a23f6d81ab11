// Which operation runs next.

import { del } from './delete.js';
import { insert } from './insert.js';
import type { OpKind, Operation } from './op.js';
import { select } from './select.js';
import { updatePk } from './update-pk.js';
import { update } from './update.js';

export interface OpMix {
  insert: number;
  update: number;
  delete: number;
  select: number;
}

export const OPERATIONS: Record<OpKind, Operation<unknown>> = { insert, update, 'update-pk': updatePk, delete: del, select };

/** Draws the next kind by weight; with no live id, only an insert can run. */
export function pickKind(rand: () => number, mix: OpMix, pkChangeShare: number, liveIds: number): OpKind {
  let r = rand() * (mix.insert + mix.update + mix.delete + mix.select);
  let kind: OpKind;
  if ((r -= mix.update) < 0) kind = rand() < pkChangeShare ? 'update-pk' : 'update';
  else if ((r -= mix.insert) < 0) kind = 'insert';
  else if ((r -= mix.delete) < 0) kind = 'delete';
  else kind = 'select';
  if (kind !== 'insert' && liveIds === 0) kind = 'insert';
  return kind;
}
