// One job per table: GET_LOCK('shadowshift:<schema>.<table>', 0) held on a dedicated
// connection for the job's life. If the process dies, the connection closes and the
// lock goes with it. `cleanup` asks IS_USED_LOCK() to tell a running job's artefacts
// from leftovers.

import type { Connection, RowDataPacket } from 'mysql2/promise';
import type { TableRef } from '../dialect.js';
import { ShadowshiftError } from '../../util/errors.js';
import { dedicatedConnection, type MyContext } from './mysql-context.js';
import { jobLockName } from './mysql-names.js';

export class MysqlJobLocks {
  private readonly held = new Map<string, Connection>();

  constructor(private readonly ctx: MyContext) {}

  async acquire(ref: TableRef): Promise<void> {
    const name = jobLockName(ref);
    if (this.held.has(name)) return;
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
      this.held.set(name, conn);
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
