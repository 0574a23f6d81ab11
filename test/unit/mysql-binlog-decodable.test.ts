// The MySQL 8 settings that write events the binlog reader cannot decode. No MySQL 8
// server runs in the suite (MariaDB lacks both settings), so the decision is tested here.

import { describe, it, expect } from 'vitest';
import { undecodableSettings } from '../../src/dialects/mysql/checks/binlog-decodable.js';

describe('undecodableSettings', () => {
  it('passes MariaDB (neither setting) and MySQL 8 defaults', () => {
    expect(undecodableSettings({ rowValueOptions: null, transactionCompression: null })).toEqual([]);
    expect(undecodableSettings({ rowValueOptions: '', transactionCompression: 'OFF' })).toEqual([]);
  });
  it('names each setting that makes events undecodable, with its fix', () => {
    const problems = undecodableSettings({ rowValueOptions: 'PARTIAL_JSON', transactionCompression: 'ON' });
    expect(problems).toHaveLength(2);
    expect(problems[0]).toMatch(/binlog_row_value_options is PARTIAL_JSON.*SET GLOBAL binlog_row_value_options = ''/);
    expect(problems[1]).toMatch(/binlog_transaction_compression is ON.*SET GLOBAL binlog_transaction_compression = OFF/);
  });
});
