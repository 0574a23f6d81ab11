// Key comparisons for chunking and matching, written out as OR-ed ranges
// (a > ? OR (a = ? AND b > ?)) rather than row constructors: every MySQL/MariaDB
// version's range optimizer uses the index for this form.

import type { Value } from '../dialect.js';
import { quoteIdent } from './mysql-quote.js';

/**
 * `(cols) > (values)` / `>=` / `<=` / `<` over a composite key, with its parameters.
 * `collate[i]`: the collation column i compares in, when not its own.
 */
export function keyCompare(
  columns: string[],
  op: '>' | '<=' | '<' | '>=',
  values: Value[],
  alias?: string,
  collate?: ReadonlyArray<string | null>,
): { sql: string; params: Value[] } {
  if (columns.length !== values.length) throw new Error(`key has ${columns.length} columns but ${values.length} values were given`);
  const collated = new Map(columns.map((c, i) => [c, collate?.[i] ?? null]));
  const col = (c: string) => {
    const as = collated.get(c);
    return (alias ? `${alias}.` : '') + quoteIdent(c) + (as && /^[a-z0-9_]+$/i.test(as) ? ` COLLATE ${as}` : '');
  };
  const strict = op === '>' || op === '<' ? op : op === '>=' ? '>' : '<';
  const params: Value[] = [];
  const ors: string[] = [];
  for (let i = 0; i < columns.length; i++) {
    const ands: string[] = [];
    for (let j = 0; j < i; j++) {
      ands.push(`${col(columns[j]!)} = ?`);
      params.push(values[j]);
    }
    const last = i === columns.length - 1;
    ands.push(`${col(columns[i]!)} ${last ? op : strict} ?`);
    params.push(values[i]);
    ors.push(ands.length === 1 ? ands[0]! : `(${ands.join(' AND ')})`);
  }
  return { sql: ors.length === 1 ? ors[0]! : `(${ors.join(' OR ')})`, params };
}

export function orderBy(columns: string[], desc = false): string {
  return columns.map((c) => `${quoteIdent(c)}${desc ? ' DESC' : ''}`).join(', ');
}

/** A stable text form of a key tuple, for coalescing rows by key. */
export function keyString(values: Value[]): string {
  return values
    .map((v) => (v === null || v === undefined ? 'N' : Buffer.isBuffer(v) ? `x${v.toString('hex')}` : `v${typeof v === 'bigint' ? v.toString() : String(v)}`))
    .join('\u0001');
}
