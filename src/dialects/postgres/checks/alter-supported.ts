import type { PreflightCheck } from '../../dialect.js';
import type { PgContext } from '../postgres-context.js';

export function alterSupportedCheck(_pg: PgContext): PreflightCheck {
  return {
    name: 'alter-supported',
    phase: 'table',
    async run(ctx) {
      if (ctx.alter?.renamesTable) {
        return {
          ok: false,
          message: `the ALTER renames the table or moves it to another schema (RENAME TO / SET SCHEMA), which an online copy cannot do. Run that part as a plain ALTER TABLE ${ctx.table.name} ... (it only changes the catalog and is instant), and the rest with shadowshift.`,
        };
      }
      return { ok: true, message: 'the ALTER keeps the table where it is' };
    },
  };
}
