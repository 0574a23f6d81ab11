// Which information_schema row names the table when the server compares names
// case-insensitively (lower_case_table_names, case-insensitive file systems).

import { describe, it, expect } from 'vitest';
import { storedRow, type StoredRow } from '../../src/dialects/mysql/mysql-inspector.js';
import { UsageError } from '../../src/util/errors.js';

const row = (schema: string, name: string): StoredRow => ({ TABLE_SCHEMA: schema, TABLE_NAME: name, TABLE_ROWS: '1', DATA_LENGTH: '0', INDEX_LENGTH: '0' });

describe('storedRow', () => {
  it('takes the stored spelling of the one match', () => {
    expect(storedRow([row('shop', 'orders')], { schema: 'Shop', name: 'Orders' })?.TABLE_NAME).toBe('orders');
    expect(storedRow([], { schema: 'Shop', name: 'Orders' })).toBeNull();
  });

  it('prefers the exact spelling among names that differ in case', () => {
    const found = [row('Shop', 'orders'), row('Shop', 'Orders'), row('Shop', 'ORDERS')];
    expect(storedRow(found, { schema: 'Shop', name: 'Orders' })).toBe(found[1]);
  });

  it('refuses to guess between several that all differ from what was typed', () => {
    expect(() => storedRow([row('Shop', 'orders'), row('Shop', 'ORDERS')], { schema: 'Shop', name: 'Orders' })).toThrow(UsageError);
    expect(() => storedRow([row('Shop', 'orders'), row('Shop', 'ORDERS')], { schema: 'Shop', name: 'Orders' })).toThrow(/differ only in letter case \(Shop\.orders, Shop\.ORDERS\)/);
  });
});
