// What a value of the original becomes in the shadow when the ALTER changes its type.
//
// Time zones. Every shadowshift connection runs at time_zone +00:00, so TIMESTAMP
// travels as UTC and TIMESTAMP→TIMESTAMP never goes through local time (a DST fold
// would change the value). A native ALTER that turns TIMESTAMP into DATETIME or DATE,
// or DATETIME/DATE into TIMESTAMP, converts in the session's time zone — the server's
// @@global.time_zone for an ordinary session. Copied or applied as they are, those
// values would be shifted by the server's offset. So for those columns the copy's
// SELECT and the applier's VALUES convert with CONVERT_TZ between UTC and the server's
// zone, the same conversion (Time_zone::TIME_to_gmt_sec / gmt_sec_to_TIME) the server
// uses for TIMESTAMP: a time in a DST fold gets the instant a native ALTER gives it.
// Where CONVERT_TZ differs from a native ALTER the expression says so explicitly:
//   - zero dates stay zero (CONVERT_TZ would give NULL);
//   - a local time skipped by a DST change is refused by a native ALTER in strict mode
//     (checked on MariaDB 10.11) but moved by CONVERT_TZ;
//   - a local time outside TIMESTAMP's range comes back unconverted from CONVERT_TZ,
//     and near the range's ends that unconverted text can be a valid UTC TIMESTAMP;
//   - an invalid date gives NULL.
// Those values become a text no TIMESTAMP accepts, so strict mode fails the applier
// and the copier's warning check fails the copy (DataLossError), as a native ALTER in
// strict mode fails. The range test compares local times with the ends of the range
// converted to the zone, exact for every zone without a transition on 1970-01-01 or
// 2038-01-19; the DST test is a round trip through UTC.
// TIMESTAMP to or from any other type (TIME, text, numbers) would go through local time
// too; those ALTERs are refused at preflight (checks/time-zones.ts).
//
// Checksums. To compare a column whose type changed, the original's value is
// converted to the shadow's type in SQL and hashed next to the shadow's value. Each
// mapping below was checked on MariaDB 10.11 to give exactly the text the server
// stores when it copies the value (INSERT ... SELECT under shadowshift's sql_mode):
// rounding of DECIMAL scale and of DECIMAL to integers, truncation of fractional
// seconds, DATE to DATETIME and back, character set conversion, CHAR's trailing-space
// stripping and VARCHAR's trailing-space truncation. Anything else is not compared.

import type { ColumnInfo, ColumnMap, CopyPlan } from '../dialect.js';
import { ShadowshiftError } from '../../util/errors.js';
import type { MyContext } from './mysql-context.js';
import { quoteIdent } from './mysql-quote.js';

export type ZoneShift = 'to-local' | 'to-utc';

const TIMESTAMP = /^timestamp(\(\d\))?$/i;
const LOCAL_TIME = /^(datetime(\(\d\))?|date)$/i;
const INTEGER = /^(tiny|small|medium|big)?int(\(\d+\))?( unsigned)?$/i;
const DECIMAL = /^decimal\(\d+,\d+\)( unsigned)?$/i;
const TEXT = /^(char|varchar)\((\d+)\)$|^(tiny|medium|long)?text$/i;

/** TIMESTAMP to DATETIME/DATE converts UTC to local time; DATETIME/DATE to TIMESTAMP the other way. */
export function zoneShift(sourceType: string, targetType: string): ZoneShift | null {
  if (TIMESTAMP.test(sourceType) && LOCAL_TIME.test(targetType)) return 'to-local';
  if (LOCAL_TIME.test(sourceType) && TIMESTAMP.test(targetType)) return 'to-utc';
  return null;
}

/** A type change between TIMESTAMP and anything but TIMESTAMP, DATETIME or DATE. */
export function unconvertibleZoneChange(sourceType: string, targetType: string): boolean {
  return TIMESTAMP.test(sourceType) !== TIMESTAMP.test(targetType) && zoneShift(sourceType, targetType) === null;
}

