// Cut-over: one transaction that write-locks the original, lets the engine drain the
// stream up to a marker, and swaps the tables by renaming, carrying everything LIKE
// does not copy. A waiting client query resolves the table name again after it gets
// its lock (PostgreSQL re-checks name lookups when invalidations arrive while it
// waits), so it lands in the new table: no client ever sees the name missing.
//
// Application writes queue from the moment the lock is requested until COMMIT, so the
// work under it is kept short: every catalog fact the swap needs is read (one query)
// and turned into statements before the lock. Under the lock the same query runs again
// while the engine drains, and when its answer is unchanged (it usually is: the lock
// keeps DDL out; a GRANT, which takes no lock on the table, is the exception) the
// prepared statements and the COMMIT go to the server in one round trip. A changed
// answer builds the statements again from it, under the lock. Nothing under the lock
// scans a table: max() of an identity column is read there only when an index serves
// it. Measured (bench/RESULTS.md workload, 300 ops/s): the original locked 450-480 ms
// before, about 20 ms after (most of the old time was the marker's commit waiting for
// the WAL writer; see writeMarker in postgres-change-stream.ts).

import type pg from 'pg';
import type { ArtefactNames, CopyPlan, Cutover, CutoverOptions } from '../dialect.js';
import { dedicatedClient, type PgContext } from './postgres-context.js';
import { isTransient, pgCode } from './postgres-errors.js';
import { finishShadow } from './postgres-deferred-indexes.js';
import { asideName, jobTag, truncateBytes } from './postgres-names.js';
import { quoteIdent, quoteLiteral, quoteQualified } from './postgres-quote.js';
import { CutoverAttemptError, ShadowshiftError } from '../../util/errors.js';

const RETRYABLE = new Set(['55P03', '40P01', '57014', '40001']);

interface FkFrom {
  schema: string;
  table: string;
  name: string;
  def: string;
}

export class PostgresCutover implements Cutover {
  constructor(private readonly ctx: PgContext) {}

  async swap(plan: CopyPlan, names: ArtefactNames, options: CutoverOptions): Promise<void> {
    const entered = Date.now();
    // Never swap in a shadow whose deferred indexes are not built (before any lock).
    await finishShadow(this.ctx, { schema: plan.original.ref.schema, name: names.shadow });
    const c = await dedicatedClient(this.ctx, 'shadowshift cut-over');
    let validate: FkFrom[] = [];
    let newName = '';
    let committing = false;
    try {
      await c.query(
        `BEGIN; SET LOCAL lock_timeout = ${Math.max(1, Math.floor(options.lockTimeoutMs))}; ` +
          `SET LOCAL statement_timeout = ${Math.max(30_000, options.lockTimeoutMs * 5)}; ` +
          `SET LOCAL idle_in_transaction_session_timeout = ${Math.max(60_000, options.lockTimeoutMs * 30)}`,
      );
      const orig = quoteQualified(plan.original.ref.schema, plan.original.ref.name);
      // Dependent views and tables with foreign keys to the original are changed under
      // the lock too. Lock them first, in one statement: a client that reads a view holds
      // the view while it waits for the original, so locking the original first would
      // deadlock with it (seen in the cut-over test: the client got 40P01).
      const others = await c.query<{ rel: string }>(
        `SELECT DISTINCT quote_ident(n.nspname) || '.' || quote_ident(v.relname) AS rel, 1 AS o
           FROM pg_depend d JOIN pg_rewrite rw ON rw.oid = d.objid JOIN pg_class v ON v.oid = rw.ev_class JOIN pg_namespace n ON n.oid = v.relnamespace
          WHERE d.classid = 'pg_rewrite'::regclass AND d.refobjid = $1::regclass AND v.oid <> $1::regclass AND v.relkind = 'v'
         UNION
         SELECT DISTINCT quote_ident(n.nspname) || '.' || quote_ident(ch.relname), 2
           FROM pg_constraint con JOIN pg_class ch ON ch.oid = con.conrelid JOIN pg_namespace n ON n.oid = ch.relnamespace
          WHERE con.confrelid = $1::regclass AND con.contype = 'f' AND con.conrelid <> $1::regclass
         ORDER BY 2, 1`,
        [orig],
      );
      // Everything the swap needs is read and turned into statements before the lock
      // (a dependent object we cannot carry fails the job here, before anything waits).
      const prepared = await this.prepareSwap(c, plan, names);
      // Where the time goes from the lock request (application writes queue behind it from here) to COMMIT.
      const steps: Record<string, number> = {};
      let t0 = performance.now();
      const mark = (k: string) => {
        const n = performance.now();
        steps[k] = Math.round(n - t0);
        t0 = n;
      };
      const started = Date.now();
      const killer = options.killBlockersAfterMs === undefined ? null : await this.blockerKiller(c, plan, options);
      try {
        await c.query(`LOCK TABLE ${[...others.rows.map((r) => r.rel), orig].join(', ')} IN ACCESS EXCLUSIVE MODE`);
      } finally {
        await killer?.stop();
      }
      mark('lockWait');
      // beforeLockMs: from entering swap() to the lock request; events committed meanwhile are drained under the lock.
      options.log.info({ table: plan.original.ref.name, beforeLockMs: started - entered, waitedMs: Date.now() - started }, 'original locked; draining');
      // While the engine drains the stream (other connections), this connection reads the
      // catalog again, now that the lock keeps DDL on the table out, in one query. Both
      // are awaited before anything else: the drain must never outlive the attempt.
      const [drained, reread] = await Promise.allSettled([options.drainUnderLock(), this.readFacts(c, plan, names, prepared.candidates)]);
      if (drained.status === 'rejected') throw drained.reason;
      if (reread.status === 'rejected') throw reread.reason;
      mark('drain');
      // Unchanged since the pre-read (the usual case): the prepared statements hold.
      // Otherwise build them again from what the catalog says now, under the lock.
      let swap = prepared.swap;
      if (reread.value.text !== prepared.facts.text) {
        options.log.info({ table: plan.original.ref.name }, 'the catalog changed between the pre-read and the lock; building the swap again under the lock');
        swap = (await this.prepareSwap(c, plan, names, { facts: reread.value, queried: prepared.candidates, preMax: prepared.preMax })).swap;
      }
      validate = swap.validate;
      newName = plan.original.ref.name;
      if (swap.views.length === 0) {
        // One round trip: every statement and the COMMIT. A dropped connection is
        // resolved by swapCommitted below, whichever statement it hit.
        committing = true;
        await c.query(swap.statements.concat('COMMIT').join(';\n'));
      } else {
        await c.query(swap.statements.join(';\n'));
        for (const v of swap.views) await this.repointView(c, v);
        committing = true;
        await c.query('COMMIT');
      }
      mark('swapAndCommit');
      options.log.info({ table: plan.original.ref.name, lockedMs: Date.now() - started, steps, statements: swap.statements.length, catalogChanged: swap !== prepared.swap }, 'cut-over committed');
      this.blockedMs.delete(`${plan.original.ref.schema}.${plan.original.ref.name}`);
    } catch (err) {
      await c.query('ROLLBACK').catch(() => undefined);
      await c.end().catch(() => undefined);
      // The connection died during COMMIT: the swap may or may not have committed. Look.
      const committed = committing && isTransient(err) ? await this.swapCommitted(plan, names) : null;
      if (committed === true) {
        options.log.warn({ table: plan.original.ref.name, err: (err as Error).message }, 'the cut-over connection dropped during COMMIT, but the swap is committed');
        for (const fk of validate) {
          options.log.warn(
            { table: fk.table, constraint: fk.name },
            `foreign key left NOT VALID; validate it: ALTER TABLE ${quoteQualified(fk.schema, fk.table)} VALIDATE CONSTRAINT ${quoteIdent(fk.name)}`,
          );
        }
        return;
      }
      // A dropped connection before COMMIT rolled the whole attempt back on the server.
      if (RETRYABLE.has(pgCode(err) ?? '') || (!committing && isTransient(err)) || committed === false) {
        throw new CutoverAttemptError(
          `cut-over attempt on ${plan.original.ref.name} gave up (${(err as Error).message}); everything is as it was before the attempt`,
          { cause: err },
        );
      }
      throw err;
    }
    // After the lock is gone: validate re-pointed foreign keys (no blocking lock), refresh statistics.
    try {
      for (const fk of validate) {
        await c.query(`ALTER TABLE ${quoteQualified(fk.schema, fk.table)} VALIDATE CONSTRAINT ${quoteIdent(fk.name)}`);
      }
      await c.query(`ANALYZE ${quoteQualified(plan.original.ref.schema, newName)}`);
    } catch (err) {
      options.log.warn({ err: (err as Error).message }, 'after cut-over: validating foreign keys or ANALYZE failed; the swap itself is committed');
    } finally {
      await c.end().catch(() => undefined);
    }
  }

