// SQL pieces derived from a CopyPlan, shared by the copier and the applier.

import type pg from 'pg';
import type { CopyPlan, Value } from '../dialect.js';
import { columnDetails, tableOid } from './postgres-inspector.js';
import { quoteIdent, quoteQualified } from './postgres-quote.js';
import { DataLossError, ShadowshiftError } from '../../util/errors.js';
import type { PgError } from './postgres-errors.js';

type Queryable = Pick<pg.Pool, 'query'>;

/**
 * Type families within which a change can round or cut values silently (numeric scale,
 * float precision, timestamp precision, numeric -> integer). A change within one family
 * is checked by a cast round trip; across families (text -> integer) the conversion is
 * a parse the user asked for, and bad input raises anyway.
 */
const FAMILY: Record<string, string> = {
  smallint: 'num', integer: 'num', bigint: 'num', numeric: 'num', real: 'num', 'double precision': 'num', money: 'num',
  'timestamp without time zone': 'time', 'timestamp with time zone': 'time', 'time without time zone': 'time',
  'time with time zone': 'time', interval: 'time', date: 'time',
  text: 'char', 'character varying': 'char', character: 'char', bit: 'bit', 'bit varying': 'bit',
};

export interface PlanColumn {
  source: string;
  target: string;
  /** Type of the original column, as format_type spells it. */
  sourceType: string;
  targetType: string;
  /** Target type without modifier (`numeric` for `numeric(12,2)`). */
  targetBase: string;
  /** pg_type oid of the target type. */
  targetTypeOid: number;
  /** The shadow column is GENERATED ALWAYS AS IDENTITY: inserts need OVERRIDING SYSTEM VALUE, updates must leave it. */
  identityAlways: boolean;
  /** Source and target types differ in a way that may round silently: checked by a cast round trip. */
  lossyCheck: boolean;
}

export interface PlanSql {
  original: string;
  shadow: string;
  columns: PlanColumn[];
  key: PlanColumn[];
  bySource: Map<string, PlanColumn>;
  overriding: boolean;
}

const cache = new WeakMap<CopyPlan, Promise<PlanSql>>();

export function planSql(db: Queryable, plan: CopyPlan): Promise<PlanSql> {
  let p = cache.get(plan);
  if (!p) {
    p = buildPlanSql(db, plan);
    p.catch(() => cache.delete(plan));
    cache.set(plan, p);
  }
  return p;
}

async function buildPlanSql(db: Queryable, plan: CopyPlan): Promise<PlanSql> {
  const oOid = await tableOid(db, plan.original.ref);
  const sOid = await tableOid(db, plan.shadow.ref);
  if (!oOid || !sOid) throw new ShadowshiftError(`table ${plan.original.ref.schema}.${!oOid ? plan.original.ref.name : plan.shadow.ref.name} no longer exists`);
  const oCols = new Map((await columnDetails(db, oOid)).map((c) => [c.name, c]));
  const sCols = new Map((await columnDetails(db, sOid)).map((c) => [c.name, c]));
  const toColumn = (m: { source: string; target: string }): PlanColumn | null => {
    const o = oCols.get(m.source);
    const s = sCols.get(m.target);
    if (!o) throw new ShadowshiftError(`column ${m.source} is not in ${plan.original.ref.name}`);
    if (!s) throw new ShadowshiftError(`column ${m.target} is not in the shadow table`);
    if (s.generated || o.generated) return null;
    return {
      source: m.source,
      target: m.target,
      sourceType: o.type,
      targetType: s.type,
      targetBase: s.baseType,
      targetTypeOid: s.typeOid,
      identityAlways: s.identity === 'a',
      lossyCheck: o.type !== s.type && FAMILY[o.baseType] !== undefined && FAMILY[o.baseType] === FAMILY[s.baseType],
    };
  };
  const columns = plan.columns.map(toColumn).filter((c): c is PlanColumn => c !== null);
  const key = plan.key.map((k) => {
    const c = toColumn(k);
    if (!c) throw new ShadowshiftError(`key column ${k.source} is generated; the copy needs a stored key`);
    return c;
  });
  const bySource = new Map(columns.map((c) => [c.source, c]));
  for (const k of key) if (!bySource.has(k.source)) bySource.set(k.source, k);
  return {
    original: quoteQualified(plan.original.ref.schema, plan.original.ref.name),
    shadow: quoteQualified(plan.shadow.ref.schema, plan.shadow.ref.name),
    columns,
    key,
    bySource,
    overriding: [...sCols.values()].some((c) => c.identity === 'a'),
  };
}