function typeOf(columns: ColumnInfo[], name: string): ColumnInfo | undefined {
  return columns.find((c) => c.name === name);
}

export interface TypedColumn extends ColumnMap {
  from: ColumnInfo;
  to: ColumnInfo;
}

const UNKNOWN: ColumnInfo = { name: '', type: '', nullable: true, generated: false };

/** Carried columns, in the plan's order, with their type in the original and in the shadow. */
export function typedColumns(plan: CopyPlan): TypedColumn[] {
  return plan.columns.map((m) => ({ ...m, from: typeOf(plan.original.columns, m.source) ?? UNKNOWN, to: typeOf(plan.shadow.columns, m.target) ?? UNKNOWN }));
}

export function needsZone(plan: CopyPlan): boolean {
  return typedColumns(plan).some((c) => zoneShift(c.from.type, c.to.type) !== null);
}

/** The forms @@time_zone takes: SYSTEM, an offset, or a zone name. Anything else is refused. */
const ZONE = /^(SYSTEM|[+-]\d{1,2}:\d{2}|[A-Za-z][A-Za-z0-9_+\-/]*)$/;

/**
 * The server's @@global.time_zone, the zone a native ALTER in an ordinary session
 * converts in; read once per session. Null when CONVERT_TZ cannot use it (a named zone
 * without the time zone tables), with the reason.
 */
export async function serverTimeZone(ctx: MyContext): Promise<{ zone: string; problem: string | null }> {
  ctx.timeZone ??= (async () => {
    const [r] = (await ctx.pool.query('SELECT @@global.time_zone AS z')) as unknown as [Array<{ z: string }>];
    const zone = String(r[0]!.z);
    if (!ZONE.test(zone)) return { zone, problem: `the server's time zone "${zone}" is not a form shadowshift can pass to CONVERT_TZ` };
    const [c] = (await ctx.pool.query(`SELECT CONVERT_TZ('2000-01-01 00:00:00', '+00:00', '${zone}') AS v`)) as unknown as [Array<{ v: string | null }>];
    if (c[0]!.v === null) {
      return { zone, problem: `CONVERT_TZ cannot use the server's time zone "${zone}" (the time zone tables in the mysql schema are not loaded)` };
    }
    return { zone, problem: null };
  })();
  ctx.timeZone.catch(() => (ctx.timeZone = undefined));
  return ctx.timeZone;
}

/** The zone for the plan's conversions; throws when the plan needs one CONVERT_TZ cannot use. */
export async function zoneFor(ctx: MyContext, plan: CopyPlan): Promise<string | null> {
  if (!needsZone(plan)) return null;
  const { zone, problem } = await serverTimeZone(ctx);
  if (problem) throw new ShadowshiftError(`${problem}; TIMESTAMP/DATETIME conversions cannot be done as the server does them`);
  return zone;
}

/**
 * `value` moved between UTC and `zone`. `raw` is what decides NULL: for the applier the
 * parameter itself, since the CAST around it gives NULL for a date it cannot read.
 */
export function zoneShiftSql(shift: ZoneShift, zone: string, raw: string, value: string): string {
  const z = `'${zone}'`;
  const zero = "'0000-00-00 00:00:00'";
  const fail = `CONCAT('not convertible to TIMESTAMP in time zone ', ${z}, ': ', COALESCE(${raw}, ''))`;
  const converted = shift === 'to-local' ? `CONVERT_TZ(${value}, '+00:00', ${z})` : `CONVERT_TZ(${value}, ${z}, '+00:00')`;
  // Every TIMESTAMP is a valid local time. A local time is a valid TIMESTAMP when it is in
  // range and survives the round trip, which a time skipped by a DST change does not.
  const valid =
    shift === 'to-local'
      ? 'TRUE'
      : `${value} BETWEEN CONVERT_TZ('1970-01-01 00:00:01', '+00:00', ${z}) AND CONVERT_TZ('2038-01-19 03:14:07.999999', '+00:00', ${z}) ` +
        `AND CONVERT_TZ(${converted}, '+00:00', ${z}) = ${value}`;
  return `(CASE WHEN ${raw} IS NULL THEN NULL WHEN ${value} = ${zero} THEN ${zero} WHEN ${valid} THEN COALESCE(${converted}, ${fail}) ELSE ${fail} END)`;
}

