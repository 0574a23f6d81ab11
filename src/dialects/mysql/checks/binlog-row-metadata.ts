import type { PreflightCheck } from '../../dialect.js';
import type { MyContext } from '../mysql-context.js';
import { globalVariable } from './binlog-variables.js';

export function binlogRowMetadataCheck(ctx: MyContext): PreflightCheck {
  return {
    name: 'binlog-row-metadata',
    phase: 'connect',
    async run() {
      const v = await globalVariable(ctx, 'binlog_row_metadata');
      if (v?.toUpperCase() === 'FULL') return { ok: true, message: 'binlog_row_metadata is FULL' };
      if (v === null) {
        return {
          ok: false,
          message:
            'the server has no binlog_row_metadata setting (it needs MariaDB 10.5+ or MySQL 8.0.1+): without column names in the binlog, rows can decode into the wrong columns. Upgrade the server.',
        };
      }
      return {
        ok: false,
        message: `binlog_row_metadata is ${v}, not FULL: without column names in the binlog, rows written before a column is added or moved decode into the wrong columns without any error. Run SET GLOBAL binlog_row_metadata = 'FULL' (and in the server config).`,
      };
    },
  };
}
