// When two values of a MySQL/MariaDB column are equal, which is what a unique
// index over it enforces. engine/copy-plan.ts compares these before and after the
// ALTER: a different rule, or a lower precision, makes a unique key a new one.

import type { ColumnComparison } from '../dialect.js';

const INTEGER = new Set(['tinyint', 'smallint', 'mediumint', 'int', 'integer', 'bigint']);
const DECIMAL = new Set(['decimal', 'numeric', 'dec', 'fixed']);
const FRACTIONAL_SECONDS = new Set(['datetime', 'timestamp', 'time']);
const VARIABLE_STRING = new Set(['varchar', 'tinytext', 'text', 'mediumtext', 'longtext']);
const VARIABLE_BINARY = new Set(['varbinary', 'tinyblob', 'blob', 'mediumblob', 'longblob']);

/**
 * NO PAD collations (MariaDB `*_nopad_*`, MySQL 8 `*_0900_*`) tell 'a' from 'a ',
 * which a CHAR column cannot hold apart (it drops trailing spaces): there CHAR
 * and VARCHAR compare differently. Under PAD SPACE they compare the same.
 */
function isNoPad(collation: string): boolean {
  return /nopad|_0900_/i.test(collation);
}

/**
 * A binary collation compares code points, which decide every other collation of its
 * character set: two values it holds equal, each of those does too. Not across pad
 * attributes: a PAD SPACE binary collation makes 'a' and 'a ' equal, which a NO PAD
 * one keeps apart, so only a NO PAD binary collation is finest among NO PAD ones.
 */
function collationRule(collation: string, suffix = ''): ColumnComparison {
  const charset = collation.split('_')[0]!;
  const noPad = isNoPad(collation);
  const family = `${charset}, ${noPad ? 'no pad' : 'pad space'}`;
  const binary = /_bin$/i.test(collation);
  return {
    rule: `collation ${collation}${suffix}`,
    family,
    ...(binary ? { finestIn: noPad ? [family, `${charset}, pad space`] : [family] } : {}),
  };
}

/** `type` as SHOW FULL COLUMNS spells it (`decimal(12,2) unsigned`), `collation` from its Collation column. */
export function mysqlComparison(type: string, collation: string | null): ColumnComparison {
  const t = type.trim().toLowerCase();
  const base = /^[a-z]+/.exec(t)?.[0] ?? t;
  const args = /^[a-z]+\s*\(([^)]*)\)/.exec(t)?.[1]?.split(',').map((a) => Number(a.trim()));
  // Signedness and width only change which values fit; a value that does not fit fails the copy.
  if (INTEGER.has(base)) return { rule: 'integer' };
  if (base === 'bit') return { rule: 'bit' };
  if (DECIMAL.has(base)) return { rule: 'decimal', precision: args?.[1] ?? 0 };
  if (base === 'float' || base === 'double' || base === 'real') {
    const scale = args?.[1];
    return { rule: base === 'float' ? 'float' : 'double', ...(scale !== undefined && Number.isFinite(scale) ? { precision: scale } : {}) };
  }
  if (FRACTIONAL_SECONDS.has(base)) return { rule: base, precision: args?.[0] ?? 0 };
  // CHAR drops trailing spaces; under NO PAD it is a rule of its own, outside the families.
  if (base === 'char' && collation) return isNoPad(collation) ? { rule: `collation ${collation}, fixed length` } : collationRule(collation);
  if (VARIABLE_STRING.has(base) && collation) return collationRule(collation);
  // BINARY pads with zero bytes, so 'a' and 'a\0' become one value there.
  if (base === 'binary') return { rule: 'bytes, fixed length' };
  if (VARIABLE_BINARY.has(base)) return { rule: 'bytes' };
  // ENUM, SET, YEAR, DATE, JSON, UUID, INET6, spatial types: only the same type compares the same.
  return { rule: collation ? `type ${t}, collation ${collation}` : `type ${t}` };
}
