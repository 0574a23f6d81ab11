// Who keeps the cut-over's LOCK TABLE waiting, and how such a session is ended, for the
// engine's --kill-blockers-after (engine/blocker-killer.ts decides when, and whom).

import type pg from 'pg';
import type { LockBlockers } from '../../dialect.js';
import { dedicatedClient, type PgContext } from '../postgres-context.js';
import { redactQuery } from '../postgres-redact.js';

/**
 * The sessions `c`'s lock request waits for (pg_blocking_pids), looked for and ended
 * from a connection of their own: the pool may be busy draining meanwhile. `close`
 * once the request is granted or given up.
 */
export async function pgLockBlockers(ctx: PgContext, c: pg.Client): Promise<LockBlockers & { close(): Promise<void> }> {
  const pid = Number((await c.query<{ pid: string }>(`SELECT pg_backend_pid()::text AS pid`)).rows[0]!.pid);
  let k: Promise<pg.Client> | null = null;
  const checker = () => (k ??= dedicatedClient(ctx, 'shadowshift blocker check'));
  return {
    sessionLabel: 'pid',
    async find() {
      const r = await (await checker()).query<{ pid: string; usename: string | null; app: string | null; state: string | null; xact_start: string | null; age: string | null; query: string | null; ours: string }>(
        `SELECT a.pid::text AS pid, a.usename::text AS usename, a.application_name AS app, a.state, a.xact_start::text AS xact_start,
                extract(epoch FROM clock_timestamp() - coalesce(a.xact_start, a.query_start, a.backend_start))::text AS age,
                left(a.query, 400) AS query, (a.application_name LIKE 'shadowshift%')::text AS ours
           FROM pg_stat_activity a
          WHERE a.pid = ANY (pg_blocking_pids($1::int)) AND a.pid <> pg_backend_pid()`,
        [pid],
      );
      return r.rows.map((b) => ({
        session: Number(b.pid),
        ageSeconds: b.age === null ? null : Number(b.age),
        user: b.usename,
        application: b.app,
        state: b.state,
        since: b.xact_start,
        query: redactQuery(b.query ?? ''),
        ours: b.ours === 'true',
      }));
    },
    async end(session) {
      const t = await (await checker()).query<{ ok: string }>(`SELECT pg_terminate_backend($1::int)::text AS ok`, [session]);
      return t.rows[0]?.ok === 'true';
    },
    async close() {
      await k?.then((client) => client.end()).catch(() => undefined);
    },
  };
}
