// Compares original and shadow before the cut-over on one consistent snapshot.
//
// Connection L locks the original IN SHARE MODE (reads go on, writes wait) while the
// engine drains the stream up to a marker; then connection O starts a REPEATABLE READ
// transaction, takes its snapshot and exports it (pg_export_snapshot), connection S
// starts a REPEATABLE READ transaction on that same snapshot (SET TRANSACTION
// SNAPSHOT); then L commits, releasing the lock. The snapshot sees the original as of
// the lock and the shadow with every change before the lock applied: the two must be
// equal. Writes are blocked only for the drain. O hashes the original and S the
// shadow at the same time.
//
// A range is compared by its row count and the exact (numeric) sum of a 64-bit hash
// of each row's image, with the key columns in it and the original's values cast to
// the shadow's types as the copy did. Two values count as the same only when they print
// the same: NaN, -0, a numeric's scale, json's spelling, every byte of text and bytea.
// Each column is hashed by its type's own hash function where that function already
// has this property over all the value's bits (int2, int4, boolean, bytea, uuid, date,
// oid; text and varchar under COLLATE "C", so bytes, whatever the column's collation);
// bigint and the 64-bit time types by their binary send form (their own hash functions
// fold 64 bits to 32); any other type by its text, as its output function prints it
// (with the session's pinned DateStyle, extra_float_digits and bytea_output).
// hash_record_extended combines the column hashes; that combination is linear, so a
// value moved from one row to another would cancel out in the sum, and each row's hash
// is mixed again (sideSql), which is not. Against hashing the whole row's text
// (ROW(...)::text) this reads 1M rows of the benchmark's table in about half the time
// (0.50-0.53 s against 1.0-1.4 s per side on this machine). The
// sum does not depend on row order, so no sort. Each side runs in one backend, without
// parallel workers: the two sides already keep two cores busy, and on the 2-core bench
// machine adding workers made it slower (2.5 s instead of 1.8 s for 1M rows, with the
// text image), as well as heavier on a server that is serving its application meanwhile.
//
// Strength: this detects accidental differences, it is not a cryptographic proof.
// The hash functions are Jenkins' lookup3 with 64 bits out. The key is part of every
// image, so a row changed, missing, extra, or carrying another row's values changes
// the set of images; two different sets of images with the same count then have the
// same sum only if the hashes of the differing rows happen to cancel exactly, about
// 2^-64 for hashes that behave like random numbers (the sum is exact, nothing wraps).
// Someone writing crafted rows into the shadow could find such a collision, but
// someone who can write into the shadow needs none.
//
// The verifier compares the whole tables first: a range open at both ends is one
// statement per side without a key condition, a plain sequential scan. Against key
// ranges over the key index that reads each side in about 40% of the time (0.34 s
// against 0.85 s for the bench's 1M rows, measured with an earlier, cheaper image) and
// saves the 0.3 s the verifier spent cutting ranges. Not in pieces of heap blocks (TID
// range scans): those read through shared buffers without the small ring a large
// sequential scan uses, so they evict the application's cached pages and write out the
// shadow's dirty ones on the way (1.1 s against 0.6 s per side, measured). Only when
// the totals differ does the verifier cut key ranges, one count and sum per range and
// side, so a range that differs is named and recopied as before.

import pg from 'pg';
import type { Checksummer, ChecksumView, CopyPlan, KeyRange, Value } from '../dialect.js';
import { dedicatedClient, type PgContext } from './postgres-context.js';
import { classify } from './postgres-errors.js';
import { convert, dataLossFrom, keyParams, planSql, rowOf, type PlanColumn, type PlanSql } from './postgres-plan-sql.js';
import { quoteIdent, quoteLiteral } from './postgres-quote.js';
import { CutoverAttemptError } from '../../util/errors.js';
import { PostgresCopier } from './postgres-copier.js';

/** Keys per statement when a range is recopied key by key (CopyPlan.keepsOtherColumns). */
const RECOPY_KEYS_PER_STATEMENT = 2000;
import { analyzeShadow } from './postgres-vacuum-guard.js';

