// Parent tables at the cut-over (issue 15, option C of
// docs/design/mysql-foreign-keys-and-triggers.md): the children's foreign keys are
// repointed at the shadow under the swap's lock, after the drain, and the RENAME then
// carries them to the table's name with the shadow (keys follow the table object).
//
//   A: LOCK TABLES original WRITE, sentry WRITE, child1 WRITE, child2 WRITE, ...
//   A: (drain, B created and ready)
//   A: for each child key: DROP FOREIGN KEY k; ADD CONSTRAINT k ... REFERENCES shadow
//      (two statements, same name, foreign_key_checks=0, in place: ~5 ms each)
//   B: RENAME TABLE original TO backup, shadow TO original
//
// No write reaches a child between its repoint and the swap: A holds every child, and
// a write to the original or the shadow waits too (MariaDB prelocks the tables a key
// relates). The shadow then holds exactly the original's rows, so no key is checked
// against a lagging table.
//
// The applier must never write the shadow while a child references it (a delete would
// cascade into the child, or be refused), and a child's insert must never be checked
// against the lagging shadow. So a failed attempt puts every key back on the original
// before anything is unlocked: A does it under its own lock (measured: A can drop a key
// that references the shadow, which it has not locked, bench/fk-spike.ts, question 10).
// If A cannot (its connection died), a new session does it under
// `LOCK TABLES original WRITE, shadow WRITE, children WRITE`; if that fails too, the job
// stops with the statements. A run killed after a repoint leaves the sentry, so its
// RENAME never happens; `--resume` (MysqlCutover.settleStoppedCutover) and the drop of
// the shadow (`cleanup`, the end of a job) repoint the children back first.
//
// Left open: a crash between a key's DROP and its ADD (a few ms) loses that key; the
// log has its statements (`repointing the children`) from before the first DROP.

import type { Connection, Pool, PoolConnection, RowDataPacket } from 'mysql2/promise';
import { ShadowshiftError } from '../../util/errors.js';
import type { Logger } from '../../util/logger.js';
import { dedicatedConnection, type MyContext } from './mysql-context.js';
import { addKeyClause, alterKeys, alterKeysStatements, declaredBy, dropKeyClause, keyColumnsProblem, referencing, type ForeignKey } from './mysql-foreign-keys.js';
import { quoteTable } from './mysql-quote.js';

type Queryable = Pool | PoolConnection | Connection;
type Where = 'original' | 'dropped' | 'shadow';

const keyId = (k: ForeignKey) => JSON.stringify([k.schema, k.table, k.name]);
const describeKey = (k: ForeignKey) => `${k.table}.${k.name}`;

/** The children's keys that reference `table`, or already its shadow (a stopped attempt's): not the table's own, nor the shadow's. */
async function childKeys(db: Queryable, schema: string, table: string, shadow: string): Promise<ForeignKey[]> {
  const other = (own: string) => (k: ForeignKey) => !(k.schema === schema && k.table === own);
  return [...(await referencing(db, schema, table)).filter(other(table)), ...(await referencing(db, schema, shadow)).filter(other(shadow))];
}

/** `child WRITE` for each child table, once each. */
function lockClauses(keys: ForeignKey[]): string[] {
  return [...new Set(keys.map((k) => quoteTable(k.schema, k.table)))].map((t) => `${t} WRITE`);
}

function repointStatements(k: ForeignKey, parent: { schema: string; table: string }, dropFirst: boolean): string[] {
  return [...(dropFirst ? alterKeysStatements(k.schema, k.table, [dropKeyClause(k.name)]) : []), ...alterKeysStatements(k.schema, k.table, [addKeyClause(k, k.name, parent)])];
}

/** The keys of the children, as they move at one cut-over attempt. */
export class ChildKeys {
  private readonly where = new Map<string, Where>();

  private constructor(
    private readonly schema: string,
    private readonly table: string,
    private readonly shadow: string,
    readonly keys: ForeignKey[],
  ) {
    for (const k of keys) this.where.set(keyId(k), k.refTable === shadow ? 'shadow' : 'original');
  }

