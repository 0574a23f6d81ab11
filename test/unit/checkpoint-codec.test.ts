import { describe, it, expect } from 'vitest';
import { decodeKey, encodeKey } from '../../src/engine/checkpoint-codec.js';

describe('checkpoint key codec', () => {
  it('round-trips every value kind exactly', () => {
    const key = [Buffer.from([0, 255, 0, 0]), 18446744073709551615n, '12345678901234567890', 'café 🚀', 42, null, true];
    const back = decodeKey(encodeKey(key));
    expect(back).toEqual(key);
    expect(Buffer.isBuffer(back![0])).toBe(true);
    expect(typeof back![1]).toBe('bigint');
    expect(typeof back![2]).toBe('string');
  });
  it('keeps null as null', () => {
    expect(encodeKey(null)).toBeNull();
    expect(decodeKey(null)).toBeNull();
  });
});
