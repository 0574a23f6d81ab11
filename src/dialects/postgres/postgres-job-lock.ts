// One job per table: a session-level advisory lock held on a dedicated connection for
// the job's life. If the process dies, the connection closes and the lock goes with it.

import type pg from 'pg';
import type { TableRef } from '../dialect.js';
import { dedicatedClient, type PgContext } from './postgres-context.js';
import { ShadowshiftError } from '../../util/errors.js';

/** First half of every shadowshift advisory lock key (hashtext('shadowshift')). */
export const LOCK_CLASS_SQL = `hashtext('shadowshift')`;

export function lockKeyText(ref: TableRef): string {
  return `${ref.schema}.${ref.name}`;
}

export class PostgresJobLocks {
  private readonly held = new Map<string, { client: pg.Client; ref: TableRef }>();

  constructor(private readonly ctx: PgContext) {}

  async acquire(ref: TableRef): Promise<void> {
    const key = lockKeyText(ref);
    if (this.held.has(key)) return;
    const c = await dedicatedClient(this.ctx, 'shadowshift job lock');
    try {
      const r = await c.query<{ ok: string }>(`SELECT pg_try_advisory_lock(${LOCK_CLASS_SQL}, hashtext($1))::text AS ok`, [key]);
      if (r.rows[0]?.ok !== 'true') {
        throw new ShadowshiftError(
          `another shadowshift job is already running on ${ref.schema}.${ref.name} (it holds the table's advisory lock). ` +
            `Wait for it to finish, or stop it; \`shadowshift cleanup\` shows its artefacts as in use.`,
        );
      }
      this.held.set(key, { client: c, ref: { ...ref } });
    } catch (err) {
      await c.end().catch(() => undefined);
      throw err;
    }
  }

  async release(ref: TableRef): Promise<void> {
    const key = lockKeyText(ref);
    const c = this.held.get(key)?.client;
    if (!c) return;
    this.held.delete(key);
    await c.query(`SELECT pg_advisory_unlock(${LOCK_CLASS_SQL}, hashtext($1))`, [key]).catch(() => undefined);
    await c.end().catch(() => undefined);
  }

  async releaseAll(): Promise<void> {
    for (const { ref } of [...this.held.values()]) await this.release(ref);
  }
}

/** Whether some session holds the job lock of this table. */
export async function jobLockHeld(db: Pick<pg.Pool, 'query'>, ref: TableRef): Promise<boolean> {
  const r = await db.query<{ held: string }>(
    `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2
        AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
        AND classid = ((${LOCK_CLASS_SQL})::bigint & 4294967295)::text::oid
        AND objid = (hashtext($1)::bigint & 4294967295)::text::oid)::text AS held`,
    [lockKeyText(ref)],
  );
  return r.rows[0]?.held === 'true';
}
