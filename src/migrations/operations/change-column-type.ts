// changeColumnType({ table, column, newColumn, type, toNew?, toOld? }): a TS migration's
// expand/contract type change (column-swap.ts).

import { UsageError } from '../../util/errors.js';
import type { Operation } from '../define-migration.js';
import { requireName, swapOperation } from './column-swap.js';

/**
 * Moves a column's data into a new column of another type (expand/contract).
 * `toNew` / `toOld` are SQL expressions converting a value written `{{value}}`
 * (default: a plain CAST on PostgreSQL, the server's assignment conversion on MySQL).
 */
export function changeColumnType(args: { table: string; column: string; newColumn: string; type: string; toNew?: string; toOld?: string }): Operation {
  const table = requireName(args?.table, 'table', 'changeColumnType');
  const column = requireName(args?.column, 'column', 'changeColumnType');
  const newColumn = requireName(args?.newColumn, 'newColumn', 'changeColumnType');
  const type = requireName(args?.type, 'type', 'changeColumnType');
  if (column === newColumn) throw new UsageError('changeColumnType: newColumn must differ from column (contract drops the old column; the new one keeps its name)');
  for (const [k, v] of [['toNew', args.toNew], ['toOld', args.toOld]] as const) {
    if (v !== undefined && !v.includes('{{value}}')) throw new UsageError(`changeColumnType: ${k} must use {{value}} for the value being converted, e.g. "CAST({{value}} AS BIGINT)"`);
  }
  return swapOperation({ kind: 'type', table, oldColumn: column, newColumn, type, toNew: args.toNew ?? null, toOld: args.toOld ?? null });
}