  /**
   * --kill-blockers-after: while `c` waits for its lock, once the sessions blocking it
   * have held us up for killBlockersAfterMs (counted across attempts, so a threshold
   * longer than the lock timeout still takes effect), end them from a second
   * connection, logging each one. Only sessions whose transaction (or statement) is at
   * least that old are ended, so an application write that merely happens to be running
   * is never killed; shadowshift's own connections are never ended.
   */
  private async blockerKiller(c: pg.Client, plan: CopyPlan, options: CutoverOptions): Promise<{ stop(): Promise<void> }> {
    const afterMs = Math.max(0, options.killBlockersAfterMs ?? 0);
    const key = `${plan.original.ref.schema}.${plan.original.ref.name}`;
    const waitedBefore = this.blockedMs.get(key) ?? 0;
    const pid = Number((await c.query<{ pid: string }>(`SELECT pg_backend_pid()::text AS pid`)).rows[0]!.pid);
    const started = Date.now();
    let stopped = false;
    let wake: (() => void) | null = null;
    const sleep = (ms: number) =>
      new Promise<void>((resolve) => {
        const t = setTimeout(done, ms);
        function done() {
          clearTimeout(t);
          wake = null;
          resolve();
        }
        wake = done;
      });
    const killed = new Set<number>();
    const run = async () => {
      await sleep(Math.max(0, afterMs - waitedBefore));
      let k: pg.Client | null = null;
      try {
        while (!stopped) {
          k ??= await dedicatedClient(this.ctx, 'shadowshift blocker check');
          if (stopped) break;
          const r = await k.query<{ pid: string; usename: string | null; app: string | null; state: string | null; xact_start: string | null; query: string | null; ours: string }>(
            `SELECT a.pid::text AS pid, a.usename::text AS usename, a.application_name AS app, a.state, a.xact_start::text AS xact_start,
                    left(a.query, 400) AS query, (a.application_name LIKE 'shadowshift%')::text AS ours
               FROM pg_stat_activity a
              WHERE a.pid = ANY (pg_blocking_pids($1::int)) AND a.pid <> pg_backend_pid()
                AND coalesce(a.xact_start, a.query_start, a.backend_start) <= clock_timestamp() - make_interval(secs => $2::float8 / 1000)`,
            [pid, afterMs],
          );
          for (const b of r.rows) {
            const bpid = Number(b.pid);
            if (killed.has(bpid)) continue;
            killed.add(bpid);
            const who = { pid: bpid, user: b.usename, application: b.app, state: b.state, xactStart: b.xact_start, query: redactQuery(b.query ?? '') };
            if (b.ours === 'true') {
              options.log.warn({ table: plan.original.ref.name, ...who }, 'a shadowshift connection blocks the cut-over; not ending it');
              continue;
            }
            const t = await k.query<{ ok: string }>(`SELECT pg_terminate_backend($1::int)::text AS ok`, [bpid]);
            options.log.warn(
              { table: plan.original.ref.name, blockedMs: waitedBefore + Date.now() - started, ended: t.rows[0]?.ok === 'true', ...who },
              '--kill-blockers-after: ended a session that blocked the cut-over',
            );
          }
          await sleep(100);
        }
      } catch (err) {
        if (!stopped) options.log.warn({ err: (err as Error).message }, '--kill-blockers-after: could not look for or end blocking sessions');
      } finally {
        await k?.end().catch(() => undefined);
      }
    };
    const running = run();
    return {
      stop: async () => {
        stopped = true;
        (wake as (() => void) | null)?.();
        await running;
        this.blockedMs.set(key, waitedBefore + Date.now() - started);
      },
    };
  }

