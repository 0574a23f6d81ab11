// The pure parts of MySQL's foreign-key support: which parent changes cascade, and how
// (mysql-cascades.ts); the DDL clauses and names (mysql-foreign-keys.ts); the ALTER
// clauses refused; which deferred indexes the replay keeps; the server versions that log
// cascades themselves.

import { describe, expect, it } from 'vitest';
import { cascadesOf, referencedLeftOut, replayedKeysByParent, splitAtCascades, type CascadeEvent } from '../../src/dialects/mysql/mysql-cascades.js';
import { addKeyClause, shadowKeyName, type ForeignKey } from '../../src/dialects/mysql/mysql-foreign-keys.js';
import { foreignKeyClause } from '../../src/dialects/mysql/mysql-alter-analysis.js';
import { keyLeadsWith } from '../../src/dialects/mysql/mysql-deferred-indexes.js';
import { cascadesAreLogged } from '../../src/dialects/mysql/checks/foreign-keys.js';

const key = (over: Partial<ForeignKey>): ForeignKey => ({
  schema: 's', table: 't', name: 'fk', columns: ['p_a', 'p_b'], refSchema: 's', refTable: 'p', refColumns: ['a', 'b'], onDelete: 'CASCADE', onUpdate: 'CASCADE', ...over,
});

describe('cascadesOf', () => {
  const row = (a: unknown, b: unknown) => ({ a, b, other: "x" }) as unknown as Record<string, never>;
  it('a parent delete: CASCADE deletes, SET NULL nulls, RESTRICT and NO ACTION do nothing', () => {
    const keys = [key({ name: 'c' }), key({ name: 'n', onDelete: 'SET NULL' }), key({ name: 'r', onDelete: 'RESTRICT' }), key({ name: 'x', onDelete: 'NO ACTION' })];
    expect(cascadesOf(keys, { before: row(1, 'k'), after: null })).toEqual([
      { kind: 'cascade', action: 'delete', key: 'c', columns: ['p_a', 'p_b'], from: [1, 'k'] },
      { kind: 'cascade', action: 'set-null', key: 'n', columns: ['p_a', 'p_b'], from: [1, 'k'] },
    ]);
  });
  it('a parent update moves or nulls the children only when a referenced column changed, compared byte for byte', () => {
    const keys = [key({ name: 'c' }), key({ name: 'n', onUpdate: 'SET NULL' }), key({ name: 'r', onUpdate: 'RESTRICT' })];
    expect(cascadesOf(keys, { before: row(1, 'k'), after: { ...row(1, "k"), other: "y" } as unknown as Record<string, never> })).toEqual([]);
    expect(cascadesOf(keys, { before: row(1, 'k'), after: row(1, 'K') })).toEqual([
      { kind: 'cascade', action: 'move', key: 'c', columns: ['p_a', 'p_b'], from: [1, 'k'], to: [1, 'K'] },
      { kind: 'cascade', action: 'set-null', key: 'n', columns: ['p_a', 'p_b'], from: [1, 'k'] },
    ]);
    expect(cascadesOf([key({})], { before: row(1, Buffer.from('ab')), after: row(1, Buffer.from('ab')) })).toEqual([]);
  });
  it('finds the referenced columns whatever case the key spells them in', () => {
    const row = { Id: 7, B: 'k' } as unknown as Record<string, never>;
    expect(cascadesOf([key({ refColumns: ['id', 'b'] })], { before: row, after: null })).toEqual([{ kind: 'cascade', action: 'delete', key: 'fk', columns: ['p_a', 'p_b'], from: [7, 'k'] }]);
  });
  it('an insert, and a parent key with a NULL (no child can reference it), cascade nothing', () => {
    expect(cascadesOf([key({})], { before: null, after: row(1, 'k') })).toEqual([]);
    expect(cascadesOf([key({})], { before: row(null, 'k'), after: null })).toEqual([]);
  });
  it('names the referenced columns a parent row event leaves out, whatever their case', () => {
    expect(referencedLeftOut([key({ refColumns: ['A', 'b'] }), key({ refColumns: ['b'] })], ['a', 'other'])).toEqual(['A']);
    expect(referencedLeftOut([key({})], ['other'])).toEqual([]);
  });
  it('only cascading keys make the stream read their parents', () => {
    const byParent = replayedKeysByParent([key({ name: 'a' }), key({ name: 'b', refTable: 'q', onDelete: 'RESTRICT', onUpdate: 'NO ACTION' }), key({ name: 'c', onDelete: 'RESTRICT' })]);
    expect([...byParent.keys()]).toEqual(['p']);
    expect(byParent.get('p')!.map((k) => k.name)).toEqual(['a', 'c']);
  });
});

