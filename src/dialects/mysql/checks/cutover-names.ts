import type { PreflightCheck } from '../../dialect.js';
import { canOrderNamesAfter, cannotOrderMessage } from '../mysql-names.js';

/**
 * The cut-over proves its RENAME waits on the table itself only when every other name
 * in the RENAME sorts after the table's (mysql-cutover.ts): refuse before anything is
 * copied when the table's name leaves no room for such names.
 */
export function cutoverNamesCheck(): PreflightCheck {
  return {
    name: 'cutover-names',
    phase: 'table',
    async run(ctx) {
      if (canOrderNamesAfter(ctx.table.name)) return { ok: true, message: "the shadow and backup names sort after the table's, so the cut-over can prove its swap waits on the table" };
      return { ok: false, message: cannotOrderMessage(ctx.table.name) };
    },
  };
}