  /** After an ambiguous COMMIT: true when the shadow's name is gone and the backup exists (the swap committed). */
  private async swapCommitted(plan: CopyPlan, names: ArtefactNames): Promise<boolean> {
    const schema = plan.original.ref.schema;
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        const r = await this.ctx.pool.query<{ done: string }>(
          `SELECT (to_regclass($1) IS NULL AND to_regclass($2) IS NOT NULL)::text AS done`,
          [quoteQualified(schema, names.shadow), quoteQualified(schema, names.backup)],
        );
        return r.rows[0]?.done === 'true';
      } catch {
        await new Promise((res) => setTimeout(res, 200 * (attempt + 1)));
      }
    }
    throw new ShadowshiftError(
      `the cut-over connection dropped during COMMIT and the server cannot be asked whether the swap committed: check whether ${names.shadow} still exists (not committed) or ${names.backup} exists (committed)`,
    );
  }

  /** How long the cut-over of a table has waited for its lock over failed attempts. */
  private readonly blockedMs = new Map<string, number>();

  /**
   * Reads the catalog facts the swap needs (before the lock; under it, `again` hands in
   * the facts just read), makes sure the free-name check covered every name the swap
   * may give a new index, and builds the statements. Before the lock it also reads
   * max() of identity columns no index serves.
   */
  private async prepareSwap(
    c: pg.Client,
    plan: CopyPlan,
    names: ArtefactNames,
    again?: { facts: Facts; queried: string[]; preMax: Map<string, string | null> },
  ): Promise<Prepared> {
    let queried = again?.queried ?? [];
    let facts = again?.facts ?? (await this.readFacts(c, plan, names, queried));
    const candidates = nameCandidates(plan, names, facts);
    if (candidates.some((n) => !queried.includes(n))) {
      queried = [...new Set([...queried, ...candidates])].sort();
      facts = await this.readFacts(c, plan, names, queried);
    }
    // The identity sequences continue past their last value and max(column). Under the
    // lock that max is read only when a btree index leads with the column (one probe);
    // otherwise the column is scanned here, before the lock, and an explicit value
    // written between this read and the lock is not seen. Without such an index the
    // column has no unique constraint of its own (a partial or multi-column one aside),
    // and the original's sequence would have handed out the same values.
    const preMax = new Map(again?.preMax ?? []);
    if (!again) {
      const shadow = quoteQualified(plan.original.ref.schema, names.shadow);
      for (const col of identityColumns(plan, facts)) {
        if (indexServesMax(facts, col)) continue;
        const r = await c.query<{ m: string | null }>(`SELECT max(${quoteIdent(col)})::bigint::text AS m FROM ${shadow}`);
        preMax.set(col, r.rows[0]?.m ?? null);
      }
    }
    return { facts, candidates: queried, preMax, swap: buildSwap(plan, names, facts, preMax) };
  }

  /** Every catalog fact the swap depends on, in one query (one round trip), as JSON. */
  private async readFacts(c: pg.Client, plan: CopyPlan, names: ArtefactNames, candidates: string[]): Promise<Facts> {
    const schema = plan.original.ref.schema;
    const r = await c.query<{ facts: string }>(FACTS_SQL, [quoteQualified(schema, plan.original.ref.name), quoteQualified(schema, names.shadow), schema, candidates]);
    const text = r.rows[0]!.facts;
    return { ...(JSON.parse(text) as Omit<Facts, 'text'>), text };
  }

  /** Points a dependent view at the new table: CREATE OR REPLACE, or recreated when a column type under it changed. */
  private async repointView(c: pg.Client, v: ViewFact): Promise<void> {
    const view = quoteQualified(v.schema, v.name);
    const withOptions = v.options ? ` WITH (${v.options})` : '';
    const def = v.def.replace(/;\s*$/, '');
    try {
      await c.query(`SAVEPOINT view_replace; CREATE OR REPLACE VIEW ${view}${withOptions} AS ${def}; RELEASE SAVEPOINT view_replace`);
      return;
    } catch (err) {
      await c.query('ROLLBACK TO SAVEPOINT view_replace');
      if (pgCode(err) !== '42P16') {
        throw new ShadowshiftError(`cut-over: view ${v.schema}.${v.name} cannot be pointed at the new table: ${(err as Error).message}. Drop the view before the job and recreate it after.`, { cause: err });
      }
    }
    // A column type changed under the view: recreate it, with its owner, grants and comment (read before the lock).
    try {
      const sql = [`DROP VIEW ${view}`, `CREATE VIEW ${view}${withOptions} AS ${def}`, `ALTER VIEW ${view} OWNER TO ${quoteIdent(v.owner)}`];
      for (const g of v.acl) sql.push(`GRANT ${g.privilege} ON ${view} TO ${grantee(g.grantee)}${g.grantable === 'true' ? ' WITH GRANT OPTION' : ''}`);
      if (v.descr !== null) sql.push(`COMMENT ON VIEW ${view} IS ${quoteLiteral(v.descr)}`);
      sql.push('RELEASE SAVEPOINT view_replace');
      await c.query(sql.join(';\n'));
    } catch (err) {
      throw new ShadowshiftError(`cut-over: view ${v.schema}.${v.name} cannot be recreated on the new table: ${(err as Error).message}. Drop the view (and views on it) before the job and recreate them after.`, { cause: err });
    }
  }
}