function rangeWhere(p: PlanSql, range: KeyRange, params: unknown[], side: 'source' | 'target'): string {
  const k = rowOf(p.key.map((x) => x[side]));
  const conds: string[] = [];
  if (range.after) conds.push(`${k} > ${keyParams(p.key, range.after, params, side === 'target')}`);
  if (range.upTo) conds.push(`${k} <= ${keyParams(p.key, range.upTo, params, side === 'target')}`);
  return conds.length ? conds.join(' AND ') : 'TRUE';
}

/** The compared columns: the key first when the copied columns lack it (every image must name its row). */
function imageColumns(p: PlanSql): PlanColumn[] {
  const missing = p.key.filter((k) => !p.columns.some((c) => c.source === k.source));
  return [...missing, ...p.columns];
}

/**
 * Built-in types (by pg_type oid) whose hash function calls two values equal exactly
 * when they print the same, over all their bits: hashed as they are. bool, bytea, int2,
 * int4, oid, date, uuid. Not int8 nor the 64-bit time types: their hash functions fold
 * the value to 32 bits first (-1 and 4294967295 hash alike); those go in as their
 * binary send form, 8 bytes hashed whole.
 */
const HASHED_AS_IS = new Set([16, 17, 21, 23, 26, 1082, 2950]);
const SENT: Record<number, string> = { 20: 'int8send', 1083: 'time_send', 1114: 'timestamp_send', 1184: 'timestamptz_send' };
/** text and varchar: their hash follows the column's collation (a nondeterministic one ignores case), so under "C". */
const HASHED_AS_BYTES = new Set([25, 1043]);

/** One column's part of the image: `value` is already of the shadow's type. */
function imagePart(value: string, c: PlanColumn): string {
  if (HASHED_AS_IS.has(c.targetTypeOid)) return value;
  const send = SENT[c.targetTypeOid];
  if (send) return `${send}(${value})`;
  if (HASHED_AS_BYTES.has(c.targetTypeOid)) return `${value} COLLATE "C"`;
  return `(${value})::text COLLATE "C"`;
}

/**
 * `SELECT count, sum of row hashes ... WHERE ` for one side; the range's condition is
 * appended. Each row's combined hash is mixed again through its numeric form: 64 bits
 * in, 64 out, not linear (hashint8extended would fold it to 32 bits).
 */
function sideSql(p: PlanSql, side: 'source' | 'target'): string {
  // Both sides as the shadow's types: the original's values through the same
  // assignment casts the copy used.
  const parts = imageColumns(p).map((c) =>
    imagePart(side === 'target' || c.sourceType === c.targetType ? quoteIdent(c[side]) : `CAST(${convert(quoteIdent(c.source), c)} AS ${c.targetType})`, c),
  );
  return (
    `SELECT count(*)::text AS n, coalesce(sum(hash_numeric_extended(hash_record_extended(ROW(${parts.join(', ')}), 0)::numeric, 0)), 0)::text AS h ` +
    `FROM ${side === 'source' ? p.original : p.shadow} WHERE `
  );
}

class PgChecksumView implements ChecksumView {
  private readonly sql: { source: string; target: string };

  constructor(
    private readonly original: pg.Client,
    private readonly shadow: pg.Client,
    private readonly p: PlanSql,
    /** The shadow's ANALYZE, run beside the compare (PostgresChecksummer.open). */
    private readonly analyzing: Promise<unknown>,
  ) {
    this.sql = { source: sideSql(p, 'source'), target: sideSql(p, 'target') };
  }

  private async side(side: 'source' | 'target', range: KeyRange): Promise<{ n: string; h: string }> {
    const params: unknown[] = [];
    const where = rangeWhere(this.p, range, params, side);
    const r = await (side === 'source' ? this.original : this.shadow).query<{ n: string; h: string }>(this.sql[side] + where, params);
    return r.rows[0]!;
  }

