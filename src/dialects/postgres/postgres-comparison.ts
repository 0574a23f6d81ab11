// When two values of a PostgreSQL column are equal, which is what a unique index
// over it enforces. engine/copy-plan.ts compares these before and after the ALTER.
//
// Equality under a deterministic collation is byte-wise whatever the collation, so
// only a nondeterministic one (or citext, which lower-cases by its collation)
// belongs in the rule. numeric keeps its scale as precision, the time types their
// fractional-seconds digits (6 when unstated, as PostgreSQL stores them).

import type { ColumnComparison } from '../dialect.js';

const INTEGER = new Set(['smallint', 'integer', 'bigint']);
const VARIABLE_TEXT = new Set(['text', 'character varying']);
const FRACTIONAL_SECONDS = new Set(['timestamp without time zone', 'timestamp with time zone', 'time without time zone', 'time with time zone', 'interval']);

/**
 * `type` and `baseType` as format_type spells them with and without the modifier
 * (`numeric(12,2)` / `numeric`); `collation` only when it matters to equality.
 */
export function postgresComparison(type: string, baseType: string, collation: string | null): ColumnComparison {
  const numbers = /\(([\d,\s]+)\)/.exec(type)?.[1]?.split(',').map((n) => Number(n.trim()));
  const withCollation = (rule: string): string => (collation ? `${rule}, collation ${collation}` : rule);
  if (INTEGER.has(baseType)) return { rule: 'integer' };
  if (baseType === 'numeric') return { rule: 'numeric', ...(numbers ? { precision: numbers[1] ?? 0 } : {}) };
  if (FRACTIONAL_SECONDS.has(baseType)) return { rule: baseType, precision: numbers?.[0] ?? 6 };
  if (VARIABLE_TEXT.has(baseType)) return { rule: withCollation('text') };
  // character(n) ignores trailing spaces in comparisons; text and varchar do not.
  return { rule: withCollation(baseType) };
}