interface AclFact {
  grantee: string | null;
  privilege: string;
  grantable: string;
}

interface ViewFact {
  schema: string;
  name: string;
  def: string;
  options: string | null;
  owner: string;
  descr: string | null;
  acl: AclFact[];
}

interface IndexFact {
  name: string;
  def: string;
  am: string;
  flags: string;
  cols: string;
  plain: string;
}

/** What the catalog says about the original and the shadow; `text` is the JSON as the server sent it (compared, never parsed twice). */
interface Facts {
  text: string;
  o: string | null;
  s: string | null;
  views: ViewFact[];
  matviews: Array<{ name: string }>;
  triggers: Array<{ name: string; def: string; enabled: string }>;
  childFks: Array<{ name: string; cols: string; ref: string; refoid: string; refcols: string; tail: string | null; validated: string }>;
  parentFks: Array<{ schema: string; table: string; name: string; cols: string; refcols: string; tail: string | null }>;
  meta: { owner: string; relacl: string | null; rls: string; force: string; replident: string; descr: string | null } | null;
  grants: AclFact[];
  colGrants: Array<AclFact & { col: string }>;
  policies: Array<{ name: string; permissive: string; cmd: string; roles: string; qual: string | null; check: string | null }>;
  pubs: Array<{ name: string; cols: string | null; qual: string | null }>;
  replIndex: string | null;
  oIdx: IndexFact[];
  sIdx: IndexFact[];
  seqs: Array<{ seq: string; seqschema: string; col: string; deptype: string }>;
  shadowIdentitySeqs: Array<{ seq: string; col: string }>;
  shadowAcl: Array<{ grantee: string | null }>;
  shadowCons: Array<{ conname: string }>;
  /** Which of the queried candidate names for new indexes already exist in the schema. */
  taken: Array<{ relname: string }>;
}

/** The swap as statements, in the order they run; views go one by one after them (a view may need recreating). */
interface SwapSql {
  statements: string[];
  views: ViewFact[];
  validate: FkFrom[];
}

interface Prepared {
  facts: Facts;
  /** The candidate names whose existence `facts.taken` answers. */
  candidates: string[];
  /** max() of identity columns without a usable index, read before the lock. */
  preMax: Map<string, string | null>;
  swap: SwapSql;
}

const O = '(SELECT o FROM ids)';
const S = '(SELECT s FROM ids)';
const list = (sql: string) => `coalesce((SELECT json_agg(q) FROM (${sql}) q), '[]'::json)`;
const one = (sql: string) => `(SELECT row_to_json(q) FROM (${sql}) q)`;
const aclJson = (acl: string) =>
  `coalesce((SELECT json_agg(json_build_object('grantee', CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END, 'privilege', a.privilege_type, 'grantable', a.is_grantable::text)) FROM aclexplode(${acl}) a), '[]'::json)`;
const ARRAY_OF = (keys: string, rel: string) =>
  `(SELECT array_agg(a.attname ORDER BY k.i) FROM unnest(${keys}) WITH ORDINALITY k(n, i) JOIN pg_attribute a ON a.attrelid = ${rel} AND a.attnum = k.n)::text`;
const FK_TAIL = `substring(pg_get_constraintdef(con.oid) from '\\)\\s*(MATCH.*|ON.*|DEFERRABLE.*|NOT DEFERRABLE.*)?$')`;
// An index's definition without its own and its table's name (the part from USING on).
const INDEXES = (rel: string) =>
  list(`SELECT ic.relname AS name,
                (CASE WHEN i.indisunique THEN 'UNIQUE ' ELSE '' END) || substring(pg_get_indexdef(i.indexrelid) from position(' USING ' in pg_get_indexdef(i.indexrelid)) + 1) AS def,
                am.amname AS am, (i.indisunique::text || i.indisprimary::text) AS flags,
                ARRAY(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY k(n, o) JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n ORDER BY k.o)::text AS cols,
                (i.indexprs IS NULL AND i.indpred IS NULL AND NOT (0 = ANY (i.indkey)))::text AS plain
           FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam
          WHERE i.indrelid = ${rel} ORDER BY i.indisprimary DESC, ic.oid`);

/**
 * Every catalog fact the swap depends on, as one JSON document, every list in a fixed
 * order (so the same catalog gives the same text). $1 original, $2 shadow (quoted,
 * qualified), $3 schema, $4 candidate names for new indexes.
 */