/**
 * A source value on its way into a target column. When the types differ it is cast
 * explicitly to the target's base type (so text -> integer works as ALTER ... USING
 * col::integer would) and the assignment then applies the target's modifier, which
 * raises on a too-long varchar instead of cutting it as an explicit cast would. Silent
 * rounding (numeric scale, timestamp precision) is caught by the lossy check.
 */
export function convert(expr: string, col: PlanColumn): string {
  return col.sourceType === col.targetType ? expr : `CAST(${expr} AS ${col.targetBase})`;
}

/** `("a","b")` */
export function rowOf(names: string[]): string {
  return names.length === 1 ? quoteIdent(names[0]!) : '(' + names.map(quoteIdent).join(', ') + ')';
}

/** Bound parameters for a key tuple, cast to the original key types: `($1::int, $2::text)`. */
export function keyParams(key: PlanColumn[], values: Value[], params: unknown[], useTarget = false): string {
  if (values.length !== key.length) throw new ShadowshiftError(`a key tuple has ${values.length} values, the key has ${key.length} columns`);
  const parts = key.map((k, i) => {
    params.push(toParam(values[i]));
    return `$${params.length}::${useTarget ? k.targetType : k.sourceType}`;
  });
  return parts.length === 1 ? parts[0]! : '(' + parts.join(', ') + ')';
}

/** Values are bound as text (or null): what the server sent is what it reads back. */
export function toParam(v: Value): string | null {
  if (v === null || v === undefined) return null;
  if (typeof v === 'string') return v;
  if (Buffer.isBuffer(v)) return '\\x' + v.toString('hex');
  if (typeof v === 'boolean') return v ? 't' : 'f';
  return String(v);
}

/**
 * Translates a data error of the copy or apply into DataLossError (naming the column
 * or index and the fix), or returns the error unchanged.
 */
/** `row`: the key of the row that failed, as `id=5`, when known. */
export function dataLossFrom(err: unknown, plan: CopyPlan, where: string, row?: string): unknown {
  const e = err as PgError;
  const code = e?.code;
  const table = row ? `${plan.original.ref.name} (the row ${row})` : plan.original.ref.name;
  const weakened = code === '23505' ? plan.weakenedUniqueIndexes?.find((w) => w.name === e.constraint) : undefined;
  if (weakened) {
    return new DataLossError(
      `${where}: a duplicate value violates unique index ${weakened.name} of the new table (${e.detail ?? e.message}), so a row would be lost. ` +
        `${table} has it as ${weakened.originalName}, but the ALTER changes ${weakened.change}: values the original keeps apart are equal in the new table. ` +
        `Make those rows differ under the new rules first, or leave the key's columns comparing as they do now. The original table is untouched.`,
      { cause: err },
    );
  }
  if (code === '23505') {
    return new DataLossError(
      `${where}: a duplicate value violates unique index ${e.constraint ?? '(unknown)'} of the new table (${e.detail ?? e.message}). ` +
        `The rows of ${table} are not unique on it; remove or fix the duplicates first, or drop that UNIQUE from the ALTER. The original table is untouched.`,
      { cause: err },
    );
  }
  if (code === '23502') {
    return new DataLossError(
      `${where}: column ${e.column ?? '(unknown)'} of the new table is NOT NULL but ${table} has NULL in it. ` +
        `Fill the NULLs first (UPDATE ... SET ${e.column ?? 'col'} = ... WHERE ${e.column ?? 'col'} IS NULL) or give the column a DEFAULT in the ALTER. The original table is untouched.`,
      { cause: err },
    );
  }
  if (code === '22001' || code === '22003' || code === '22P02' || code === '22007' || code === '22008' || code === '22023') {
    return new DataLossError(
      `${where}: a value of ${table} does not fit the new column type (${e.message}). ` +
        `Widen the new type, or fix the values first. The original table is untouched.`,
      { cause: err },
    );
  }
  if (code === '23514' || code === '23P01' || code === '23503') {
    return new DataLossError(`${where}: a row of ${table} violates ${e.constraint ?? 'a constraint'} of the new table (${e.message}). Fix the rows or change the ALTER. The original table is untouched.`, { cause: err });
  }
  if (code === '42804') {
    return new ShadowshiftError(`${where}: ${e.message}. The copy converts values with PostgreSQL's assignment casts; a USING expression in the ALTER is not replayed on the data.`, { cause: err });
  }
  return err;
}

/** DataLossError for a value a type change would round or cut silently. */
export function lossyValueError(col: PlanColumn, value: string, key: string, table: string): DataLossError {
  return new DataLossError(
    `column ${col.source} of ${table} changes type from ${col.sourceType} to ${col.targetType}, which would silently change the value ${JSON.stringify(value)} (key ${key}). ` +
      `Use a type that holds every value, or fix those values first. The original table is untouched.`,
  );
}
