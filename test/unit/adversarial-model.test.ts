// The pure parts of the adversarial workload: the model (transactions, unknown
// outcomes, the comparison), the key space, and the value text predictions that
// do not need a server.

import { describe, it, expect } from 'vitest';
import { AdvModel, keyOf, TxView, type Row } from '../support/adversarial/model.js';
import { KeySpace } from '../support/adversarial/keyspace.js';
import { digestText, jsonValue, keyText, KEY_VARIANTS, pgArrayText, scrambleSid, SMALL_GENERATORS } from '../support/adversarial/values.js';
import { mulberry32 } from '../support/workload/index.js';

const row = (tenant: string, k: string, v: string | null, sid = `${tenant}${k}`): Row => ({ tenant_id: tenant, k, sid, v });
const COLS = ['tenant_id', 'k', 'sid', 'v'];
const table = (...rows: Row[]) => new Map(rows.map((r) => [keyOf(r.tenant_id!, r.k!), r]));

describe('adversarial model', () => {
  it('applies a committed transaction: insert, update, key change, delete', () => {
    const m = new AdvModel([row('1', 'a', 'x'), row('1', 'b', 'y')]);
    const tx = new TxView(m);
    tx.insert(row('2', 'a', 'new'));
    const moved = tx.update(keyOf('1', 'a'), { k: 'A', v: 'x2' });
    expect(moved).toBe(keyOf('1', 'A'));
    tx.delete(keyOf('1', 'b'));
    expect(m.state(keyOf('1', 'a')).kind).toBe('present'); // not before commit
    tx.commit();
    expect(m.diff(table(row('2', 'a', 'new'), { ...row('1', 'A', 'x2'), sid: '1a' }), COLS).count).toBe(0);
    expect(m.state(keyOf('1', 'a')).kind).toBe('absent');
  });

  it('leaves the model alone for a transaction that is not committed', () => {
    const m = new AdvModel([row('1', 'a', 'x')]);
    const tx = new TxView(m);
    tx.delete(keyOf('1', 'a'));
    expect(tx.get(keyOf('1', 'a'))).toBeNull();
    expect(m.diff(table(row('1', 'a', 'x')), COLS).count).toBe(0);
  });

  it('refuses what the table would refuse, so the planner cannot drift from it', () => {
    const m = new AdvModel([row('1', 'a', 'x'), row('1', 'b', 'y')]);
    const tx = new TxView(m);
    expect(() => tx.insert(row('1', 'a', 'again'))).toThrow(/existing key/);
    expect(() => tx.update(keyOf('1', 'a'), { k: 'b' })).toThrow(/existing key/);
    expect(() => tx.delete(keyOf('9', 'z'))).toThrow(/missing key/);
  });

  it('accepts an unknown outcome only as all-before or all-after', () => {
    const m = new AdvModel([row('1', 'a', 'x'), row('1', 'b', 'y')]);
    const tx = new TxView(m);
    tx.update(keyOf('1', 'a'), { k: 'c' });
    tx.update(keyOf('1', 'b'), { v: 'y2' });
    tx.markUnknown();
    const before = table(row('1', 'a', 'x'), row('1', 'b', 'y'));
    const after = table({ ...row('1', 'c', 'x'), sid: '1a' }, row('1', 'b', 'y2'));
    expect(m.diff(before, COLS)).toMatchObject({ count: 0, unknownCommitted: 0 });
    expect(m.diff(after, COLS)).toMatchObject({ count: 0, unknownCommitted: 1 });
    const mixed = table(row('1', 'a', 'x'), row('1', 'b', 'y2'));
    expect(m.diff(mixed, COLS).diffs.map((d) => d.kind)).toEqual(['unknown-group']);
    expect(() => new TxView(m).get(keyOf('1', 'c'))).toThrow(/unknown key/);
  });

  it('reports missing, extra and differing rows by column', () => {
    const m = new AdvModel([row('1', 'a', 'x'), row('1', 'b', null)]);
    const { diffs } = m.diff(table(row('1', 'a', 'X'), row('1', 'a ', 'x')), COLS);
    expect(diffs).toEqual([
      { key: keyOf('1', 'a'), kind: 'value', column: 'v', expected: 'x', actual: 'X' },
      { key: keyOf('1', 'b'), kind: 'missing' },
      { key: keyOf('1', 'a '), kind: 'extra' },
    ]);
  });
});

