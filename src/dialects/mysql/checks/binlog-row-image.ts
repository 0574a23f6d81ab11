import type { PreflightCheck } from '../../dialect.js';
import type { MyContext } from '../mysql-context.js';
import { globalVariable } from './binlog-variables.js';

export function binlogRowImageCheck(ctx: MyContext): PreflightCheck {
  return {
    name: 'binlog-row-image',
    phase: 'connect',
    async run() {
      const v = await globalVariable(ctx, 'binlog_row_image');
      if (v === null || v.toUpperCase() === 'FULL') {
        return {
          ok: true,
          message: 'binlog_row_image is FULL. A session that sets binlog_row_image=MINIMAL or NOBLOB logs rows with columns left out: if one writes the table the job fails before the cut-over, so make sure the application does not.',
        };
      }
      return {
        ok: false,
        message: `binlog_row_image is ${v}, not FULL: row events would miss unchanged columns and they would be written as NULL. Run SET GLOBAL binlog_row_image = 'FULL' (and in the server config), then reconnect the application.`,
      };
    },
  };
}