  /** Read before the lock. */
  static async read(db: Queryable, schema: string, table: string, shadow: string): Promise<ChildKeys> {
    return new ChildKeys(schema, table, shadow, await childKeys(db, schema, table, shadow));
  }

  get count(): number {
    return this.keys.length;
  }

  /** The child tables, once each (all in the table's schema: others are refused at preflight). */
  tables(): string[] {
    return [...new Set(this.keys.map((k) => k.table))];
  }

  /** What A's LOCK TABLES adds for them. */
  lockClauses(): string[] {
    return lockClauses(this.keys);
  }

  /** Under A's lock, after the drain: each key now references the shadow. Returns the milliseconds it took. */
  async toShadow(a: Connection, log: Logger): Promise<number> {
    const started = performance.now();
    const moving = this.keys.filter((k) => this.where.get(keyId(k)) !== 'shadow');
    // Before the first DROP: a crash between a DROP and its ADD loses the key, and these restore it.
    log.info(
      { keys: moving.map(describeKey), ifLost: moving.map((k) => repointStatements(k, { schema: this.schema, table: this.table }, false).join('; ')) },
      'repointing the children at the new table under the lock',
    );
    for (const k of moving) {
      await alterKeys(a, k.schema, k.table, [dropKeyClause(k.name)]);
      this.where.set(keyId(k), 'dropped');
      await alterKeys(a, k.schema, k.table, [addKeyClause(k, k.name, { schema: this.schema, table: this.shadow })]);
      this.where.set(keyId(k), 'shadow');
    }
    return Math.round(performance.now() - started);
  }

  /** The RENAME happened: the keys reference the new table under the table's name, as they should. */
  carried(): void {
    for (const k of this.keys) this.where.set(keyId(k), 'original');
  }

  /** Whether a key is (or may be) somewhere else than on the original. */
  moved(): boolean {
    return [...this.where.values()].some((w) => w !== 'original');
  }

  /** A failed attempt, still under A's lock: every key back on the original. */
  async backUnderLock(a: Connection): Promise<void> {
    for (const k of this.keys) {
      const where = this.where.get(keyId(k));
      if (where === 'original') continue;
      if (where === 'shadow') {
        await alterKeys(a, k.schema, k.table, [dropKeyClause(k.name)]);
        this.where.set(keyId(k), 'dropped');
      }
      await alterKeys(a, k.schema, k.table, [addKeyClause(k, k.name, { schema: this.schema, table: this.table })]);
      this.where.set(keyId(k), 'original');
    }
  }

  /**
   * A failed attempt whose A could not put the keys back (its connection died): a new
   * session does, under a lock of its own. Throws ShadowshiftError (the job stops) when
   * it cannot either.
   */
  async backWithOwnLock(ctx: MyContext, lockSeconds: number, log: Logger, why: string): Promise<void> {
    if (!this.moved()) return;
    try {
      const moved = await repointChildrenBack(ctx, this.schema, this.table, this.shadow, { lockSeconds, log, known: this.keys });
      for (const k of this.keys) this.where.set(keyId(k), 'original');
      if (moved.length > 0) log.warn({ keys: moved.map(describeKey), why }, 'the failed attempt could not put the children back under its own lock; another session did');
    } catch (err) {
      const parent = { schema: this.schema, table: this.table };
      throw new ShadowshiftError(
        `the cut-over attempt failed after repointing the foreign keys ${this.keys.map(describeKey).join(', ')} at the shadow ${this.shadow}, and they could not be put back on ${this.table} ` +
          `(${why}; then ${(err as Error).message}). The job stops rather than apply changes to a table they reference. ` +
          `Run \`shadowshift alter ... --resume\` or \`shadowshift cleanup --execute\` (both put them back first), or, for each key that references ${this.shadow} ` +
          `or is missing, under LOCK TABLES of ${this.table}, ${this.shadow} and the child WRITE: ${this.keys.map((k) => repointStatements(k, parent, true).join('; ')).join('; ')}`,
        { cause: err },
      );
    }
  }
}

/**
 * Every key of another table that references `shadow` (and each of `known` that is
 * missing: dropped by a cut-over that died before adding it back) is made to reference
 * `table` again, under `LOCK TABLES table WRITE, shadow WRITE, children WRITE`. Before
 * the shadow is dropped (cleanup) or written again (--resume, a failed attempt). Returns
 * the keys it moved; throws ShadowshiftError when it cannot, saying why.
 */
