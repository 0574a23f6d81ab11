// Secondary indexes built after the copy instead of before: measured here on 1M rows
// (bigint PK + two secondary indexes), the chunked copy took 7.1 s into a shadow with
// its indexes and 3.9 s + 0.6 s (copy + CREATE INDEX) without them.
//
// createShadow({ deferIndexes: true }) drops the shadow's secondary indexes and
// index-backed constraints (the key stays: ON CONFLICT needs it) and records their
// definitions in the shadow's table comment (free until the cut-over, which sets the
// original's comment), so a resumed job finds them too. finishShadow() builds them
// with CREATE INDEX CONCURRENTLY after the last chunk (the engine keeps applying the
// stream meanwhile). The cut-over calls it too, before taking any lock, so a shadow
// is never swapped in without them.

import type pg from 'pg';
import type { TableRef } from '../dialect.js';
import type { PgContext } from './postgres-context.js';
import { dedicatedClient } from './postgres-context.js';
import { releaseVacuumGuard } from './postgres-vacuum-guard.js';
import { quoteIdent, quoteLiteral, quoteQualified } from './postgres-quote.js';
import { tableOid } from './postgres-inspector.js';
import { DataLossError, ShadowshiftError, TransientDatabaseError } from '../../util/errors.js';
import { classify, isTransient, pgCode, type PgError } from './postgres-errors.js';

const MARK = 'shadowshift:deferred-indexes:';

interface Deferred {
  /** CREATE INDEX statement with the index's own name. */
  index: string;
  name: string;
  /**
   * Set when the index backs a constraint: ALTER TABLE ... ADD CONSTRAINT <name> <kind>
   * USING INDEX, which takes the constraint's timing but not the rest of its definition.
   * The index itself is built immediate; USING INDEX ... DEFERRABLE makes it deferred.
   * Absent flags (a job recorded by an older version) mean NOT DEFERRABLE; the cut-over's
   * definition check refuses the swap if that was wrong.
   */
  constraint?: { name: string; kind: 'UNIQUE' | 'PRIMARY KEY'; deferrable?: boolean; initiallyDeferred?: boolean };
  /** Exclusion constraints cannot be added USING INDEX: their full definition (timing included). */
  constraintDef?: string;
  /** The exclusion constraint's own name (older records: the index's, which LIKE makes the same). */
  constraintName?: string;
}

interface Stored {
  comment: string | null;
  items: Deferred[];
}

/** Drops the secondary indexes of a new shadow (inside createShadow's transaction) and records them. */
export async function deferIndexes(c: pg.ClientBase, ref: TableRef): Promise<void> {
  const oid = await tableOid(c, ref);
  const r = await c.query<{ name: string; def: string; conname: string | null; contype: string | null; condef: string | null; deferrable: string | null; deferred: string | null }>(
    `SELECT ic.relname AS name, pg_get_indexdef(i.indexrelid) AS def, con.conname, con.contype::text AS contype, pg_get_constraintdef(con.oid) AS condef,
            con.condeferrable::text AS deferrable, con.condeferred::text AS deferred
       FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
       LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid AND con.contype IN ('u','x','p')
      WHERE i.indrelid = $1 AND NOT i.indisprimary`,
    [oid],
  );
  const comment = await c.query<{ d: string | null }>(`SELECT obj_description($1::oid, 'pg_class') AS d`, [oid]);
  const items: Deferred[] = [];
  const table = quoteQualified(ref.schema, ref.name);
  for (const row of r.rows) {
    const item: Deferred = { index: row.def, name: row.name };
    if (row.conname && row.contype === 'u') {
      item.constraint = { name: row.conname, kind: 'UNIQUE', deferrable: row.deferrable === 'true', initiallyDeferred: row.deferred === 'true' };
    }
    if (row.conname && row.contype === 'x') {
      item.constraintDef = row.condef!;
      item.constraintName = row.conname;
    }
    if (row.conname && (row.contype === 'u' || row.contype === 'x')) await c.query(`ALTER TABLE ${table} DROP CONSTRAINT ${quoteIdent(row.conname)}`);
    else await c.query(`DROP INDEX ${quoteQualified(ref.schema, row.name)}`);
    items.push(item);
  }
  if (items.length) {
    const stored: Stored = { comment: comment.rows[0]?.d ?? null, items };
    await c.query(`COMMENT ON TABLE ${table} IS ${quoteLiteral(MARK + JSON.stringify(stored))}`);
  }
}

async function readStored(db: Pick<pg.ClientBase, 'query'>, ref: TableRef): Promise<Stored | null> {
  const r = await db.query<{ d: string | null }>(`SELECT obj_description(to_regclass($1), 'pg_class') AS d`, [quoteQualified(ref.schema, ref.name)]);
  const d = r.rows[0]?.d;
  if (!d || !d.startsWith(MARK)) return null;
  return JSON.parse(d.slice(MARK.length)) as Stored;
}

/**
 * Until `stop()`, cancels whatever `c` runs once `signal` aborts, again every 200 ms:
 * a cancel that arrives between two statements cancels nothing, and a build left running
 * would deadlock with the job's DROP of the shadow (whileApplying in engine/cutover-checks.ts).
 */
