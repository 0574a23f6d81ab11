// Key values survive a trip through JSON exactly: Buffers as hex, bigints as
// decimal strings, each tagged so nothing is confused with a plain string.

import type { Value } from '../dialects/dialect.js';

type Encoded = { b: string } | { n: string } | { s: string } | { f: number } | { t: boolean } | null;

export function encodeKey(values: Value[] | null): string | null {
  if (values === null) return null;
  const encoded: Encoded[] = values.map((v) => {
    if (v === null || v === undefined) return null;
    if (Buffer.isBuffer(v)) return { b: v.toString('hex') };
    if (typeof v === 'bigint') return { n: v.toString() };
    if (typeof v === 'number') return { f: v };
    if (typeof v === 'boolean') return { t: v };
    return { s: v };
  });
  return JSON.stringify(encoded);
}

export function decodeKey(text: string | null): Value[] | null {
  if (text === null) return null;
  const parsed = JSON.parse(text) as Encoded[];
  return parsed.map((e) => {
    if (e === null) return null;
    if ('b' in e) return Buffer.from(e.b, 'hex');
    if ('n' in e) return BigInt(e.n);
    if ('f' in e) return e.f;
    if ('t' in e) return e.t;
    return e.s;
  });
}