describe('splitAtCascades', () => {
  const del = (key: string, v: number): CascadeEvent => ({ kind: 'cascade', action: 'delete', key, columns: ['p'], from: [v] });
  const move = (v: number): CascadeEvent => ({ kind: 'cascade', action: 'move', key: 'k', columns: ['p'], from: [v], to: [v + 1] });
  const ins = (id: number) => ({ kind: 'insert' as const, after: { id } });
  it('keeps the order, and runs together only deletes (or SET NULLs) through one key that follow one another', () => {
    const parts = splitAtCascades([ins(1), del('k', 1), del('k', 2), del('j', 3), del('k', 4), ins(2), ins(3), move(5), move(6), del('k', 7)]);
    expect(parts.map((p) => ('rows' in p ? `rows:${p.rows.length}` : `${p.cascades[0]!.action}:${p.cascades[0]!.key}:${p.cascades.map((c) => c.from[0]).join('+')}`))).toEqual([
      'rows:1', 'delete:k:1+2', 'delete:j:3', 'delete:k:4', 'rows:2', 'move:k:5', 'move:k:6', 'delete:k:7',
    ]);
  });
});

describe('foreign-key DDL', () => {
  it('adds a key as declared, pointing where asked, leaving RESTRICT to the default (which the catalog shows as RESTRICT)', () => {
    expect(addKeyClause(key({ onDelete: 'RESTRICT', onUpdate: 'SET NULL' }), 'fk_ssnew')).toBe('ADD CONSTRAINT `fk_ssnew` FOREIGN KEY (`p_a`, `p_b`) REFERENCES `s`.`p` (`a`, `b`) ON UPDATE SET NULL');
    expect(addKeyClause(key({}), 'fk', { schema: 's', table: 'p_ssnew' })).toBe('ADD CONSTRAINT `fk` FOREIGN KEY (`p_a`, `p_b`) REFERENCES `s`.`p_ssnew` (`a`, `b`) ON DELETE CASCADE ON UPDATE CASCADE');
  });
  it('temporary names fit 64 characters, a long name cut with a hash', () => {
    expect(shadowKeyName('fk')).toBe('fk_ssnew');
    const long = shadowKeyName('k'.repeat(64));
    expect([...long].length).toBe(64);
    expect(long).toMatch(/^k+~[0-9a-f]{6}_ssnew$/);
    expect(shadowKeyName('k'.repeat(64))).not.toBe(shadowKeyName(`${'k'.repeat(63)}j`));
  });
  it('finds the ALTER clauses that add or drop a key, not a column or index named like one', () => {
    expect(foreignKeyClause('ADD COLUMN x INT, ADD CONSTRAINT f FOREIGN KEY (x) REFERENCES p (id)')).toBe('ADD CONSTRAINT f FOREIGN KEY (x) REFERENCES p (id)');
    expect(foreignKeyClause('DROP FOREIGN KEY f')).toBe('DROP FOREIGN KEY f');
    expect(foreignKeyClause('ADD COLUMN `foreign` INT, ADD KEY `key` (`foreign`)')).toBeNull();
    expect(foreignKeyClause("ADD COLUMN c VARCHAR(20) DEFAULT 'foreign key'")).toBeNull();
  });
  it('keeps the deferred index a cascading key leads', () => {
    expect(keyLeadsWith('KEY `t_pa` (`pa_id`)', ['pa_id'])).toBe(true);
    expect(keyLeadsWith('KEY `x` (`pa_id`,`v`)', ['PA_ID'])).toBe(true);
    expect(keyLeadsWith('KEY `x` (`pa_id2`)', ['pa_id'])).toBe(false);
    expect(keyLeadsWith('KEY `x` (`v`,`pa_id`)', ['pa_id'])).toBe(false);
    expect(keyLeadsWith('KEY `x` (`pa_id`(10))', ['pa_id'])).toBe(true);
  });
  it('MySQL 9.6 and later log cascades as row events; MariaDB does not', () => {
    expect(cascadesAreLogged('mysql', '9.6.0')).toBe(true);
    expect(cascadesAreLogged('mysql', '10.0.1')).toBe(true);
    expect(cascadesAreLogged('mysql', '8.4.3')).toBe(false);
    expect(cascadesAreLogged('mysql', '9.5.0')).toBe(false);
    expect(cascadesAreLogged('mariadb', '11.8.2-MariaDB')).toBe(false);
  });
});
