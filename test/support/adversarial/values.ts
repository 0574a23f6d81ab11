// Values for the adversarial workload: for every column, a generator that gives
// the value to bind AND the exact text the server will show for it (the model
// stores only that text). The text is predicted, never read back, so a value the
// engine changes on its way shows as a difference. Edge values are favoured:
// integer and decimal extremes, 2^53 + 1, unsigned values above 2^63, negative
// and >24 h TIMEs, float specials, JSON null versus SQL NULL, trailing spaces,
// NFD text, 4-byte characters, trailing zero bytes, empty versus NULL.
//
// Large values (~50 KB) are compared by byte length and SHA-256 ('len:hex'), so
// the model stays small; the values themselves exist only while bound.

import { createHash } from 'node:crypto';
import type { Dialect } from '../db.js';

export interface Rng {
  (): number;
}

export const int = (r: Rng, lo: number, hi: number): number => lo + Math.floor(r() * (hi - lo + 1));
export const pick = <T>(r: Rng, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
const chance = (r: Rng, p: number): boolean => r() < p;

/** A value to bind and the text the server shows for it (null = SQL NULL). */
export interface Cell {
  param: unknown;
  text: string | null;
}

const NULL: Cell = Object.freeze({ param: null, text: null });
const same = (v: string): Cell => ({ param: v, text: v });

/** Session time zone of the workload and the comparisons: a fixed offset, so no DST, and not the server's. */
export const SESSION_OFFSET = '-02:30';
const OFFSET_SECONDS = -(2 * 3600 + 30 * 60);

const pad = (n: number | bigint, w = 2): string => String(n).padStart(w, '0');

/** Fraction of a TIME/DATETIME(6): MySQL always prints 6 digits; PostgreSQL trims trailing zeros (and the dot). */
function frac(d: Dialect, micros: number): string {
  if (d === 'mysql') return '.' + pad(micros, 6);
  return micros === 0 ? '' : '.' + pad(micros, 6).replace(/0+$/, '');
}

function randomDate(r: Rng, minYear: number, maxYear: number): string {
  const y = int(r, minYear, maxYear);
  const m = int(r, 1, 12);
  const leap = (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
  const days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m - 1]!;
  return `${pad(y, 4)}-${pad(m)}-${pad(int(r, 1, days))}`;
}

const randomClock = (r: Rng): string => `${pad(int(r, 0, 23))}:${pad(int(r, 0, 59))}:${pad(int(r, 0, 59))}`;

function randomDigits(r: Rng, n: number): string {
  let s = String(int(r, 1, 9));
  for (let i = 1; i < n; i++) s += String(int(r, 0, 9));
  return s;
}

/** A random signed 64-bit integer as text, or an edge value. */
function int64(r: Rng): string {
  const edges = ['-9223372036854775808', '9223372036854775807', '9007199254740993', '-9007199254740993', '0', '-1'];
  if (chance(r, 0.3)) return pick(r, edges);
  return (chance(r, 0.5) ? '-' : '') + randomDigits(r, int(r, 1, 18));
}

/** DECIMAL(30,10) / numeric(30,10): both print all 10 fraction digits. */
function decimal(r: Rng): string {
  const edges = ['0.0000000000', '-0.0000000001', '99999999999999999999.9999999999', '-99999999999999999999.9999999999', '1.5000000000'];
  if (chance(r, 0.2)) return pick(r, edges);
  const intPart = chance(r, 0.3) ? '0' : randomDigits(r, int(r, 1, 20));
  const fracPart = pad(BigInt(int(r, 0, 99_999)) * 100000n + BigInt(int(r, 0, 99_999)), 10);
  const zero = intPart === '0' && /^0+$/.test(fracPart);
  return `${!zero && chance(r, 0.4) ? '-' : ''}${intPart}.${fracPart}`;
}

/** Significant digits of a plain decimal string. */
function sigDigits(s: string): number {
  return s.replace(/^-/, '').replace('.', '').replace(/^0+/, '').length;
}

/**
 * A float32 value whose exact decimal expansion has at most 6 significant digits:
 * then every printer (PostgreSQL's shortest float4 and float8 output, MySQL's
 * double text) prints exactly that expansion, and widening it to double is exact.
 */
function float32(r: Rng): string {
  for (;;) {
    const v = int(r, -99_999, 99_999) / 2 ** int(r, 0, 8);
    if (v === 0) return '0';
    if (Math.abs(v) < 0.001) continue;
    const s = String(v);
    if (!/e/.test(s) && sigDigits(s) <= 6) return s;
  }
}

/** A double with at most 15 significant digits in [1e-3, 1e15): printed as written by both servers. */
function float64(r: Rng): string {
  const digits = randomDigits(r, int(r, 1, 15));
  const point = int(r, -2, Math.min(15, digits.length));
  const s = point <= 0 ? `0.${'0'.repeat(-point)}${digits}` : point >= digits.length ? digits + '0'.repeat(point - digits.length) : `${digits.slice(0, point)}.${digits.slice(point)}`;
  const v = Number(s);
  if (!(Math.abs(v) >= 0.001 && Math.abs(v) < 1e15)) return '0.5';
  return (chance(r, 0.4) ? '-' : '') + String(v);
}

/** Float specials, with each dialect's text. MariaDB has no NaN/Infinity and prints -0 as 0. */
const DOUBLE_EDGES: Array<{ v: string; mysql: string | null; postgres: string }> = [
  { v: '1.7976931348623157e308', mysql: '1.7976931348623157e308', postgres: '1.7976931348623157e+308' },
  { v: '5e-324', mysql: '5e-324', postgres: '5e-324' },
  { v: '2.2250738585072014e-308', mysql: '2.2250738585072014e-308', postgres: '2.2250738585072014e-308' },
  { v: '-0', mysql: null, postgres: '-0' },
  { v: 'NaN', mysql: null, postgres: 'NaN' },
  { v: '-Infinity', mysql: null, postgres: '-Infinity' },
];

/** Canonical JSON text: what MariaDB keeps as written and what jsonb prints (single-letter keys in order, ', ' and ': '). */
export function jsonValue(r: Rng, depth = 0): string {
  const n = depth > 1 ? int(r, 0, 4) : int(r, 0, 6);
  switch (n) {
    case 0:
      return pick(r, ['null', 'true', 'false']);
    case 1:
      return pick(r, ['0', '-1', '2.50', '12345678901234567890', '-0.000001', String(int(r, -1e6, 1e6))]);
    case 2:
    case 3:
      return JSON.stringify(pick(r, ['', 'plain', 'quote " and back\\slash', 'line\nbreak\ttab', 'ünïcødé 😀 𝒳', 'cafe\u0301', 'ctl\u0001', 'sp ']));
    case 4:
      return 'null';
    case 5: {
      const items = Array.from({ length: int(r, 0, 3) }, () => jsonValue(r, depth + 1));
      return `[${items.join(', ')}]`;
    }
    default: {
      const keys = ['a', 'n', 's', 'z'].filter(() => chance(r, 0.5));
      return `{${keys.map((k) => `"${k}": ${jsonValue(r, depth + 1)}`).join(', ')}}`;
    }
  }
}

const NOTES = ['', ' ', 'trailing  ', 'naïve', 'cafe\u0301', 'café', 'ÅNGSTRÖM', 'ß', 'ẞ', '日本語', '😀', '𝒳𝒴', "it's", '"q"', 'back\\slash', 'tab\tnew\nline', '%_'];

function note(r: Rng, d: Dialect): string {
  const parts = Array.from({ length: int(r, 1, 4) }, () => pick(r, NOTES));
  if (d === 'mysql' && chance(r, 0.05)) parts.push('nul\u0000byte'); // PostgreSQL text cannot hold NUL
  return parts.join(chance(r, 0.5) ? ' ' : '').slice(0, 150);
}

function bytes(r: Rng, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = int(r, 0, 255);
  return b;
}

const hexText = (b: Buffer): string => b.toString('hex').toUpperCase();

/** Deterministic bytes from a seed, fast enough for 50 KB values (a 32-bit xorshift, four bytes a step). */
function stream(seed: number, n: number): Buffer {
  const out = Buffer.alloc(n + 3);
  let x = seed | 1;
  for (let off = 0; off < n; off += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out.writeInt32LE(x | 0, off);
  }
  return out.subarray(0, n);
}

/** 'byte length:sha256 hex' — how the comparisons read a large column. */
export function digestText(v: string | Buffer): string {
  const b = typeof v === 'string' ? Buffer.from(v, 'utf8') : v;
  return `${b.length}:${createHash('sha256').update(b).digest('hex')}`;
}

const BIG_ALPHABET = [...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:-_/', 'é', 'ü', '€', '日', '😀', '𝒳', '\n', "'", '"', '\\'].map((c) => Buffer.from(c, 'utf8'));
export const BIG_BYTES = 50_000;

/** A large text (~50 KB in UTF-8, incompressible enough to be stored out of line) or a small/empty/NULL one. */
export function bigText(r: Rng, large: boolean): Cell {
  if (!large) {
    const small = pick(r, [null, null, '', 'small ü 😀']);
    return small === null ? NULL : { param: small, text: digestText(small) };
  }
  const raw = stream(int(r, 0, 2 ** 31), int(r, BIG_BYTES * 0.6, BIG_BYTES * 0.8));
  const utf8 = Buffer.alloc(raw.length * 4);
  let len = 0;
  for (let i = 0; i < raw.length; i++) {
    const c = BIG_ALPHABET[raw[i]! % BIG_ALPHABET.length]!;
    for (let j = 0; j < c.length; j++) utf8[len++] = c[j]!;
  }
  const s = utf8.toString('utf8', 0, len);
  return { param: s, text: digestText(s) };
}

export function bigBinary(r: Rng, large: boolean): Cell {
  if (!large) {
    const small = pick(r, [null, Buffer.alloc(0), Buffer.from([0, 0]), bytes(r, 20)]);
    return small === null ? NULL : { param: small, text: digestText(small) };
  }
  const b = stream(int(r, 0, 2 ** 31), int(r, BIG_BYTES * 0.9, BIG_BYTES * 1.1));
  return { param: b, text: digestText(b) };
}

export const ENUM_LABELS = ['small', 'medium', 'large', 'x-large ü'] as const;
export const SET_MEMBERS = ['red', 'green', 'blue ü'] as const;

/** PostgreSQL array text: elements quoted when empty, "NULL", or holding whitespace, quotes, backslashes, braces or commas. */
export function pgArrayText(items: Array<string | null>): string {
  const el = (s: string | null) => {
    if (s === null) return 'NULL';
    if (s === '' || /^null$/i.test(s) || /[\s"\\{},]/.test(s)) return `"${s.replace(/[\\"]/g, (c) => '\\' + c)}"`;
    return s;
  };
  return `{${items.map(el).join(',')}}`;
}

const TAG_ITEMS = ['a', 'a b', 'c,d', '"q"', 'back\\slash', 'ü😀', 'NULL', 'null', '', '{x}', ' lead', null];

export type Generator = (r: Rng, d: Dialect) => Cell;

/** Ordinary (non-key, non-large) columns: name → generator. Each gives NULL about 15% of the time. */
export const SMALL_GENERATORS: Record<string, Generator> = {
  i32: (r) => same(String(chance(r, 0.2) ? pick(r, [-2147483648, 2147483647, 0, -1]) : int(r, -2_000_000_000, 2_000_000_000))),
  i64: (r) => same(int64(r)),
  u64: (r) => same(chance(r, 0.4) ? pick(r, ['18446744073709551615', '9223372036854775808', '9223372036854775807', '0']) : randomDigits(r, int(r, 1, 19))),
  dec: (r) => same(decimal(r)),
  f32: (r, d) => (d === 'postgres' && chance(r, 0.1) ? same(pick(r, ['NaN', 'Infinity', '-Infinity', '-0'])) : same(float32(r))),
  f64: (r, d) => {
    if (!chance(r, 0.2)) return same(float64(r));
    const e = pick(r, DOUBLE_EDGES.filter((x) => x[d] !== null));
    return { param: e.v, text: e[d] };
  },
  d: (r, d) => (d === 'postgres' && chance(r, 0.1) ? same(pick(r, ['infinity', '-infinity', '0044-03-15 BC'])) : same(chance(r, 0.1) ? pick(r, ['1000-01-01', '9999-12-31', '2024-02-29']) : randomDate(r, 1000, 9999))),
  dt: (r, d) => {
    if (d === 'postgres' && chance(r, 0.05)) return same('infinity');
    const us = chance(r, 0.3) ? pick(r, [0, 1, 999_999, 500_000]) : int(r, 0, 999_999);
    const base = `${randomDate(r, 1000, 9999)} ${randomClock(r)}`;
    return { param: `${base}.${pad(us, 6)}`, text: base + frac(d, us) };
  },
  ts: (r, d) => {
    // An instant inside MariaDB's TIMESTAMP range, written and read in the session's fixed offset.
    const secs = int(r, 86_400, 2_145_916_800);
    const us = chance(r, 0.3) ? pick(r, [0, 1, 999_999]) : int(r, 0, 999_999);
    const local = new Date((secs + OFFSET_SECONDS) * 1000).toISOString(); // whole seconds: exact
    const base = `${local.slice(0, 10)} ${local.slice(11, 19)}`;
    if (d === 'mysql') return { param: `${base}.${pad(us, 6)}`, text: base + frac(d, us) };
    return { param: `${base}.${pad(us, 6)}${SESSION_OFFSET}`, text: `${base}${frac(d, us)}${SESSION_OFFSET}` };
  },
  tm: (r, d) => {
    const us = chance(r, 0.3) ? pick(r, [0, 1, 250_000, 999_999]) : int(r, 0, 999_999);
    if (d === 'postgres') {
      if (chance(r, 0.05)) return same('24:00:00');
      const c = randomClock(r);
      return { param: `${c}.${pad(us, 6)}`, text: c + frac(d, us) };
    }
    // MariaDB TIME spans -838:59:59.999999 .. 838:59:59.999999; negative values below one second are a classic decoding trap.
    const h = chance(r, 0.3) ? pick(r, [0, 24, 99, 100, 838]) : int(r, 0, 838);
    const m = h === 838 ? 59 : int(r, 0, 59);
    let s = h === 838 ? 59 : int(r, 0, 59);
    const neg = chance(r, 0.4) && (h + m + s + us) > 0;
    // Known engine bug, pinned by test/mysql/negative-time.test.ts: the binlog decoder
    // turns a negative TIME with zero seconds and no fraction ('-00:01:00') into an
    // invalid value and the job fails. Left out here so the rest of the workload keeps
    // its signal; drop this line when that test passes.
    if (neg && s === 0 && us === 0) s = 1;
    const t = `${neg ? '-' : ''}${pad(h)}:${pad(m)}:${pad(s)}.${pad(us, 6)}`;
    return same(t);
  },
  js: (r) => same(jsonValue(r)),
  note: (r, d) => same(note(r, d)),
  sbin: (r) => {
    const b = pick(r, [Buffer.alloc(0), Buffer.from([0]), Buffer.from([0x41, 0, 0]), bytes(r, int(r, 1, 32))]);
    return { param: b, text: hexText(b) };
  },
  en: (r) => same(pick(r, ENUM_LABELS)),
  st: (r) => same(SET_MEMBERS.filter(() => chance(r, 0.5)).join(',')),
  flag: (r, d) => (d === 'mysql' ? same(String(pick(r, [0, 1, 1, -128, 127]))) : same(pick(r, ['true', 'false']))),
  bits: (r, d) => {
    const n = chance(r, 0.3) ? pick(r, [0, 1, 512, 1023]) : int(r, 0, 1023);
    const bin = n.toString(2).padStart(10, '0');
    // MySQL: bound as a number (a string would be taken as bytes); HEX() prints no leading zeros.
    return d === 'mysql' ? { param: n, text: n.toString(16).toUpperCase() } : same(bin);
  },
  tags: (r) => same(pgArrayText(Array.from({ length: int(r, 0, 4) }, () => pick(r, TAG_ITEMS)))),
};

/** A generated value with NULL mixed in. */
export function small(r: Rng, d: Dialect, column: string): Cell {
  if (chance(r, 0.15)) return NULL;
  const g = SMALL_GENERATORS[column];
  if (!g) throw new Error(`no generator for column ${column}`);
  return g(r, d);
}

// ---------------------------------------------------------------------------
// Keys

const BASES = ['abc', 'straße', 'café', 'ǆemal', 'İzmir', 'ﬁle', 'Ωmega', 'naïve', 'x', 'Ǳ'];

/**
 * Variants of one stem that are DISTINCT keys under a binary/deterministic
 * collation: case, Unicode normal form, 4-byte characters, leading and trailing
 * spaces (MariaDB's utf8mb4_bin is PAD SPACE and would fold those: the key column
 * uses utf8mb4_nopad_bin). Some variants can coincide for some stems; callers
 * treat equal strings as one key.
 */
export const KEY_VARIANTS: ReadonlyArray<(s: string) => string> = [
  (s) => s,
  (s) => s.toUpperCase(),
  (s) => s.charAt(0).toUpperCase() + s.slice(1),
  (s) => s.normalize('NFD'),
  (s) => s + ' ',
  (s) => s + '  ',
  (s) => '😀' + s,
  (s) => s + '𝒳',
  (s) => ' ' + s,
  (s) => s.toLowerCase().normalize('NFD') + ' ',
];

export function stem(family: number): string {
  return `${BASES[family % BASES.length]}·${family}`;
}

export function keyText(family: number, variant: number): string {
  return KEY_VARIANTS[variant % KEY_VARIANTS.length]!(stem(family));
}

/** A bijection of n onto signed 41-bit values, so sid order has nothing to do with key order. */
export function scrambleSid(n: number): string {
  const mask = (1n << 41n) - 1n;
  return String(((BigInt(n) * 0x9e3779b97n) & mask) - (1n << 40n));
}
