import type { PreflightCheck } from '../../dialect.js';
import type { MyContext } from '../mysql-context.js';
import { globalVariable } from './binlog-variables.js';

export function logBinCheck(ctx: MyContext): PreflightCheck {
  return {
    name: 'binary-log',
    phase: 'connect',
    async run() {
      const v = await globalVariable(ctx, 'log_bin');
      if (v === 'ON' || v === '1') return { ok: true, message: 'the binary log is on' };
      return {
        ok: false,
        message: 'the binary log is off (log_bin=OFF): shadowshift reads concurrent changes from it. Start the server with --log-bin (and --server-id) and restart it.',
      };
    },
  };
}
