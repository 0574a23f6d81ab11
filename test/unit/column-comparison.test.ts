import { describe, it, expect } from 'vitest';
import { mysqlComparison } from '../../src/dialects/mysql/mysql-comparison.js';
import { postgresComparison } from '../../src/dialects/postgres/postgres-comparison.js';

describe('MySQL/MariaDB column equality', () => {
  it('one rule for every integer type, whatever its width or sign', () => {
    expect(mysqlComparison('int(11)', null)).toEqual({ rule: 'integer' });
    expect(mysqlComparison('bigint(20) unsigned', null)).toEqual({ rule: 'integer' });
    expect(mysqlComparison('bigint unsigned', null)).toEqual({ rule: 'integer' });
  });
  it('DECIMAL by scale, temporal types by fractional seconds, DATETIME and TIMESTAMP apart', () => {
    expect(mysqlComparison('decimal(12,4) unsigned', null)).toEqual({ rule: 'decimal', precision: 4 });
    expect(mysqlComparison('datetime', null)).toEqual({ rule: 'datetime', precision: 0 });
    expect(mysqlComparison('datetime(6)', null)).toEqual({ rule: 'datetime', precision: 6 });
    expect(mysqlComparison('timestamp(3)', null)).toEqual({ rule: 'timestamp', precision: 3 });
    expect(mysqlComparison('float', null)).toEqual({ rule: 'float' });
    expect(mysqlComparison('double', null)).toEqual({ rule: 'double' });
  });
  it('strings by collation; CHAR apart from VARCHAR only under NO PAD', () => {
    const bin = { rule: 'collation utf8mb4_bin', family: 'utf8mb4, pad space', finestIn: ['utf8mb4, pad space'] };
    expect(mysqlComparison('varchar(16)', 'utf8mb4_bin')).toEqual(bin);
    expect(mysqlComparison('char(16)', 'utf8mb4_bin')).toEqual(bin);
    expect(mysqlComparison('text', 'utf8mb4_bin')).toEqual(bin);
    expect(mysqlComparison('char(16)', 'utf8mb4_nopad_bin')).toEqual({ rule: 'collation utf8mb4_nopad_bin, fixed length' });
    expect(mysqlComparison('varchar(16)', 'utf8mb4_0900_ai_ci')).toEqual({ rule: 'collation utf8mb4_0900_ai_ci', family: 'utf8mb4, no pad' });
  });
  it('a binary collation is the finest of its character set, a NO PAD one over PAD SPACE ones too', () => {
    expect(mysqlComparison('varchar(16)', 'utf8mb4_general_ci')).toEqual({ rule: 'collation utf8mb4_general_ci', family: 'utf8mb4, pad space' });
    expect(mysqlComparison('varchar(16)', 'utf8mb4_nopad_bin').finestIn).toEqual(['utf8mb4, no pad', 'utf8mb4, pad space']);
    expect(mysqlComparison('varchar(16)', 'latin1_bin').finestIn).toEqual(['latin1, pad space']);
    expect(mysqlComparison('varchar(16)', 'utf8mb4_unicode_ci').finestIn).toBeUndefined();
  });
  it('binary strings by kind, the rest by type', () => {
    expect(mysqlComparison('binary(16)', null)).toEqual({ rule: 'bytes, fixed length' });
    expect(mysqlComparison('varbinary(16)', null)).toEqual(mysqlComparison('blob', null));
    expect(mysqlComparison("enum('a','b')", 'utf8mb4_bin')).toEqual({ rule: "type enum('a','b'), collation utf8mb4_bin" });
  });
});

describe('PostgreSQL column equality', () => {
  it('deterministic collations compare byte-wise: text and varchar share a rule', () => {
    expect(postgresComparison('character varying(20)', 'character varying', null)).toEqual(postgresComparison('text', 'text', null));
    expect(postgresComparison('text', 'text', 'ci')).toEqual({ rule: 'text, collation ci' });
    expect(postgresComparison('character(3)', 'character', null)).toEqual({ rule: 'character' });
  });
  it('numeric by scale (none = unlimited), time types by precision (none = 6)', () => {
    expect(postgresComparison('numeric', 'numeric', null)).toEqual({ rule: 'numeric' });
    expect(postgresComparison('numeric(12,2)', 'numeric', null)).toEqual({ rule: 'numeric', precision: 2 });
    expect(postgresComparison('timestamp without time zone', 'timestamp without time zone', null)).toEqual({ rule: 'timestamp without time zone', precision: 6 });
    expect(postgresComparison('timestamp(3) with time zone', 'timestamp with time zone', null)).toEqual({ rule: 'timestamp with time zone', precision: 3 });
    expect(postgresComparison('bigint', 'bigint', null)).toEqual(postgresComparison('integer', 'integer', null));
  });
});
