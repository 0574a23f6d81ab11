import type { PreflightCheck } from '../../dialect.js';

export function noTableRenameCheck(): PreflightCheck {
  return {
    name: 'no-table-rename',
    phase: 'alter',
    async run(ctx) {
      if (!ctx.alter?.renamesTable) return { ok: true, message: 'the ALTER keeps the table name' };
      return { ok: false, message: 'the ALTER renames the table (RENAME TO/AS): that needs no online change. Run RENAME TABLE on its own, and leave the rename out of --alter.' };
    },
  };
}
