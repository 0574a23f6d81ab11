// Snapshots older than the swap.
//
// The new table's rows were written by the copy's and the applier's transactions. A
// REPEATABLE READ or SERIALIZABLE transaction whose snapshot was taken before those
// committed, and that first touches the table after the swap, resolves the name to the
// new table (catalog lookups always see the latest catalog) but reads its rows with
// the old snapshot: the table looks empty or partial. Seen: 0 of 50,000 rows, no error.
// A rewriting ALTER TABLE has the same caveat (documented as not MVCC-safe). CREATE
// INDEX CONCURRENTLY waits such transactions out (WaitForOlderSnapshots: the virtual
// transaction of every backend whose xmin is older than its reference snapshot);
// the cut-over does the same before it takes its lock.
//
// A fence notes every session of this database that holds a snapshot right now — at
// that instant every snapshot it can see was, by definition, taken before it — with its
// virtual transaction id and xmin. A session stops counting when that transaction ends
// (its vxid is gone) or its xmin moved or was cleared (the snapshot was released: a
// backend's xmin is the oldest snapshot it holds and only moves forward). An unchanged
// xmin may belong to a newer snapshot (READ COMMITTED, while an older transaction keeps
// the horizon back); it is waited for all the same, which errs on the safe side.
// Sessions without a snapshot (idle, or idle in a READ COMMITTED transaction) take a
// fresh one for their next statement and need no wait. shadowshift's own connections
// are left out: none of them reads the table through its name after the swap.
//
// pg_stat_activity's datname, pid, application name and backend_xmin, and pg_locks,
// are readable by every user; the transaction start, state and statement only by the
// session's own user, superusers and pg_read_all_stats (shown as unknown otherwise).

import type { SnapshotFence, SnapshotHolder } from '../dialect.js';
import type { PgContext } from './postgres-context.js';
import { redactQuery } from './postgres-redact.js';

interface Noted {
  pid: number;
  vxid: string;
  xmin: string;
}

// Own virtual transaction: the ExclusiveLock every backend holds on it for its transaction's life.
const HOLDERS_SQL = `
SELECT a.pid::text AS pid, l.virtualxid AS vxid, a.backend_xmin::text AS xmin, a.usename::text AS usename, a.application_name AS app, a.state,
       extract(epoch FROM clock_timestamp() - a.xact_start)::float8::text AS age, left(a.query, 400) AS query
  FROM pg_stat_activity a
  JOIN pg_locks l ON l.pid = a.pid AND l.locktype = 'virtualxid' AND l.mode = 'ExclusiveLock' AND l.granted
 WHERE a.datname = current_database() AND a.pid <> pg_backend_pid() AND a.backend_xmin IS NOT NULL
   AND coalesce(a.application_name, '') NOT LIKE 'shadowshift%'
   AND coalesce(a.backend_type, 'client backend') IN ('client backend', 'background worker')`;

type Row = { pid: string; vxid: string; xmin: string; usename: string | null; app: string | null; state: string | null; age: string | null; query: string | null };

function holderOf(r: Row): SnapshotHolder {
  return {
    pid: Number(r.pid),
    ageSeconds: r.age === null ? null : Math.round(Number(r.age) * 10) / 10,
    user: r.usename,
    application: r.app,
    state: r.state,
    query: r.query === null ? '(not visible to this user)' : redactQuery(r.query),
  };
}

class PostgresSnapshotFence implements SnapshotFence {
  constructor(
    private readonly ctx: PgContext,
    private noted: Noted[],
  ) {}

  async holders(): Promise<SnapshotHolder[]> {
    if (!this.noted.length) return [];
    // One statement, one transaction: pg_stat_activity is read once per transaction and kept.
    const r = await this.ctx.pool.query<Row>(
      `SELECT h.* FROM (${HOLDERS_SQL}) h JOIN unnest($1::int[], $2::text[], $3::text[]) n(pid, vxid, xmin) ON n.pid = h.pid::int AND n.vxid = h.vxid AND n.xmin = h.xmin`,
      [this.noted.map((n) => n.pid), this.noted.map((n) => n.vxid), this.noted.map((n) => n.xmin)],
    );
    const still = new Set(r.rows.map((x) => `${x.pid}/${x.vxid}`));
    this.noted = this.noted.filter((n) => still.has(`${n.pid}/${n.vxid}`));
    return r.rows.map(holderOf).sort((a, b) => a.pid - b.pid);
  }
}

/** Notes the sessions of the job's database that hold a snapshot now. */
export async function snapshotFence(ctx: PgContext): Promise<SnapshotFence> {
  const r = await ctx.pool.query<Row>(HOLDERS_SQL);
  return new PostgresSnapshotFence(
    ctx,
    r.rows.map((x) => ({ pid: Number(x.pid), vxid: x.vxid, xmin: x.xmin })),
  );
}