describe('adversarial key space', () => {
  it('hands out keys no one holds, that have no row and no unknown outcome', () => {
    const m = new AdvModel([row('1', keyText(0, 0), 'x')]);
    const keys = new KeySpace(m, mulberry32(1), 1, 1);
    const taken = keys.take();
    expect(taken?.key).toBe(keyOf('1', keyText(0, 0)));
    expect(keys.take()).toBeNull(); // held
    const seen = new Set<string>();
    for (let i = 0; i < 50; i++) {
      const f = keys.fresh();
      expect(seen.has(f.key) || m.state(f.key).kind !== 'absent').toBe(false);
      seen.add(f.key);
    }
    keys.release([taken!.key]);
    expect(keys.liveCount).toBe(1);
  });
});

describe('adversarial values', () => {
  it('key variants differ by case, normal form, 4-byte characters and spaces', () => {
    const variants = KEY_VARIANTS.map((_, v) => keyText(1, v));
    expect(variants).toEqual(['straße·1', 'STRASSE·1', 'Straße·1', 'straße·1', 'straße·1 ', 'straße·1  ', '😀straße·1', 'straße·1𝒳', ' straße·1', 'straße·1 ']);
    expect(keyText(2, 3)).not.toBe(keyText(2, 0)); // 'café' composed vs decomposed
    expect(keyText(2, 3).normalize('NFC')).toBe(keyText(2, 0));
  });

  it('sids are unique and not in key order', () => {
    const sids = Array.from({ length: 10_000 }, (_, i) => scrambleSid(i + 1));
    expect(new Set(sids).size).toBe(sids.length);
    expect(sids.some((s) => s.startsWith('-'))).toBe(true);
  });

  it('writes PostgreSQL array text the way array_out does', () => {
    expect(pgArrayText([])).toBe('{}');
    expect(pgArrayText(['a', null, '', 'NULL', 'a b', 'c,d', '"q"', 'back\\slash', '{x}', 'ü😀'])).toBe('{a,NULL,"","NULL","a b","c,d","\\"q\\"","back\\\\slash","{x}",ü😀}');
  });

  it('digests large values by byte length and SHA-256', () => {
    expect(digestText('')).toBe('0:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    expect(digestText('é').split(':')[0]).toBe('2');
    expect(digestText(Buffer.from([0, 0])).split(':')[0]).toBe('2');
  });

  it('predicts text the servers print as written', () => {
    const r = mulberry32(5);
    for (let i = 0; i < 2000; i++) {
      const f = SMALL_GENERATORS.f32!(r, 'mysql').text!;
      expect(f.replace(/^-/, '').replace('.', '').replace(/^0+/, '').length).toBeLessThanOrEqual(6);
      expect(Math.fround(Number(f))).toBe(Number(f)); // exact in float32
      const dec = SMALL_GENERATORS.dec!(r, 'postgres').text!;
      expect(dec).toMatch(/^-?\d{1,20}\.\d{10}$/);
      expect(dec).not.toMatch(/^-0\.0+$/);
      const tm = SMALL_GENERATORS.tm!(r, 'mysql').text!;
      expect(tm).toMatch(/^-?\d{2,3}:[0-5]\d:[0-5]\d\.\d{6}$/);
      expect(tm).not.toMatch(/^-.*:00\.000000$/); // the decoder bug pinned in test/mysql/negative-time.test.ts
      expect(SMALL_GENERATORS.dt!(r, 'postgres').text!).not.toMatch(/\.\d*0$/); // PostgreSQL trims trailing zeros
      const js = jsonValue(r);
      expect(JSON.stringify(JSON.parse(js)).length).toBeLessThanOrEqual(js.length);
    }
  });
});