const FACTS_SQL = `WITH ids AS (
  SELECT (SELECT c.oid FROM pg_class c WHERE c.oid = to_regclass($1::text) AND c.relkind IN ('r','p')) AS o,
         (SELECT c.oid FROM pg_class c WHERE c.oid = to_regclass($2::text) AND c.relkind IN ('r','p')) AS s)
SELECT json_build_object(
  'o', (SELECT o::text FROM ids),
  's', (SELECT s::text FROM ids),
  'views', ${list(`SELECT vn.nspname AS schema, v.relname AS name, pg_get_viewdef(v.oid) AS def, array_to_string(v.reloptions, ',') AS options,
                          pg_get_userbyid(v.relowner) AS owner, obj_description(v.oid, 'pg_class') AS descr, ${aclJson('v.relacl')} AS acl
                     FROM pg_class v JOIN pg_namespace vn ON vn.oid = v.relnamespace
                    WHERE v.relkind = 'v' AND v.oid <> ${O}
                      AND v.oid IN (SELECT rw.ev_class FROM pg_depend d JOIN pg_rewrite rw ON rw.oid = d.objid WHERE d.classid = 'pg_rewrite'::regclass AND d.refobjid = ${O})
                    ORDER BY v.oid`)},
  'matviews', ${list(`SELECT DISTINCT v.relname AS name FROM pg_depend d JOIN pg_rewrite rw ON rw.oid = d.objid JOIN pg_class v ON v.oid = rw.ev_class
                       WHERE d.classid = 'pg_rewrite'::regclass AND d.refobjid = ${O} AND v.relkind = 'm' ORDER BY 1`)},
  'triggers', ${list(`SELECT tgname AS name, pg_get_triggerdef(oid) AS def, tgenabled::text AS enabled FROM pg_trigger WHERE tgrelid = ${O} AND NOT tgisinternal ORDER BY tgname`)},
  'childFks', ${list(`SELECT con.conname AS name, ${ARRAY_OF('con.conkey', 'con.conrelid')} AS cols,
                             con.confrelid::regclass::text AS ref, con.confrelid::text AS refoid, ${ARRAY_OF('con.confkey', 'con.confrelid')} AS refcols,
                             ${FK_TAIL} AS tail, con.convalidated::text AS validated
                        FROM pg_constraint con WHERE con.conrelid = ${O} AND con.contype = 'f' ORDER BY con.conname`)},
  'parentFks', ${list(`SELECT n.nspname AS schema, ch.relname AS table, con.conname AS name, ${ARRAY_OF('con.conkey', 'con.conrelid')} AS cols,
                              ${ARRAY_OF('con.confkey', 'con.confrelid')} AS refcols, ${FK_TAIL} AS tail
                         FROM pg_constraint con JOIN pg_class ch ON ch.oid = con.conrelid JOIN pg_namespace n ON n.oid = ch.relnamespace
                        WHERE con.confrelid = ${O} AND con.contype = 'f' AND con.conrelid <> ${O} ORDER BY 1, 2, 3`)},
  'meta', ${one(`SELECT pg_get_userbyid(relowner) AS owner, relacl::text AS relacl, relrowsecurity::text AS rls, relforcerowsecurity::text AS force,
                        relreplident::text AS replident, obj_description(oid, 'pg_class') AS descr
                   FROM pg_class WHERE oid = ${O}`)},
  'grants', ${list(`SELECT CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END AS grantee, a.privilege_type AS privilege, a.is_grantable::text AS grantable
                      FROM pg_class c, aclexplode(c.relacl) a WHERE c.oid = ${O}`)},
  'colGrants', ${list(`SELECT att.attname AS col, CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END AS grantee, a.privilege_type AS privilege, a.is_grantable::text AS grantable
                         FROM pg_attribute att, aclexplode(att.attacl) a
                        WHERE att.attrelid = ${O} AND att.attnum > 0 AND NOT att.attisdropped AND att.attacl IS NOT NULL
                        ORDER BY att.attnum, 2, 3, 4`)},
  'policies', ${list(`SELECT polname AS name, polpermissive::text AS permissive, polcmd::text AS cmd,
                             CASE WHEN polroles = '{0}' THEN 'PUBLIC' ELSE (SELECT string_agg(quote_ident(pg_get_userbyid(r)), ', ') FROM unnest(polroles) r) END AS roles,
                             pg_get_expr(polqual, polrelid) AS qual, pg_get_expr(polwithcheck, polrelid) AS check
                        FROM pg_policy WHERE polrelid = ${O} ORDER BY polname`)},
  'pubs', ${list(`SELECT p.pubname AS name,
                         (SELECT array_agg(a.attname ORDER BY a.attnum) FROM pg_attribute a WHERE a.attrelid = pr.prrelid AND a.attnum = ANY (pr.prattrs))::text AS cols,
                         pg_get_expr(pr.prqual, pr.prrelid) AS qual
                    FROM pg_publication_rel pr JOIN pg_publication p ON p.oid = pr.prpubid
                   WHERE pr.prrelid = ${O} AND p.pubname NOT LIKE '\\_ss\\_%' ORDER BY p.pubname`)},
  'replIndex', (SELECT ic.relname FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid WHERE i.indrelid = ${O} AND i.indisreplident LIMIT 1),
  'oIdx', ${INDEXES(O)},
  'sIdx', ${INDEXES(S)},
  'seqs', ${list(`SELECT s.relname AS seq, sn.nspname AS seqschema, a.attname AS col, d.deptype::text AS deptype
                    FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S' JOIN pg_namespace sn ON sn.oid = s.relnamespace
                    JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                   WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass AND d.refobjid = ${O} AND d.deptype IN ('a','i')
                   ORDER BY s.oid`)},
  'shadowIdentitySeqs', ${list(`SELECT s.relname AS seq, a.attname AS col FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
                                  JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                                 WHERE d.classid = 'pg_class'::regclass AND d.refobjid = ${S} AND d.deptype = 'i' ORDER BY s.oid`)},
  'shadowAcl', ${list(`SELECT DISTINCT CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END AS grantee FROM pg_class c, aclexplode(c.relacl) a WHERE c.oid = ${S} ORDER BY 1`)},
  'shadowCons', ${list(`SELECT conname FROM pg_constraint WHERE conrelid = ${S} AND conindid = 0 ORDER BY 1`)},
  'taken', ${list(`SELECT relname FROM pg_class WHERE relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = $3::text) AND relname = ANY ($4::text[]) ORDER BY 1`)}
)::text AS facts`;