  async compare(range: KeyRange): Promise<{ same: boolean; originalRows: number; shadowRows: number }> {
    // Both finish before an error is thrown, so close() never races a running query.
    const [o, s] = await Promise.allSettled([this.side('source', range), this.side('target', range)]);
    if (o.status === 'rejected') throw classify(o.reason, 'comparing original and shadow');
    if (s.status === 'rejected') throw classify(s.reason, 'comparing original and shadow');
    return { same: o.value.h === s.value.h && o.value.n === s.value.n, originalRows: Number(o.value.n), shadowRows: Number(s.value.n) };
  }

  async close(): Promise<void> {
    for (const c of [this.shadow, this.original]) {
      await c.query('ROLLBACK').catch(() => undefined);
      await c.end().catch(() => undefined);
    }
    await this.analyzing;
  }
}

export class PostgresChecksummer implements Checksummer {
  private readonly copier: PostgresCopier;
  private analyzing: Promise<unknown> | null = null;

  constructor(private readonly ctx: PgContext) {
    this.copier = new PostgresCopier(ctx);
  }

  async open(plan: CopyPlan, options: { lockTimeoutMs: number; drainUnderLock: () => Promise<void> }): Promise<ChecksumView> {
    const p = await planSql(this.ctx.pool, plan);
    const lock = await dedicatedClient(this.ctx, 'shadowshift checksum lock');
    const snaps: pg.Client[] = [];
    try {
      for (let i = 0; i < 2; i++) snaps.push(await dedicatedClient(this.ctx, 'shadowshift checksum'));
      const [o, s] = snaps as [pg.Client, pg.Client];
      await lock.query('BEGIN');
      await lock.query(`SET LOCAL lock_timeout = ${Math.max(1, Math.floor(options.lockTimeoutMs))}`);
      try {
        await lock.query(`LOCK TABLE ${p.original} IN SHARE MODE`);
      } catch (err) {
        const e = classify(err, 'locking the original for the checksum');
        throw new CutoverAttemptError(`could not lock ${plan.original.ref.name} for the checksum in time: ${(e as Error).message}`, { cause: err });
      }
      await options.drainUnderLock();
      await o.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      await o.query(`SET LOCAL max_parallel_workers_per_gather = 0`);
      // The snapshot is taken here, under the lock, and S shares it exactly.
      const id = (await o.query<{ id: string }>('SELECT pg_export_snapshot() AS id')).rows[0]!.id;
      await s.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      await s.query(`SET TRANSACTION SNAPSHOT ${quoteLiteral(id)}`);
      await s.query(`SET LOCAL max_parallel_workers_per_gather = 0`);
      await lock.query('COMMIT');
      return new PgChecksumView(o, s, p, this.analyzeBeside(plan));
    } catch (err) {
      for (const c of snaps) await c.end().catch(() => undefined);
      throw err;
    } finally {
      await lock.query('ROLLBACK').catch(() => undefined);
      await lock.end().catch(() => undefined);
    }
  }

  /**
   * Each checksum of a shadow also analyzes it, on another session: the shadow's side of
   * the compare is the slower one (its first full read sets every row's hint bits), so a
   * core is free meanwhile, and the cut-over then skips its ANALYZE after the swap (0.6 s
   * for the bench's 1M rows). Again at every checksum while the cut-over is postponed:
   * the guard keeps autovacuum's analyze off the shadow meanwhile.
   */
  private analyzeBeside(plan: CopyPlan): Promise<unknown> {
    const shadow = plan.shadow.ref;
    this.analyzing ??= analyzeShadow(this.ctx, shadow).then((ok) => {
      this.ctx.analyzedShadow = ok ? shadow.name : undefined;
      this.analyzing = null;
    });
    return this.analyzing;
  }

  /** Every key in `range`, in either table, as text: the rows a recopy of the range deletes or writes. */
  private async keysIn(p: PlanSql, range: KeyRange): Promise<Value[][]> {
    const params: unknown[] = [];
    const select = (side: 'source' | 'target', table: string) =>
      `SELECT ${p.key.map((k) => `${quoteIdent(k[side])}::text`).join(', ')} FROM ${table} WHERE ${rangeWhere(p, range, params, side)}`;
    const r = await this.ctx.pool.query({ text: `${select('source', p.original)} UNION ${select('target', p.shadow)}`, values: params, rowMode: 'array' });
    return r.rows as Value[][];
  }