/** The copy's SELECT list: each carried column as the shadow must receive it. */
export function copyExpressions(plan: CopyPlan, zone: string | null): string[] {
  return typedColumns(plan).map((c) => {
    const col = quoteIdent(c.source);
    const shift = zoneShift(c.from.type, c.to.type);
    return shift && zone ? zoneShiftSql(shift, zone, col, col) : col;
  });
}

/** The applier's VALUES row: one expression per carried column, and how many times each uses its parameter. */
export function valueExpressions(plan: CopyPlan, zone: string | null): Array<{ sql: string; uses: number }> {
  return typedColumns(plan).map((c) => {
    const shift = zoneShift(c.from.type, c.to.type);
    if (!shift || !zone) return { sql: '?', uses: 1 };
    const sql = zoneShiftSql(shift, zone, '?', 'CAST(? AS DATETIME(6))');
    return { sql, uses: sql.split('?').length - 1 };
  });
}

function precision(type: string): number {
  return Number(/\((\d)\)/.exec(type)?.[1] ?? 0);
}

function charsetOf(column: ColumnInfo): string | null {
  return column.charset && /^[a-z0-9]+$/i.test(column.charset) ? column.charset : null;
}

/**
 * The original's value (`v`) converted to the shadow column's type, or why there is no
 * exact conversion. Types are compared as SHOW COLUMNS spells them.
 */
export function convertedForChecksum(c: TypedColumn, v: string, zone: string | null): { sql: string } | { skip: string } {
  const from = c.from.type.toLowerCase();
  const to = c.to.type.toLowerCase();
  if (from === to) return { sql: v };
  const shift = zoneShift(from, to);
  if (shift && !zone) return { skip: 'needs the server time zone' };
  const local = shift && zone ? zoneShiftSql(shift, zone, v, v) : v;
  if (/^datetime(\(\d\))?$|^timestamp(\(\d\))?$/.test(to) && /^(datetime|timestamp)(\(\d\))?$|^date$/.test(from)) {
    return { sql: `CAST(${local} AS DATETIME(${precision(to)}))` };
  }
  if (to === 'date' && /^(datetime|timestamp)(\(\d\))?$/.test(from)) return { sql: `CAST(${local} AS DATE)` };
  if (/^time(\(\d\))?$/.test(to) && /^time(\(\d\))?$/.test(from)) return { sql: `CAST(${v} AS TIME(${precision(to)}))` };
  if (INTEGER.test(to) && INTEGER.test(from)) return { sql: v }; // an integer's text does not depend on its width or sign
  if (INTEGER.test(to) && DECIMAL.test(from)) return { sql: `CAST(${v} AS ${/unsigned/.test(to) ? 'UNSIGNED' : 'SIGNED'})` };
  if (DECIMAL.test(to) && (DECIMAL.test(from) || INTEGER.test(from))) return { sql: `CAST(${v} AS ${/^decimal\(\d+,\d+\)/.exec(to)![0].toUpperCase()})` };
  const text = TEXT.exec(to);
  if (text && TEXT.test(from)) {
    const cs = charsetOf(c.to);
    if (!cs) return { skip: `the character set of ${c.target} is not known` };
    const length = text[2] ? `(${text[2]})` : '';
    const cast = `CAST(${v} AS CHAR${length} CHARACTER SET ${cs})`;
    return { sql: text[1]?.toLowerCase() === 'char' ? `TRIM(TRAILING ' ' FROM ${cast})` : cast };
  }
  return { skip: `no conversion from ${c.from.type} to ${c.to.type} is known to give exactly the stored value` };
}
