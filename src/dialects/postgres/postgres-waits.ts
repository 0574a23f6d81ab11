// What the job's own sessions wait for on other sessions (the engine's wait watcher,
// engine/wait-watcher.ts, polls this only while the job runs an operation that can wait).
//
// Every connection of the job (pool and dedicated) is in ctx.sessions by backend pid.
// pg_blocking_pids() names the sessions a backend waits for on a heavyweight lock: a
// table lock (the cut-over's LOCK TABLE, the checksum's lock, the cleanup's DROP), a row
// or transaction lock (a chunk's FOR SHARE behind a writer), and the virtual transaction
// lock CREATE INDEX CONCURRENTLY waits on for older transactions and snapshots, whose
// step pg_stat_progress_create_index names. The job's own sessions are never counted as
// blockers. Other users' transaction start, state and statement are visible only to
// superusers and pg_read_all_stats (unknown otherwise).

import type { ObservedWait, SessionBlocker } from '../dialect.js';
import type { PgContext } from './postgres-context.js';
import { redactQuery } from './postgres-redact.js';

interface Row {
  waiter: string;
  waiter_app: string | null;
  waiter_query: string | null;
  wtype: string | null;
  wevent: string | null;
  build_phase: string | null;
  lockers_total: string | null;
  lockers_done: string | null;
  pid: string;
  usename: string | null;
  app: string | null;
  state: string | null;
  age: string | null;
  query: string | null;
}

const WAITS_SQL = `
SELECT w.pid::text AS waiter, w.application_name AS waiter_app, left(w.query, 400) AS waiter_query, w.wait_event_type AS wtype, w.wait_event AS wevent,
       p.phase AS build_phase, p.lockers_total::text AS lockers_total, p.lockers_done::text AS lockers_done,
       b.pid::text AS pid, b.usename::text AS usename, b.application_name AS app, b.state,
       extract(epoch FROM clock_timestamp() - coalesce(b.xact_start, b.query_start))::float8::text AS age,
       left(b.query, 400) AS query
  FROM pg_stat_activity w
  LEFT JOIN pg_stat_progress_create_index p ON p.pid = w.pid
 CROSS JOIN LATERAL unnest(pg_blocking_pids(w.pid)) AS bp(pid)
  JOIN pg_stat_activity b ON b.pid = bp.pid
 WHERE w.pid = ANY ($1::int[]) AND NOT (b.pid = ANY ($1::int[]))
 ORDER BY w.pid, b.pid`;

function blockerOf(r: Row): SessionBlocker {
  return {
    session: Number(r.pid),
    ageSeconds: r.age === null ? null : Math.round(Number(r.age) * 10) / 10,
    user: r.usename,
    application: r.app || null,
    state: r.state,
    query: r.query === null ? '(not visible to this user)' : redactQuery(r.query),
  };
}

function describe(r: Row): Pick<ObservedWait, 'what' | 'detail'> {
  const who = r.waiter_app || 'shadowshift';
  if (r.build_phase) {
    const lockers = r.lockers_total && r.lockers_total !== '0' ? ` (${r.lockers_done ?? 0} of ${r.lockers_total} transactions done)` : '';
    return { what: /snapshot/i.test(r.build_phase) ? 'old-snapshots' : 'lock', detail: `${who}: CREATE INDEX CONCURRENTLY ${r.build_phase}${lockers}` };
  }
  const statement = r.waiter_query ? `: ${redactQuery(r.waiter_query)}` : '';
  if (r.waiter_query && /pg_create_logical_replication_slot/i.test(r.waiter_query)) {
    // The slot's consistent start needs every transaction that was writing when it began to end.
    return { what: 'lock', detail: `${who} (pid ${r.waiter}): creating the replication slot waits for transactions that were writing when it began${statement}` };
  }
  const rowLock = r.wevent === 'transactionid' || r.wevent === 'tuple';
  const on = r.wevent === 'relation' ? 'a table lock' : rowLock ? 'a row lock' : `a lock (${r.wtype ?? '?'}: ${r.wevent ?? '?'})`;
  return { what: rowLock ? 'row-lock' : 'lock', detail: `${who} (pid ${r.waiter}) waits for ${on}${statement}` };
}

/** The first of the job's sessions that waits on another session, with every session it waits for; null when none does. */
export async function observeWaits(ctx: PgContext): Promise<ObservedWait | null> {
  const pids = [...(ctx.sessions ?? [])];
  if (!pids.length) return null;
  const r = await ctx.pool.query<Row>(WAITS_SQL, [pids]);
  const first = r.rows[0];
  if (!first) return null;
  const rows = r.rows.filter((x) => x.waiter === first.waiter);
  return { ...describe(first), blockers: rows.map(blockerOf) };
}
