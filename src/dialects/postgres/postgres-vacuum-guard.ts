// Keeps autovacuum off the shadow while the job owns it. A shadow filled with a million
// rows is due for an autovacuum (inserts alone trigger one, and the new table has never
// been analyzed): it then competes with the checksum for the same cores, and the swap's
// SHARE UPDATE EXCLUSIVE lock waits for it until deadlock_timeout cancels the worker
// (seen in bench/RESULTS.md: the cut-over's vacuumWait step, 1004 ms). Autovacuum opens
// a table with SKIP_LOCKED, so a session that holds SHARE UPDATE EXCLUSIVE on the shadow
// makes every worker pass it by. That lock does not conflict with the copy's and the
// applier's writes (ROW EXCLUSIVE) or the checksum's reads (ACCESS SHARE). It does
// conflict with the job's own CREATE INDEX CONCURRENTLY, ALTER TABLE and COMMENT on the
// shadow: finishShadow() releases it before them and takes it again after, and the swap
// releases it before it waits for older snapshots and takes the same mode itself (a
// VACUUM queued behind the guard holds a snapshot: waiting for it with the guard held
// would wait forever).
//
// The guard's transaction takes no snapshot beyond its LOCK statement and writes
// nothing, so it holds back no vacuum horizon. A lock it cannot take at once (a vacuum
// already running) is not waited for: the job goes on without the guard, as before.
// And it steps aside for anyone who waits for the shadow (checked every second): a
// manual VACUUM, ANALYZE or DDL queued behind it would otherwise wait until the
// cut-over, the applier's writes queued behind that, and a waiting ANALYZE's snapshot
// would hold back vacuum in the whole database meanwhile.
// Nothing outlives the job's connection: after a crash the lock is gone with it, and
// the table is left exactly as it would be without the guard (no storage option to undo).

import type pg from 'pg';
import type { TableRef } from '../dialect.js';
import { dedicatedClient, type PgContext } from './postgres-context.js';
import { quoteQualified } from './postgres-quote.js';

export const VACUUM_GUARD_APPLICATION_NAME = 'shadowshift vacuum guard';

const guards = new WeakMap<PgContext, { client: pg.Client; shadow: TableRef; watch: NodeJS.Timeout }>();

const WATCH_MS = 1000;

/** Releases the guard when some session waits for a lock on the shadow. */
async function yieldToWaiters(ctx: PgContext, shadow: TableRef): Promise<void> {
  const r = await ctx.pool
    .query(`SELECT 1 FROM pg_locks WHERE locktype = 'relation' AND relation = to_regclass($1) AND NOT granted LIMIT 1`, [quoteQualified(shadow.schema, shadow.name)])
    .catch(() => null);
  if (!r?.rowCount || !guardOn(ctx, shadow)) return;
  ctx.log.info({ table: shadow.name }, 'a session waits for the new table: autovacuum is no longer kept off it');
  await releaseVacuumGuard(ctx, shadow);
}

/** Takes SHARE UPDATE EXCLUSIVE on the shadow on a connection of its own, unless held already or not free at once. */
export async function holdVacuumGuard(ctx: PgContext, shadow: TableRef): Promise<void> {
  if (guards.has(ctx)) return;
  let c: pg.Client | null = null;
  try {
    c = await dedicatedClient(ctx, VACUUM_GUARD_APPLICATION_NAME);
    // The session sits idle in its transaction on purpose.
    await c.query(`SET idle_in_transaction_session_timeout = 0; BEGIN; LOCK TABLE ${quoteQualified(shadow.schema, shadow.name)} IN SHARE UPDATE EXCLUSIVE MODE NOWAIT`);
    const watch = setInterval(() => void yieldToWaiters(ctx, shadow), WATCH_MS);
    watch.unref();
    const guard = { client: c, shadow, watch };
    guards.set(ctx, guard);
    c.once('end', () => {
      clearInterval(watch);
      if (guards.get(ctx) === guard) guards.delete(ctx);
    });
  } catch (err) {
    ctx.log.debug({ err: (err as Error).message }, 'autovacuum is not kept off the new table (a vacuum or another lock holds it)');
    await c?.end().catch(() => undefined);
  }
}

/** The guard `ctx` holds; with `table`, only when it is on that table. */
function guardOn(ctx: PgContext, table?: TableRef) {
  const guard = guards.get(ctx);
  return guard && (!table || (guard.shadow.schema === table.schema && guard.shadow.name === table.name)) ? guard : undefined;
}

/** Lets autovacuum (and the job's own DDL) at the shadow again; with `only`, just when the guard is on that table. */
export async function releaseVacuumGuard(ctx: PgContext, only?: TableRef): Promise<void> {
  const guard = guardOn(ctx, only);
  if (!guard) return;
  guards.delete(ctx);
  clearInterval(guard.watch);
  await guard.client.query('ROLLBACK').catch(() => undefined);
  await guard.client.end().catch(() => undefined);
}

/**
 * ANALYZE of the shadow, so the new table has its statistics when it goes live (they
 * stay with it through the rename) and the cut-over need not analyze it after the swap.
 * ANALYZE takes the guard's lock mode, so it runs on the guard's own session: ANALYZE
 * writes catalog rows, so its transaction gets an id, which must not stay open, and the
 * same round trip commits it and takes the lock again. False when it failed (the
 * cut-over analyzes after the swap then).
 */
export async function analyzeShadow(ctx: PgContext, shadow: TableRef): Promise<boolean> {
  const table = quoteQualified(shadow.schema, shadow.name);
  const guard = guardOn(ctx, shadow);
  try {
    if (guard) await guard.client.query(`ANALYZE ${table}; COMMIT; BEGIN; LOCK TABLE ${table} IN SHARE UPDATE EXCLUSIVE MODE NOWAIT`);
    else await ctx.pool.query(`ANALYZE ${table}`);
    return true;
  } catch (err) {
    ctx.log.debug({ err: (err as Error).message }, 'analyzing the new table before the cut-over failed; it is analyzed after the swap');
    if (guard) await releaseVacuumGuard(ctx);
    return false;
  }
}
