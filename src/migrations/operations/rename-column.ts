// renameColumn({ table, from, to }): a TS migration's expand/contract rename (column-swap.ts).

import { UsageError } from '../../util/errors.js';
import type { Operation } from '../define-migration.js';
import { requireName, swapOperation } from './column-swap.js';

/** Renames a column without breaking the running application (expand/contract). */
export function renameColumn(args: { table: string; from: string; to: string }): Operation {
  const table = requireName(args?.table, 'table', 'renameColumn');
  const from = requireName(args?.from, 'from', 'renameColumn');
  const to = requireName(args?.to, 'to', 'renameColumn');
  if (from === to) throw new UsageError(`renameColumn: from and to are both "${from}"`);
  return swapOperation({ kind: 'rename', table, oldColumn: from, newColumn: to, type: null, toNew: null, toOld: null });
}
