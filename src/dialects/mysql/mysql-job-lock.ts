// One job per table: GET_LOCK('shadowshift:<schema>.<table>', 0) held on a dedicated
// connection for the job's life. If the process dies, the connection closes and the
// lock goes with it. `cleanup` asks IS_USED_LOCK() to tell a running job's artefacts
// from leftovers. If only the lock's connection dies (KILL, a network blip), the lock
// is taken again on a new connection; when another job got it first, `lost()`
// rejects and the engine stops this job.

import type { Connection, RowDataPacket } from 'mysql2/promise';
import type { TableRef } from '../dialect.js';
import { ShadowshiftError, TransientDatabaseError } from '../../util/errors.js';
import { RetryBudget } from '../../util/reconnect.js';
import { dedicatedConnection, type MyContext } from './mysql-context.js';
import { jobLockName } from './mysql-names.js';

/** Tries, with backoff (about 6 s), to take a lock back before it counts as lost. */
const RETAKE_ATTEMPTS = 6;

export class MysqlJobLocks {
  private readonly held = new Map<string, Connection>();
  private readonly losses = new Map<string, { promise: Promise<never>; reject: (err: Error) => void }>();

  constructor(private readonly ctx: MyContext) {}

  /** Rejects if the lock of `ref` is lost for good. */
  lost(ref: TableRef): Promise<never> {
    const name = jobLockName(ref);
    let entry = this.losses.get(name);
    if (!entry) {
      let reject!: (err: Error) => void;
      const promise = new Promise<never>((_, r) => (reject = r));
      promise.catch(() => undefined);
      entry = { promise, reject };
      this.losses.set(name, entry);
    }
    return entry.promise;
  }

  private watch(ref: TableRef, name: string, conn: Connection): void {
    let noticed = false;
    const gone = (why: string) => {
      if (noticed || this.held.get(name) !== conn) return;
      noticed = true;
      void this.retake(ref, name, why);
    };
    conn.on('error', (err: Error) => gone(err.message));
    conn.on('end', () => gone('the connection ended'));
  }

  private async retake(ref: TableRef, name: string, why: string): Promise<void> {
    this.ctx.log.warn({ lock: name, err: why }, 'the connection holding the job lock ended; taking the lock again');
    let last = why;
    // The server unreachable (a restart) is waited out (util/reconnect.ts); the lock held
    // by someone else only for RETAKE_ATTEMPTS.
    const budget = new RetryBudget(RETAKE_ATTEMPTS);
    let held = 0;
    for (let attempt = 1; held < RETAKE_ATTEMPTS; attempt++) {
      if (!this.held.has(name)) return; // released meanwhile
      await new Promise((r) => setTimeout(r, Math.min(2000, 100 * 2 ** attempt)));
      try {
        const conn = await this.lockOn(ref, name);
        if (!this.held.has(name)) {
          await conn.end().catch(() => conn.destroy());
          return;
        }
        this.held.set(name, conn);
        this.watch(ref, name, conn);
        this.ctx.log.info({ lock: name, attempt }, 'job lock taken again');
        return;
      } catch (err) {
        // The killed session may still hold it while the server tears it down: try again.
        last = (err as Error).message;
        if (!(err instanceof TransientDatabaseError)) held++;
        else if (!budget.retryAfter(attempt)) break;
      }
    }
    this.held.delete(name);
    this.lost(ref);
    this.losses.get(name)!.reject(
      new ShadowshiftError(
        `lost the job lock on ${ref.schema}.${ref.name} (its connection ended: ${why}) and could not take it again (${last}); ` +
          'this job stops so that two jobs never work on one table. Run `shadowshift cleanup` to list what is left.',
      ),
    );
  }

  async acquire(ref: TableRef): Promise<void> {
    const name = jobLockName(ref);
    if (this.held.has(name)) return;
    const conn = await this.lockOn(ref, name);
    this.held.set(name, conn);
    this.watch(ref, name, conn);
  }

  private async lockOn(ref: TableRef, name: string): Promise<Connection> {
    const conn = await dedicatedConnection(this.ctx);
    try {
      const [r] = await conn.query<RowDataPacket[]>('SELECT GET_LOCK(?, 0) AS ok, IS_USED_LOCK(?) AS holder', [name, name]);
      if (Number(r[0]?.ok) !== 1) {
        const [h] = await conn.query<RowDataPacket[]>('SELECT IS_USED_LOCK(?) AS holder', [name]);
        throw new ShadowshiftError(
          `another shadowshift job is already running on ${ref.schema}.${ref.name} (connection ${String(h[0]?.holder ?? '?')} holds the lock ${name}). ` +
            'Wait for it to finish or stop it; `shadowshift cleanup` shows its tables as in use.',
        );
      }
      return conn;
    } catch (err) {
      await conn.end().catch(() => conn.destroy());
      throw err;
    }
  }

  async release(ref: TableRef): Promise<void> {
    const name = jobLockName(ref);
    const conn = this.held.get(name);
    if (!conn) return;
    this.held.delete(name);
    await conn.query('SELECT RELEASE_LOCK(?)', [name]).catch(() => undefined);
    await conn.end().catch(() => conn.destroy());
  }

  async releaseAll(): Promise<void> {
    for (const [name, conn] of [...this.held]) {
      this.held.delete(name);
      // Released explicitly: a closed connection's locks go only once the server has processed the disconnect.
      await conn.query('SELECT RELEASE_LOCK(?)', [name]).catch(() => undefined);
      await conn.end().catch(() => conn.destroy());
    }
  }
}

export async function jobLockHeld(ctx: MyContext, ref: TableRef): Promise<boolean> {
  const [r] = await ctx.pool.query<RowDataPacket[]>('SELECT IS_USED_LOCK(?) AS holder', [jobLockName(ref)]);
  return r[0]?.holder !== null && r[0]?.holder !== undefined;
}

/** Whether a shadowshift job holds the job lock of any of `tables` (the shared tables are in use then). */
export async function anyJobLockHeld(ctx: MyContext, schema: string, tables: string[]): Promise<boolean> {
  for (let i = 0; i < tables.length; i += 200) {
    const names = tables.slice(i, i + 200).map((name) => jobLockName({ schema, name }));
    const [r] = await ctx.pool.query<RowDataPacket[]>(`SELECT ${names.map((_, j) => `IS_USED_LOCK(?) AS h${j}`).join(', ')}`, names);
    if (Object.values(r[0] ?? {}).some((h) => h !== null && h !== undefined)) return true;
  }
  return false;
}
