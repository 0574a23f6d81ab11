import type { Value } from '../dialects/dialect.js';

/** Two key tuples as the database returned them are the same key. */
export function sameKey(a: Value[], b: Value[]): boolean {
  const norm = (v: Value) => (Buffer.isBuffer(v) ? `x${v.toString('hex')}` : `v${String(v)}`);
  return a.length === b.length && a.every((v, i) => norm(v) === norm(b[i]));
}