const grantee = (g: string | null) => (g === null ? 'PUBLIC' : quoteIdent(g));

function columnMapper(plan: CopyPlan): { colMap: Map<string, string>; mapCol: (name: string) => string } {
  const colMap = new Map(plan.columns.map((m) => [m.source, m.target]));
  for (const k of plan.key) colMap.set(k.source, k.target);
  const mapCol = (name: string): string => {
    const t = colMap.get(name);
    if (t === undefined) throw new ShadowshiftError(`cut-over: column ${name} of ${plan.original.ref.name} is used by a dependent object but has no counterpart in the new table`);
    return t;
  };
  return { colMap, mapCol };
}

/** Names the swap may give the shadow's own indexes (`<shadow>_col_idx` → `<table>_col_idx`). */
function nameCandidates(plan: CopyPlan, names: ArtefactNames, f: Facts): string[] {
  const out = f.sIdx.filter((sh) => sh.name.startsWith(names.shadow)).map((sh) => newIndexName(plan, names, sh.name));
  return [...new Set(out)].sort();
}

function newIndexName(plan: CopyPlan, names: ArtefactNames, shadowIndex: string): string {
  return truncateBytes(plan.original.ref.name + shadowIndex.slice(names.shadow.length), 63);
}

/** The new table's identity columns whose sequence the swap sets past max(column). */
function identityColumns(plan: CopyPlan, f: Facts): string[] {
  const { colMap } = columnMapper(plan);
  const out: string[] = [];
  for (const s of f.seqs) {
    const col = colMap.get(s.col);
    if (s.deptype === 'i' && col !== undefined && f.shadowIdentitySeqs.some((x) => x.col === col)) out.push(col);
  }
  return out;
}

/** A btree index of the new table leads with `col` (no expression, no predicate): max(col) is one index probe. */
function indexServesMax(f: Facts, col: string): boolean {
  return f.sIdx.some((sh) => sh.am === 'btree' && sh.plain === 'true' && parseArrayText(sh.cols)[0] === col);
}

/**
 * The swap's statements, built from the facts alone (the same order of steps the
 * server runs them in). Names freed or taken by earlier steps are tracked here, so the
 * check whether a new index's name is free needs no query under the lock.
 */
