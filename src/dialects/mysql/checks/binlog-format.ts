import type { PreflightCheck } from '../../dialect.js';
import type { MyContext } from '../mysql-context.js';
import { globalVariable } from './binlog-variables.js';

export function binlogFormatCheck(ctx: MyContext): PreflightCheck {
  return {
    name: 'binlog-format',
    phase: 'connect',
    async run() {
      const v = await globalVariable(ctx, 'binlog_format');
      if (v?.toUpperCase() === 'ROW') {
        return {
          ok: true,
          message:
            'binlog_format is ROW. A session that sets binlog_format=STATEMENT or MIXED logs its writes as statements, which cannot be applied: if one writes the table the job fails before the cut-over, so make sure the application does not.',
        };
      }
      return {
        ok: false,
        message: `binlog_format is ${v ?? 'unknown'}, not ROW: changes would reach the binlog as statements, which shadowshift cannot apply. Run SET GLOBAL binlog_format = 'ROW' (and in the server config); sessions opened before keep the old format, so reconnect the application.`,
      };
    },
  };
}