  /** Replaces the shadow's rows with these keys with a fresh, share-locked copy of the original's. */
  async recopyKeys(plan: CopyPlan, keys: Value[][]): Promise<void> {
    if (keys.length === 0) return;
    const p = await planSql(this.ctx.pool, plan);
    const params: unknown[] = [];
    const targetParams: unknown[] = [];
    const lhs = (side: 'source' | 'target') => (p.key.length === 1 ? quoteIdent(p.key[0]![side]) : `(${p.key.map((k) => quoteIdent(k[side])).join(', ')})`);
    const sourceKeys = keys.map((k) => keyParams(p.key, k, params)).join(', ');
    const targetKeys = keys.map((k) => keyParams(p.key, k, targetParams, true)).join(', ');
    const where = `${lhs('source')} IN (${sourceKeys})`;
    const named = keys.map((k) => p.key.map((c, i) => `${c.source}=${String(k[i])}`).join(', ')).join('; ');
    // The shadow's other columns keep their values: rows gone from the live table go, the others change in place.
    const keyTargets = new Set(p.key.map((k) => k.target));
    const updates = p.columns.filter((c) => !keyTargets.has(c.target)).map((c) => `${quoteIdent(c.target)} = EXCLUDED.${quoteIdent(c.target)}`);
    const onConflict = !plan.keepsOtherColumns
      ? ''
      : ` ON CONFLICT (${p.key.map((k) => quoteIdent(k.target)).join(', ')}) ${updates.length > 0 ? `DO UPDATE SET ${updates.join(', ')}` : 'DO NOTHING'}`;
    const gone = plan.keepsOtherColumns
      ? ` AND NOT EXISTS (SELECT 1 FROM ${p.original} o WHERE ${p.key.map((k) => `o.${quoteIdent(k.source)} = ${p.shadow}.${quoteIdent(k.target)}`).join(' AND ')})`
      : '';
    const client = await this.ctx.pool.connect();
    try {
      await client.query('BEGIN');
      await client.query(`DELETE FROM ${p.shadow} WHERE ${lhs('target')} IN (${targetKeys})${gone}`, targetParams);
      await client.query(
        `INSERT INTO ${p.shadow} (${p.columns.map((c) => quoteIdent(c.target)).join(', ')})${p.overriding ? ' OVERRIDING SYSTEM VALUE' : ''} ` +
          `SELECT ${p.columns.map((c) => convert(quoteIdent(c.source), c)).join(', ')} FROM ${p.original} WHERE ${where} FOR SHARE${onConflict}`,
        params,
      );
      await this.copier.checkLossy(client, p, plan, where, params);
      // A read of the original into the shadow, as the copier's chunks (postgres-original-reads.ts says why, and why after).
      await this.ctx.reads.recordCurrent(client);
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw classify(dataLossFrom(err, plan, 'taking rows back from the live table', named), 'copying rows again');
    } finally {
      client.release();
    }
  }

  async recopy(plan: CopyPlan, range: KeyRange): Promise<void> {
    const p = await planSql(this.ctx.pool, plan);
    if (plan.keepsOtherColumns) {
      // In parts: a range of the checksum may hold more keys than a statement takes parameters (65535).
      const keys = await this.keysIn(p, range);
      for (let i = 0; i < keys.length; i += RECOPY_KEYS_PER_STATEMENT) await this.recopyKeys(plan, keys.slice(i, i + RECOPY_KEYS_PER_STATEMENT));
      return;
    }
    const params: unknown[] = [];
    const where = rangeWhere(p, range, params, 'target');
    await this.copier.copyChunk(plan, range, undefined, async (client) => {
      await client.query(`DELETE FROM ${p.shadow} WHERE ${where}`, params);
    });
  }
}

export type { Value };