function buildSwap(plan: CopyPlan, names: ArtefactNames, f: Facts, preMax: Map<string, string | null>): SwapSql {
  const schema = plan.original.ref.schema;
  const origName = plan.original.ref.name;
  const orig = quoteQualified(schema, origName);
  const shadow = quoteQualified(schema, names.shadow);
  if (!f.o || !f.s || !f.meta) throw new ShadowshiftError(`cut-over: ${!f.o ? origName : names.shadow} does not exist`);
  if (f.matviews.length) {
    throw new ShadowshiftError(`materialized view(s) ${f.matviews.map((r) => r.name).join(', ')} depend on ${origName}; shadowshift cannot re-point them yet. Drop them before the job and recreate them after.`);
  }
  const tag = names.extra.tag ?? jobTag(names.shadow);
  const { colMap, mapCol } = columnMapper(plan);
  const sql: string[] = [];
  const validate: FkFrom[] = [];
  // Which relation names exist in the schema as the statements run.
  const initially = new Set(f.taken.map((r) => r.relname));
  const now = new Map<string, boolean>();
  const moved = (from: string, to: string) => {
    now.set(from, false);
    now.set(to, true);
  };
  const taken = (name: string) => now.get(name) ?? initially.has(name);

  // 1. Move the original's index (and so constraint) names and identity sequences aside.
  let n = 0;
  for (const idx of f.oIdx) {
    const aside = asideName(tag, ++n, idx.name);
    sql.push(`ALTER INDEX ${quoteQualified(schema, idx.name)} RENAME TO ${quoteIdent(aside)}`);
    moved(idx.name, aside);
  }
  const asideSeq = new Map<string, string>();
  for (const s of f.seqs.filter((x) => x.deptype === 'i')) {
    const aside = asideName(tag, ++n, s.seq);
    sql.push(`ALTER SEQUENCE ${quoteQualified(s.seqschema, s.seq)} RENAME TO ${quoteIdent(aside)}`);
    asideSeq.set(`${s.seqschema}.${s.seq}`, aside);
    if (s.seqschema === schema) moved(s.seq, aside);
  }

  // 2. Swap the names.
  sql.push(`ALTER TABLE ${orig} RENAME TO ${quoteIdent(names.backup)}`);
  moved(origName, names.backup);
  sql.push(`ALTER TABLE ${shadow} RENAME TO ${quoteIdent(origName)}`);
  moved(names.shadow, origName);
  const tbl = orig; // now the new table

  // 3. Index and constraint names as the original had them: the same definition, or,
  //    when the ALTER renamed columns, the same plain columns (mapped) and kind.
  const used = new Set<string>();
  const matched = new Set<string>();
  const structural = (o: IndexFact, sh: IndexFact) => {
    if (o.plain !== 'true' || sh.plain !== 'true' || o.am !== sh.am || o.flags !== sh.flags) return false;
    const mapped = parseArrayText(o.cols).map((x) => colMap.get(x));
    return !mapped.includes(undefined) && JSON.stringify(mapped) === JSON.stringify(parseArrayText(sh.cols));
  };
  for (const pass of ['exact', 'structural'] as const) {
    for (const o of f.oIdx) {
      if (matched.has(o.name)) continue;
      const match = f.sIdx.find((sh) => !used.has(sh.name) && (pass === 'exact' ? sh.def === o.def : structural(o, sh)));
      if (!match) continue;
      used.add(match.name);
      matched.add(o.name);
      if (match.name !== o.name) {
        sql.push(`ALTER INDEX ${quoteQualified(schema, match.name)} RENAME TO ${quoteIdent(o.name)}`);
        moved(match.name, o.name);
      }
    }
  }
  // Indexes and constraints new with the ALTER that got names from the shadow's name
  // (`<shadow>_col_idx`) are named after the table instead (`<table>_col_idx`), when free.
  for (const sh of f.sIdx) {
    if (used.has(sh.name) || !sh.name.startsWith(names.shadow)) continue;
    const name = newIndexName(plan, names, sh.name);
    if (!taken(name)) {
      sql.push(`ALTER INDEX ${quoteQualified(schema, sh.name)} RENAME TO ${quoteIdent(name)}`);
      moved(sh.name, name);
    }
  }
  const conNames = new Set(f.shadowCons.map((r) => r.conname));
  for (const { conname } of f.shadowCons) {
    if (!conname.startsWith(names.shadow)) continue;
    const name = truncateBytes(origName + conname.slice(names.shadow.length), 63);
    if (!conNames.has(name)) sql.push(`ALTER TABLE ${tbl} RENAME CONSTRAINT ${quoteIdent(conname)} TO ${quoteIdent(name)}`);
  }

  // 4. Sequences: serial sequences now belong to the new table; identity sequences
  //    take the original's name and continue past its last value and the max.
  for (const s of f.seqs) {
    const col = colMap.get(s.col);
    if (col === undefined) continue;
    if (s.deptype === 'a') {
      sql.push(`ALTER SEQUENCE ${quoteQualified(s.seqschema, s.seq)} OWNED BY ${tbl}.${quoteIdent(col)}`);
    } else {
      const mine = f.shadowIdentitySeqs.find((x) => x.col === col);
      if (!mine) continue;
      sql.push(`ALTER SEQUENCE ${quoteQualified(schema, mine.seq)} RENAME TO ${quoteIdent(s.seq)}`);
      moved(mine.seq, s.seq);
      // The original's sequence (moved aside) as it is now: nothing writes the original any more.
      const last = `(SELECT ps.last_value FROM pg_sequences ps WHERE ps.schemaname = ${quoteLiteral(s.seqschema)} AND ps.sequencename = ${quoteLiteral(asideSeq.get(`${s.seqschema}.${s.seq}`)!)})`;
      const pre = preMax.get(col);
      const max = !preMax.has(col) || indexServesMax(f, col) ? `(SELECT max(${quoteIdent(col)})::bigint FROM ${tbl})` : pre === null || pre === undefined ? 'NULL::bigint' : `${quoteLiteral(pre)}::bigint`;
      sql.push(`SELECT setval(${quoteLiteral(quoteQualified(schema, s.seq))}::regclass, greatest(coalesce(${last}, 1), ${max}, 1))`);
    }
  }

  // 5. Owner, grants (exactly the original's), comment, RLS, replica identity.
  const m = f.meta;
  sql.push(`ALTER TABLE ${tbl} OWNER TO ${quoteIdent(m.owner)}`);
  // The shadow may have picked up grants from ALTER DEFAULT PRIVILEGES: start from
  // nothing but the owner, then grant exactly what the original had. A NULL ACL on the
  // original means the owner's default privileges only.
  for (const g of f.shadowAcl) {
    if (g.grantee === m.owner) continue;
    sql.push(`REVOKE ALL ON ${tbl} FROM ${grantee(g.grantee)}`);
  }
  if (m.relacl === null) {
    if (f.shadowAcl.length) sql.push(`GRANT ALL ON ${tbl} TO ${quoteIdent(m.owner)}`);
  } else {
    sql.push(`REVOKE ALL ON ${tbl} FROM ${quoteIdent(m.owner)}`);
  }
  for (const g of f.grants) {
    sql.push(`GRANT ${g.privilege} ON ${tbl} TO ${grantee(g.grantee)}${g.grantable === 'true' ? ' WITH GRANT OPTION' : ''}`);
  }
  for (const g of f.colGrants) {
    const col = colMap.get(g.col);
    if (col === undefined) continue;
    sql.push(`GRANT ${g.privilege} (${quoteIdent(col)}) ON ${tbl} TO ${grantee(g.grantee)}${g.grantable === 'true' ? ' WITH GRANT OPTION' : ''}`);
  }
  sql.push(`COMMENT ON TABLE ${tbl} IS ${m.descr === null ? 'NULL' : quoteLiteral(m.descr)}`);
  for (const p of f.policies) {
    const cmd = { r: 'SELECT', a: 'INSERT', w: 'UPDATE', d: 'DELETE', '*': 'ALL' }[p.cmd] ?? 'ALL';
    sql.push(
      `CREATE POLICY ${quoteIdent(p.name)} ON ${tbl} AS ${p.permissive === 'true' ? 'PERMISSIVE' : 'RESTRICTIVE'} FOR ${cmd} TO ${p.roles}` +
        (p.qual ? ` USING (${p.qual})` : '') + (p.check ? ` WITH CHECK (${p.check})` : ''),
    );
  }
  if (m.rls === 'true') sql.push(`ALTER TABLE ${tbl} ENABLE ROW LEVEL SECURITY`);
  if (m.force === 'true') sql.push(`ALTER TABLE ${tbl} FORCE ROW LEVEL SECURITY`);
  if (m.replident === 'f') sql.push(`ALTER TABLE ${tbl} REPLICA IDENTITY FULL`);
  else if (m.replident === 'n') sql.push(`ALTER TABLE ${tbl} REPLICA IDENTITY NOTHING`);
  else if (m.replident === 'i' && f.replIndex !== null) {
    const orig0 = f.oIdx.find((o) => o.name === f.replIndex);
    if (orig0 && matched.has(orig0.name)) sql.push(`ALTER TABLE ${tbl} REPLICA IDENTITY USING INDEX ${quoteIdent(orig0.name)}`);
  }

  // 6. Foreign keys this table declares (LIKE does not copy them): added NOT VALID
  //    under the lock, validated after commit.
  for (const fk of f.childFks) {
    const cols = parseArrayText(fk.cols).map((x) => quoteIdent(mapCol(x))).join(', ');
    const refcols = parseArrayText(fk.refcols).map((x) => quoteIdent(fk.refoid === f.o ? mapCol(x) : x)).join(', ');
    sql.push(`ALTER TABLE ${tbl} ADD CONSTRAINT ${quoteIdent(fk.name)} FOREIGN KEY (${cols}) REFERENCES ${fk.ref} (${refcols}) ${fk.tail ?? ''} NOT VALID`);
    if (fk.validated === 'true') validate.push({ schema, table: origName, name: fk.name, def: '' });
  }
  // 7. Foreign keys of other tables that point here: re-pointed to the new table.
  for (const fk of f.parentFks) {
    const refcols = parseArrayText(fk.refcols).map((x) => quoteIdent(mapCol(x))).join(', ');
    const child = quoteQualified(fk.schema, fk.table);
    sql.push(`ALTER TABLE ${child} DROP CONSTRAINT ${quoteIdent(fk.name)}`);
    const cols = parseArrayText(fk.cols).map(quoteIdent).join(', ');
    sql.push(`ALTER TABLE ${child} ADD CONSTRAINT ${quoteIdent(fk.name)} FOREIGN KEY (${cols}) REFERENCES ${tbl} (${refcols}) ${fk.tail ?? ''} NOT VALID`);
    validate.push({ schema: fk.schema, table: fk.table, name: fk.name, def: '' });
  }

  // 8. Publications of the user (not FOR ALL TABLES, not ours) that include the
  //    original now include the new table, with the same column list and row filter.
  for (const pub of f.pubs) {
    const cols = pub.cols ? ` (${parseArrayText(pub.cols).map((x) => quoteIdent(mapCol(x))).join(', ')})` : '';
    sql.push(`ALTER PUBLICATION ${quoteIdent(pub.name)} DROP TABLE ${quoteQualified(schema, names.backup)}`);
    sql.push(`ALTER PUBLICATION ${quoteIdent(pub.name)} ADD TABLE ${tbl}${cols}${pub.qual ? ` WHERE (${pub.qual})` : ''}`);
  }

  // 9. Triggers (definitions name the table as it was called: now the new one).
  for (const t of f.triggers) {
    sql.push(t.def);
    const mode = ({ D: 'DISABLE', R: 'ENABLE REPLICA', A: 'ENABLE ALWAYS' } as Record<string, string>)[t.enabled];
    if (mode) sql.push(`ALTER TABLE ${tbl} ${mode} TRIGGER ${quoteIdent(t.name)}`);
  }

  // 10. Views (run one by one after these): same definition, now resolving to the new
  //     table; CREATE OR REPLACE keeps their grants, owners and dependents.
  return { statements: sql, views: f.views, validate };
}