export async function repointChildrenBack(
  ctx: MyContext,
  schema: string,
  table: string,
  shadow: string,
  opts: { lockSeconds: number; log: Logger; known?: ForeignKey[] },
): Promise<ForeignKey[]> {
  const atShadow = (await referencing(ctx.pool, schema, shadow)).filter((k) => !(k.schema === schema && k.table === shadow));
  const missing: ForeignKey[] = [];
  for (const k of opts.known ?? []) {
    if (atShadow.some((s) => keyId(s) === keyId(k))) continue;
    const declared = await declaredBy(ctx.pool, k.schema, k.table);
    if (!declared.some((d) => d.name === k.name)) missing.push(k);
  }
  const keys = [...atShadow, ...missing];
  if (keys.length === 0) return [];
  const [exists] = await ctx.pool.query<RowDataPacket[]>('SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?', [schema, table]);
  const parent = { schema, table };
  if (exists.length === 0) {
    throw new ShadowshiftError(
      `the foreign keys ${keys.map(describeKey).join(', ')} reference ${shadow} (a stopped cut-over repointed them), and ${schema}.${table}, the table they referenced before, is gone, ` +
        `so they cannot be put back. Point each at the table it belongs to, or drop it (ALTER TABLE <child> DROP FOREIGN KEY <key>), then run again`,
    );
  }
  const conn = await dedicatedConnection(ctx);
  try {
    await conn.query(`SET SESSION lock_wait_timeout = ${Math.max(1, opts.lockSeconds)}`);
    await conn.query(`LOCK TABLES ${[`${quoteTable(schema, table)} WRITE`, `${quoteTable(schema, shadow)} WRITE`, ...lockClauses(keys)].join(', ')}`);
    try {
      for (const k of keys) {
        if (atShadow.includes(k)) await alterKeys(conn, k.schema, k.table, [dropKeyClause(k.name)]);
        await alterKeys(conn, k.schema, k.table, [addKeyClause(k, k.name, parent)]);
      }
    } finally {
      await conn.query('UNLOCK TABLES');
    }
  } catch (err) {
    throw new ShadowshiftError(
      `could not put the foreign keys ${keys.map(describeKey).join(', ')} back on ${table} (they reference ${shadow}, from a stopped cut-over): ${(err as Error).message}. ` +
        `Run again once the tables are free, or run, in one session: LOCK TABLES ${[table, shadow, ...new Set(keys.map((k) => k.table))].map((t) => `${quoteTable(schema, t)} WRITE`).join(', ')}; ` +
        `${keys.map((k) => repointStatements(k, parent, atShadow.includes(k)).join('; ')).join('; ')}; UNLOCK TABLES`,
      { cause: err },
    );
  } finally {
    await conn.end().catch(() => conn.destroy());
  }
  opts.log.info({ keys: keys.map(describeKey), table, shadow }, 'put the children\'s foreign keys back on the table (a stopped cut-over had pointed them at the shadow)');
  return keys;
}

/**
 * Before the copy: the shadow keeps what each child's key needs, the referenced columns
 * with the original's type and collation, and an index that starts with exactly those
 * columns, in order. Else the repoint at the cut-over would fail (or the key would be
 * checked without an index): fail the job now, naming the key.
 */
export async function checkChildrenFit(conn: Queryable, schema: string, table: string, shadow: string): Promise<void> {
  const keys = (await referencing(conn, schema, table)).filter((k) => !(k.schema === schema && k.table === table));
  for (const k of keys) {
    const problem = await keyColumnsProblem(conn, schema, table, shadow, k.refColumns, k.refColumns);
    if (problem) {
      throw new ShadowshiftError(
        `the foreign key ${k.name} of ${k.table} references ${table} (${k.refColumns.join(', ')}), and ${problem}: the key could not follow the table to the new definition. ` +
          `Keep those columns and an index that starts with them in the ALTER, or drop the key first (ALTER TABLE ${k.table} DROP FOREIGN KEY ${k.name})`,
      );
    }
  }
}
