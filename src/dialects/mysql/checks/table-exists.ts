import type { PreflightCheck } from '../../dialect.js';

export function tableExistsCheck(): PreflightCheck {
  return {
    name: 'table-exists',
    phase: 'table',
    async run(ctx) {
      if (ctx.info) return { ok: true, message: `${ctx.table.schema}.${ctx.table.name} exists` };
      return { ok: false, message: `table ${ctx.table.schema}.${ctx.table.name} does not exist; check the table name and the database in the URL` };
    },
  };
}
