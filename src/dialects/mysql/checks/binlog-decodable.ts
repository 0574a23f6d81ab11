// MySQL 8 can write two kinds of events the binlog reader cannot decode: partial JSON
// updates (binlog_row_value_options=PARTIAL_JSON) and compressed transactions
// (binlog_transaction_compression=ON). The reader fails the job when it meets one, so
// the copy would be wasted: refuse before anything is created. MariaDB has neither
// setting; its log_bin_compress events decode (test/mysql/binlog-server-settings.test.ts).

import type { PreflightCheck } from '../../dialect.js';
import type { MyContext } from '../mysql-context.js';
import { globalVariable } from './binlog-variables.js';

export interface BinlogEncodingSettings {
  rowValueOptions: string | null;
  transactionCompression: string | null;
}

/** What makes the binlog undecodable, each with its fix; empty when nothing does. */
export function undecodableSettings(s: BinlogEncodingSettings): string[] {
  const problems: string[] = [];
  if (s.rowValueOptions && /PARTIAL_JSON/i.test(s.rowValueOptions)) {
    problems.push(`binlog_row_value_options is ${s.rowValueOptions}: updates of JSON columns are logged as partial diffs the reader cannot decode. Run SET GLOBAL binlog_row_value_options = '' (and in the server config)`);
  }
  if (s.transactionCompression && /^(ON|1)$/i.test(s.transactionCompression)) {
    problems.push('binlog_transaction_compression is ON: transactions are logged compressed, which the reader cannot decode. Run SET GLOBAL binlog_transaction_compression = OFF (and in the server config)');
  }
  return problems;
}

export function binlogDecodableCheck(ctx: MyContext): PreflightCheck {
  return {
    name: 'binlog-decodable',
    phase: 'connect',
    async run() {
      const settings = {
        rowValueOptions: await globalVariable(ctx, 'binlog_row_value_options'),
        transactionCompression: await globalVariable(ctx, 'binlog_transaction_compression'),
      };
      const problems = undecodableSettings(settings);
      if (problems.length > 0) return { ok: false, message: `${problems.join('; ')}.` };
      return {
        ok: true,
        message:
          settings.rowValueOptions === null && settings.transactionCompression === null
            ? 'the server writes no partial JSON or compressed-transaction events'
            : 'partial JSON updates and transaction compression are off. A session that turns either on makes the job fail when it meets such an event, before the cut-over',
      };
    },
  };
}