/**
 * A blocking session's statement for the log: string literals, dollar-quoted bodies
 * and numbers replaced (they may carry passwords or personal data), whitespace
 * squeezed, cut to 120 characters.
 */
export function redactQuery(q: string): string {
  const out = q
    .replace(/\$([A-Za-z_][A-Za-z0-9_]*)?\$[\s\S]*?(\$\1\$|$)/g, '$$…$$')
    .replace(/[EeBbXxUu]?&?'(?:[^']|'')*('|$)/g, "'…'")
    .replace(/\b\d+(\.\d+)?\b/g, '?')
    .replace(/\s+/g, ' ')
    .trim();
  return out.length > 120 ? out.slice(0, 119) + '…' : out;
}

function parseArrayText(v: string[] | string): string[] {
  if (Array.isArray(v)) return v;
  const out: string[] = [];
  const s = v.slice(1, -1);
  let i = 0;
  while (i < s.length) {
    if (s[i] === '"') {
      let t = '';
      i++;
      while (s[i] !== '"') {
        if (s[i] === '\\') i++;
        t += s[i++];
      }
      i++;
      out.push(t);
    } else {
      let j = s.indexOf(',', i);
      if (j < 0) j = s.length;
      out.push(s.slice(i, j));
      i = j;
    }
    if (s[i] === ',') i++;
  }
  return out;
}