async function cancelOnAbort(ctx: PgContext, c: pg.Client, signal: AbortSignal | undefined): Promise<() => void> {
  if (!signal) return () => undefined;
  const pid = (await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
  let timer: NodeJS.Timeout | null = null;
  const cancel = () => {
    void ctx.pool.query('SELECT pg_cancel_backend($1)', [pid]).catch(() => undefined);
    timer = setTimeout(cancel, 200);
  };
  const onAbort = () => cancel();
  if (signal.aborted) cancel();
  else signal.addEventListener('abort', onAbort, { once: true });
  return () => {
    signal.removeEventListener('abort', onAbort);
    if (timer) clearTimeout(timer);
  };
}

function throwIfCancelled(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new ShadowshiftError("the build of the new table's indexes was cancelled: the job is stopping");
}

/** Builds the deferred indexes of the shadow; a no-op when there are none. */
export async function finishShadow(ctx: PgContext, ref: TableRef, signal?: AbortSignal): Promise<void> {
  const stored = await readStored(ctx.pool, ref).catch((err: unknown) => Promise.reject(classify(err, "reading the new table's deferred indexes")));
  if (!stored) return;
  throwIfCancelled(signal);
  // The build's locks conflict with the guard's (held again by the caller afterwards).
  await releaseVacuumGuard(ctx);
  const c = await dedicatedClient(ctx, 'shadowshift index build').catch((err: unknown) => Promise.reject(classify(err, "building the new table's indexes")));
  const table = quoteQualified(ref.schema, ref.name);
  let stopCancelling = () => undefined as void;
  try {
    stopCancelling = await cancelOnAbort(ctx, c, signal);
    for (const item of stored.items) {
      throwIfCancelled(signal);
      const left = await c.query<{ v: string; con: string }>(
        `SELECT i.indisvalid::text AS v, EXISTS (SELECT 1 FROM pg_constraint WHERE conindid = i.indexrelid)::text AS con FROM pg_index i WHERE i.indexrelid = to_regclass($1)`,
        [quoteQualified(ref.schema, item.name)],
      );
      let built = false;
      if (left.rows.length) {
        // Left by an interrupted build: keep it when valid (an interruption between the
        // build and ADD CONSTRAINT leaves a valid index without its constraint), rebuild when not.
        if (left.rows[0]!.v === 'true' && (left.rows[0]!.con === 'true' || !item.constraint)) continue;
        if (left.rows[0]!.v === 'true') built = true;
        else await c.query(`DROP INDEX CONCURRENTLY ${quoteQualified(ref.schema, item.name)}`);
      }
      if (item.constraintDef) {
        // Exclusion constraints: no CONCURRENTLY form.
        const name = item.constraintName ?? item.name;
        await c.query(`ALTER TABLE ${table} ADD CONSTRAINT ${quoteIdent(name)} ${item.constraintDef}`).catch((err: unknown) => {
          if (pgCode(err) !== '23P01') throw err;
          const e = err as PgError;
          throw new DataLossError(
            `rows conflict under exclusion constraint ${name} of the new table (${e.detail ?? e.message}); remove the conflicts first, or drop that constraint from the ALTER. The original table is untouched.`,
            { cause: err },
          );
        });
        continue;
      }
      try {
        if (!built) await c.query(item.index.replace(/^CREATE (UNIQUE )?INDEX /, 'CREATE $1INDEX CONCURRENTLY '));
      } catch (err) {
        // Cancelled: the half-built index goes with the shadow, and DROP INDEX CONCURRENTLY would wait like the build.
        throwIfCancelled(signal);
        await c.query(`DROP INDEX CONCURRENTLY IF EXISTS ${quoteQualified(ref.schema, item.name)}`).catch(() => undefined);
        if (pgCode(err) === '23505') {
          const e = err as PgError;
          throw new DataLossError(
            `a duplicate value violates unique index ${item.name} of the new table (${e.detail ?? e.message}). The rows are not unique on it; remove the duplicates first, or drop that UNIQUE from the ALTER. The original table is untouched.`,
            { cause: err },
          );
        }
        throw err;
      }
      if (item.constraint) {
        const timing = item.constraint.deferrable ? ` DEFERRABLE INITIALLY ${item.constraint.initiallyDeferred ? 'DEFERRED' : 'IMMEDIATE'}` : '';
        await c.query(`ALTER TABLE ${table} ADD CONSTRAINT ${quoteIdent(item.constraint.name)} ${item.constraint.kind} USING INDEX ${quoteIdent(item.name)}${timing}`);
      }
    }
    await c.query(`COMMENT ON TABLE ${table} IS ${stored.comment === null ? 'NULL' : quoteLiteral(stored.comment)}`);
  } catch (err) {
    throwIfCancelled(signal);
    if (err instanceof ShadowshiftError) throw err;
    // A lost connection (sessions ended, a restart) leaves at most an invalid index, which
    // the next call drops and builds again: the engine retries.
    if (isTransient(err)) throw new TransientDatabaseError(`building the new table's indexes: ${(err as Error).message}`, { cause: err });
    throw new ShadowshiftError(`building the new table's indexes failed: ${(err as Error).message}`, { cause: err });
  } finally {
    stopCancelling();
    await c.end().catch(() => undefined);
  }
}
