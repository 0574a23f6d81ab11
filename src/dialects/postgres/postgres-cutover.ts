// Cut-over: one transaction that write-locks the original, lets the engine drain the
// stream up to a marker, and swaps the tables by renaming, carrying everything LIKE
// does not copy. A waiting client query resolves the table name again after it gets
// its lock (PostgreSQL re-checks name lookups when invalidations arrive while it
// waits), so it lands in the new table: no client ever sees the name missing.

import type pg from 'pg';
import type { ArtefactNames, CopyPlan, Cutover, CutoverOptions } from '../dialect.js';
import { dedicatedClient, type PgContext } from './postgres-context.js';
import { isTransient, pgCode } from './postgres-errors.js';
import { tableOid } from './postgres-inspector.js';
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
    // Never swap in a shadow whose deferred indexes are not built (before any lock).
    await finishShadow(this.ctx, { schema: plan.original.ref.schema, name: names.shadow });
    const c = await dedicatedClient(this.ctx, 'shadowshift cut-over');
    const validate: FkFrom[] = [];
    let newName = '';
    let committing = false;
    try {
      await c.query('BEGIN');
      await c.query(`SET LOCAL lock_timeout = ${Math.max(1, Math.floor(options.lockTimeoutMs))}`);
      await c.query(`SET LOCAL statement_timeout = ${Math.max(30_000, options.lockTimeoutMs * 5)}`);
      await c.query(`SET LOCAL idle_in_transaction_session_timeout = ${Math.max(60_000, options.lockTimeoutMs * 30)}`);
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
      const started = Date.now();
      const killer = options.killBlockersAfterMs === undefined ? null : await this.blockerKiller(c, plan, options);
      try {
        await c.query(`LOCK TABLE ${[...others.rows.map((r) => r.rel), orig].join(', ')} IN ACCESS EXCLUSIVE MODE`);
      } finally {
        await killer?.stop();
      }
      options.log.info({ table: plan.original.ref.name, waitedMs: Date.now() - started }, 'original locked; draining');
      const steps: Record<string, number> = {};
      let t0 = performance.now();
      const mark = (k: string) => { const n = performance.now(); steps[k] = Math.round((steps[k] ?? 0) + n - t0); t0 = n; };
      mark('lock');
      await options.drainUnderLock();
      mark('drain');
      newName = plan.original.ref.name;
      await this.swapUnderLock(c, plan, names, validate, mark);
      committing = true;
      await c.query('COMMIT');
      mark('commit');
      options.log.info({ table: plan.original.ref.name, lockedMs: Date.now() - started, steps }, 'cut-over committed');
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

  private async swapUnderLock(c: pg.Client, plan: CopyPlan, names: ArtefactNames, validate: FkFrom[], mark: (k: string) => void = () => undefined): Promise<void> {
    const schema = plan.original.ref.schema;
    const origName = plan.original.ref.name;
    const orig = quoteQualified(schema, origName);
    const shadow = quoteQualified(schema, names.shadow);
    const oOid = await tableOid(c, plan.original.ref);
    const sOid = await tableOid(c, { schema, name: names.shadow });
    if (!oOid || !sOid) throw new ShadowshiftError(`cut-over: ${!oOid ? origName : names.shadow} does not exist`);
    const tag = names.extra.tag ?? jobTag(names.shadow);
    const colMap = new Map(plan.columns.map((m) => [m.source, m.target]));
    for (const k of plan.key) colMap.set(k.source, k.target);
    const mapCol = (name: string): string => {
      const t = colMap.get(name);
      if (t === undefined) throw new ShadowshiftError(`cut-over: column ${name} of ${origName} is used by a dependent object but has no counterpart in the new table`);
      return t;
    };

    // Everything read before any rename, so printed definitions name the original.
    const views = await c.query<{ schema: string; name: string; def: string; options: string | null }>(
      `SELECT DISTINCT vn.nspname AS schema, v.relname AS name, pg_get_viewdef(v.oid) AS def, array_to_string(v.reloptions, ',') AS options, v.oid
         FROM pg_depend d JOIN pg_rewrite rw ON rw.oid = d.objid JOIN pg_class v ON v.oid = rw.ev_class JOIN pg_namespace vn ON vn.oid = v.relnamespace
        WHERE d.classid = 'pg_rewrite'::regclass AND d.refobjid = $1 AND v.oid <> $1 AND v.relkind = 'v'
        ORDER BY v.oid`,
      [oOid],
    );
    const matviews = await c.query<{ name: string }>(
      `SELECT DISTINCT v.relname AS name FROM pg_depend d JOIN pg_rewrite rw ON rw.oid = d.objid JOIN pg_class v ON v.oid = rw.ev_class
        WHERE d.classid = 'pg_rewrite'::regclass AND d.refobjid = $1 AND v.relkind = 'm'`,
      [oOid],
    );
    if (matviews.rows.length) {
      throw new ShadowshiftError(`materialized view(s) ${matviews.rows.map((r) => r.name).join(', ')} depend on ${origName}; shadowshift cannot re-point them yet. Drop them before the job and recreate them after.`);
    }
    const triggers = await c.query<{ name: string; def: string; enabled: string }>(
      `SELECT tgname AS name, pg_get_triggerdef(oid) AS def, tgenabled::text AS enabled FROM pg_trigger WHERE tgrelid = $1 AND NOT tgisinternal ORDER BY tgname`,
      [oOid],
    );
    const childFks = await c.query<{ name: string; cols: string; ref: string; refoid: string; refcols: string; tail: string; validated: string }>(
      `SELECT con.conname AS name,
              (SELECT array_agg(a.attname ORDER BY k.i) FROM unnest(con.conkey) WITH ORDINALITY k(n, i) JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n)::text AS cols,
              con.confrelid::regclass::text AS ref, con.confrelid::text AS refoid,
              (SELECT array_agg(a.attname ORDER BY k.i) FROM unnest(con.confkey) WITH ORDINALITY k(n, i) JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n)::text AS refcols,
              substring(pg_get_constraintdef(con.oid) from '\\)\\s*(MATCH.*|ON.*|DEFERRABLE.*|NOT DEFERRABLE.*)?$') AS tail,
              con.convalidated::text AS validated
         FROM pg_constraint con WHERE con.conrelid = $1 AND con.contype = 'f' ORDER BY con.conname`,
      [oOid],
    );
    const parentFks = await c.query<{ schema: string; table: string; name: string; cols: string; refcols: string[] | string; tail: string }>(
      `SELECT n.nspname AS schema, ch.relname AS table, con.conname AS name,
              (SELECT array_agg(a.attname ORDER BY k.i) FROM unnest(con.conkey) WITH ORDINALITY k(n, i) JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n)::text AS cols,
              (SELECT array_agg(a.attname ORDER BY k.i) FROM unnest(con.confkey) WITH ORDINALITY k(n, i) JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n)::text AS refcols,
              substring(pg_get_constraintdef(con.oid) from '\\)\\s*(MATCH.*|ON.*|DEFERRABLE.*|NOT DEFERRABLE.*)?$') AS tail
         FROM pg_constraint con JOIN pg_class ch ON ch.oid = con.conrelid JOIN pg_namespace n ON n.oid = ch.relnamespace
        WHERE con.confrelid = $1 AND con.contype = 'f' AND con.conrelid <> $1 ORDER BY 1, 2, 3`,
      [oOid],
    );
    const meta = await c.query<{ owner: string; relacl: string | null; rls: string; force: string; replident: string; descr: string | null }>(
      `SELECT pg_get_userbyid(relowner) AS owner, relacl::text AS relacl, relrowsecurity::text AS rls, relforcerowsecurity::text AS force,
              relreplident::text AS replident, obj_description(oid, 'pg_class') AS descr
         FROM pg_class WHERE oid = $1`,
      [oOid],
    );
    const grants = await c.query<{ grantee: string | null; privilege: string; grantable: string }>(
      `SELECT CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END AS grantee, a.privilege_type AS privilege, a.is_grantable::text AS grantable
         FROM pg_class c, aclexplode(c.relacl) a WHERE c.oid = $1`,
      [oOid],
    );
    const colGrants = await c.query<{ col: string; grantee: string | null; privilege: string; grantable: string }>(
      `SELECT att.attname AS col, CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END AS grantee, a.privilege_type AS privilege, a.is_grantable::text AS grantable
         FROM pg_attribute att, aclexplode(att.attacl) a WHERE att.attrelid = $1 AND att.attnum > 0 AND NOT att.attisdropped AND att.attacl IS NOT NULL`,
      [oOid],
    );
    const policies = await c.query<{ name: string; permissive: string; cmd: string; roles: string; qual: string | null; check: string | null }>(
      `SELECT polname AS name, polpermissive::text AS permissive, polcmd::text AS cmd,
              CASE WHEN polroles = '{0}' THEN 'PUBLIC' ELSE (SELECT string_agg(quote_ident(pg_get_userbyid(r)), ', ') FROM unnest(polroles) r) END AS roles,
              pg_get_expr(polqual, polrelid) AS qual, pg_get_expr(polwithcheck, polrelid) AS check
         FROM pg_policy WHERE polrelid = $1 ORDER BY polname`,
      [oOid],
    );
    const pubs = await c.query<{ name: string; cols: string | null; qual: string | null }>(
      `SELECT p.pubname AS name,
              (SELECT array_agg(a.attname ORDER BY a.attnum) FROM pg_attribute a WHERE a.attrelid = pr.prrelid AND a.attnum = ANY (pr.prattrs))::text AS cols,
              pg_get_expr(pr.prqual, pr.prrelid) AS qual
         FROM pg_publication_rel pr JOIN pg_publication p ON p.oid = pr.prpubid
        WHERE pr.prrelid = $1 AND p.pubname NOT LIKE '\\_ss\\_%'`,
      [oOid],
    );
    const replIndex = await c.query<{ name: string }>(`SELECT ic.relname AS name FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid WHERE i.indrelid = $1 AND i.indisreplident`, [oOid]);
    // An index's definition without its own and its table's name (the part from USING on).
    const indexDefs = async (oid: string) =>
      (await c.query<{ name: string; def: string; am: string; flags: string; cols: string; plain: string }>(
        `SELECT ic.relname AS name,
                (CASE WHEN i.indisunique THEN 'UNIQUE ' ELSE '' END) || substring(pg_get_indexdef(i.indexrelid) from position(' USING ' in pg_get_indexdef(i.indexrelid)) + 1) AS def,
                am.amname AS am, (i.indisunique::text || i.indisprimary::text) AS flags,
                ARRAY(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY k(n, o) JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n ORDER BY k.o)::text AS cols,
                (i.indexprs IS NULL AND i.indpred IS NULL AND NOT (0 = ANY (i.indkey)))::text AS plain
           FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam
          WHERE i.indrelid = $1 ORDER BY i.indisprimary DESC, ic.oid`,
        [oid],
      )).rows;
    const oIdx = await indexDefs(oOid);
    const sIdx = await indexDefs(sOid);
    // Sequences owned by the original's columns: serial ('a', shared with the shadow through
    // its default) and identity ('i', the shadow has its own).
    const seqs = await c.query<{ seq: string; seqschema: string; col: string; deptype: string; last: string; called: string }>(
      `SELECT s.relname AS seq, sn.nspname AS seqschema, a.attname AS col, d.deptype::text AS deptype, ps.last_value::text AS last, 'true' AS called
         FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S' JOIN pg_namespace sn ON sn.oid = s.relnamespace
         JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
         LEFT JOIN pg_sequences ps ON ps.schemaname = sn.nspname AND ps.sequencename = s.relname
        WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass AND d.refobjid = $1 AND d.deptype IN ('a','i')`,
      [oOid],
    );

    mark('read');
    // 1. Move the original's index (and so constraint) names and identity sequences aside.
    let n = 0;
    for (const idx of oIdx) {
      await c.query(`ALTER INDEX ${quoteQualified(schema, idx.name)} RENAME TO ${quoteIdent(asideName(tag, ++n, idx.name))}`);
    }
    const shadowIdentitySeqs = await c.query<{ seq: string; col: string }>(
      `SELECT s.relname AS seq, a.attname AS col FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
         JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
        WHERE d.classid = 'pg_class'::regclass AND d.refobjid = $1 AND d.deptype = 'i'`,
      [sOid],
    );
    for (const s of seqs.rows.filter((x) => x.deptype === 'i')) {
      await c.query(`ALTER SEQUENCE ${quoteQualified(s.seqschema, s.seq)} RENAME TO ${quoteIdent(asideName(tag, ++n, s.seq))}`);
    }

    // 2. Swap the names.
    await c.query(`ALTER TABLE ${orig} RENAME TO ${quoteIdent(names.backup)}`);
    await c.query(`ALTER TABLE ${shadow} RENAME TO ${quoteIdent(origName)}`);
    const tbl = orig; // now the new table

    mark('rename');
    // 3. Index and constraint names as the original had them: the same definition, or,
    //    when the ALTER renamed columns, the same plain columns (mapped) and kind.
    const used = new Set<string>();
    const matched = new Set<string>();
    const structural = (o: (typeof oIdx)[number], sh: (typeof sIdx)[number]) => {
      if (o.plain !== 'true' || sh.plain !== 'true' || o.am !== sh.am || o.flags !== sh.flags) return false;
      const mapped = parseArrayText(o.cols).map((x) => colMap.get(x));
      return !mapped.includes(undefined) && JSON.stringify(mapped) === JSON.stringify(parseArrayText(sh.cols));
    };
    for (const pass of ['exact', 'structural'] as const) {
      for (const o of oIdx) {
        if (matched.has(o.name)) continue;
        const match = sIdx.find((sh) => !used.has(sh.name) && (pass === 'exact' ? sh.def === o.def : structural(o, sh)));
        if (!match) continue;
        used.add(match.name);
        matched.add(o.name);
        if (match.name !== o.name) await c.query(`ALTER INDEX ${quoteQualified(schema, match.name)} RENAME TO ${quoteIdent(o.name)}`);
      }
    }
    // Indexes and constraints new with the ALTER that got names from the shadow's name
    // (`<shadow>_col_idx`) are named after the table instead (`<table>_col_idx`), when free.
    const taken = async (name: string) =>
      (await c.query(`SELECT 1 FROM pg_class WHERE relnamespace = $1::regnamespace AND relname = $2`, [quoteIdent(schema), name])).rows.length > 0;
    for (const sh of sIdx) {
      if (used.has(sh.name) || !sh.name.startsWith(names.shadow)) continue;
      const name = truncateBytes(origName + sh.name.slice(names.shadow.length), 63);
      if (!(await taken(name))) await c.query(`ALTER INDEX ${quoteQualified(schema, sh.name)} RENAME TO ${quoteIdent(name)}`);
    }
    const cons = await c.query<{ conname: string }>(`SELECT conname FROM pg_constraint WHERE conrelid = $1 AND conindid = 0`, [sOid]);
    const conNames = new Set(cons.rows.map((r) => r.conname));
    for (const con of cons.rows) {
      if (!con.conname.startsWith(names.shadow)) continue;
      const name = truncateBytes(origName + con.conname.slice(names.shadow.length), 63);
      if (!conNames.has(name)) await c.query(`ALTER TABLE ${tbl} RENAME CONSTRAINT ${quoteIdent(con.conname)} TO ${quoteIdent(name)}`);
    }

    mark('names');
    // 4. Sequences: serial sequences now belong to the new table; identity sequences
    //    take the original's name and continue past its last value and the max.
    for (const s of seqs.rows) {
      const col = colMap.get(s.col);
      if (col === undefined) continue;
      if (s.deptype === 'a') {
        await c.query(`ALTER SEQUENCE ${quoteQualified(s.seqschema, s.seq)} OWNED BY ${tbl}.${quoteIdent(col)}`);
      } else {
        const mine = shadowIdentitySeqs.rows.find((x) => x.col === col);
        if (!mine) continue;
        await c.query(`ALTER SEQUENCE ${quoteQualified(schema, mine.seq)} RENAME TO ${quoteIdent(s.seq)}`);
        await c.query(
          `SELECT setval($1::regclass, greatest($2::bigint, (SELECT max(${quoteIdent(col)})::bigint FROM ${tbl}), 1))`,
          [quoteQualified(schema, s.seq), s.last ?? '1'],
        );
      }
    }

    mark('seqs');
    // 5. Owner, grants (exactly the original's), comment, RLS, replica identity.
    const m = meta.rows[0]!;
    await c.query(`ALTER TABLE ${tbl} OWNER TO ${quoteIdent(m.owner)}`);
    // The shadow may have picked up grants from ALTER DEFAULT PRIVILEGES: start from
    // nothing but the owner, then grant exactly what the original had. A NULL ACL on the
    // original means the owner's default privileges only.
    const newAcl = await c.query<{ grantee: string | null }>(
      `SELECT DISTINCT CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END AS grantee FROM pg_class c, aclexplode(c.relacl) a WHERE c.oid = $1`,
      [sOid],
    );
    for (const g of newAcl.rows) {
      if (g.grantee === m.owner) continue;
      await c.query(`REVOKE ALL ON ${tbl} FROM ${g.grantee === null ? 'PUBLIC' : quoteIdent(g.grantee)}`);
    }
    if (m.relacl === null) {
      if (newAcl.rows.length) await c.query(`GRANT ALL ON ${tbl} TO ${quoteIdent(m.owner)}`);
    } else {
      await c.query(`REVOKE ALL ON ${tbl} FROM ${quoteIdent(m.owner)}`);
    }
    for (const g of grants.rows) {
      await c.query(`GRANT ${g.privilege} ON ${tbl} TO ${g.grantee === null ? 'PUBLIC' : quoteIdent(g.grantee)}${g.grantable === 'true' ? ' WITH GRANT OPTION' : ''}`);
    }
    for (const g of colGrants.rows) {
      const col = colMap.get(g.col);
      if (col === undefined) continue;
      await c.query(`GRANT ${g.privilege} (${quoteIdent(col)}) ON ${tbl} TO ${g.grantee === null ? 'PUBLIC' : quoteIdent(g.grantee)}${g.grantable === 'true' ? ' WITH GRANT OPTION' : ''}`);
    }
    await c.query(`COMMENT ON TABLE ${tbl} IS ${m.descr === null ? 'NULL' : quoteLiteral(m.descr)}`);
    for (const p of policies.rows) {
      const cmd = { r: 'SELECT', a: 'INSERT', w: 'UPDATE', d: 'DELETE', '*': 'ALL' }[p.cmd] ?? 'ALL';
      await c.query(
        `CREATE POLICY ${quoteIdent(p.name)} ON ${tbl} AS ${p.permissive === 'true' ? 'PERMISSIVE' : 'RESTRICTIVE'} FOR ${cmd} TO ${p.roles}` +
          (p.qual ? ` USING (${p.qual})` : '') + (p.check ? ` WITH CHECK (${p.check})` : ''),
      );
    }
    if (m.rls === 'true') await c.query(`ALTER TABLE ${tbl} ENABLE ROW LEVEL SECURITY`);
    if (m.force === 'true') await c.query(`ALTER TABLE ${tbl} FORCE ROW LEVEL SECURITY`);
    if (m.replident === 'f') await c.query(`ALTER TABLE ${tbl} REPLICA IDENTITY FULL`);
    else if (m.replident === 'n') await c.query(`ALTER TABLE ${tbl} REPLICA IDENTITY NOTHING`);
    else if (m.replident === 'i' && replIndex.rows[0]) {
      const orig0 = oIdx.find((o) => o.name === replIndex.rows[0]!.name);
      if (orig0 && matched.has(orig0.name)) await c.query(`ALTER TABLE ${tbl} REPLICA IDENTITY USING INDEX ${quoteIdent(orig0.name)}`);
    }

    mark('meta');
    // 6. Foreign keys this table declares (LIKE does not copy them): added NOT VALID
    //    under the lock, validated after commit.
    for (const fk of childFks.rows) {
      const cols = parseArrayText(fk.cols).map((x) => quoteIdent(mapCol(x))).join(', ');
      const refcols = parseArrayText(fk.refcols).map((x) => quoteIdent(fk.refoid === oOid ? mapCol(x) : x)).join(', ');
      await c.query(`ALTER TABLE ${tbl} ADD CONSTRAINT ${quoteIdent(fk.name)} FOREIGN KEY (${cols}) REFERENCES ${fk.ref} (${refcols}) ${fk.tail ?? ''} NOT VALID`);
      if (fk.validated === 'true') validate.push({ schema, table: origName, name: fk.name, def: '' });
    }
    // 7. Foreign keys of other tables that point here: re-pointed to the new table.
    for (const fk of parentFks.rows) {
      const refcols = parseArrayText(fk.refcols).map((x) => quoteIdent(mapCol(x))).join(', ');
      const child = quoteQualified(fk.schema, fk.table);
      await c.query(`ALTER TABLE ${child} DROP CONSTRAINT ${quoteIdent(fk.name)}`);
      const cols = parseArrayText(fk.cols).map(quoteIdent).join(', ');
      await c.query(`ALTER TABLE ${child} ADD CONSTRAINT ${quoteIdent(fk.name)} FOREIGN KEY (${cols}) REFERENCES ${tbl} (${refcols}) ${fk.tail ?? ''} NOT VALID`);
      validate.push({ schema: fk.schema, table: fk.table, name: fk.name, def: '' });
    }

    mark('fks');
    // 8. Publications of the user (not FOR ALL TABLES, not ours) that include the
    //    original now include the new table, with the same column list and row filter.
    for (const pub of pubs.rows) {
      const cols = pub.cols ? ` (${parseArrayText(pub.cols).map((x) => quoteIdent(mapCol(x))).join(', ')})` : '';
      await c.query(`ALTER PUBLICATION ${quoteIdent(pub.name)} DROP TABLE ${quoteQualified(schema, names.backup)}`);
      await c.query(`ALTER PUBLICATION ${quoteIdent(pub.name)} ADD TABLE ${tbl}${cols}${pub.qual ? ` WHERE (${pub.qual})` : ''}`);
    }

    // 9. Triggers (definitions name the table as it was called: now the new one).
    for (const t of triggers.rows) {
      await c.query(t.def);
      const mode = { D: 'DISABLE', R: 'ENABLE REPLICA', A: 'ENABLE ALWAYS' }[t.enabled];
      if (mode) await c.query(`ALTER TABLE ${tbl} ${mode} TRIGGER ${quoteIdent(t.name)}`);
    }

    mark('pubs+triggers');
    // 10. Views: same definition, now resolving to the new table; CREATE OR REPLACE keeps
    //    their grants, owners and dependents.
    for (const v of views.rows) {
      const view = quoteQualified(v.schema, v.name);
      const withOptions = v.options ? ` WITH (${v.options})` : '';
      try {
        await c.query('SAVEPOINT view_replace');
        await c.query(`CREATE OR REPLACE VIEW ${view}${withOptions} AS ${v.def}`);
        await c.query('RELEASE SAVEPOINT view_replace');
        continue;
      } catch (err) {
        await c.query('ROLLBACK TO SAVEPOINT view_replace');
        if (pgCode(err) !== '42P16') {
          throw new ShadowshiftError(`cut-over: view ${v.schema}.${v.name} cannot be pointed at the new table: ${(err as Error).message}. Drop the view before the job and recreate it after.`, { cause: err });
        }
      }
      // A column type changed under the view: recreate it, with its owner, grants and comment.
      try {
        const vm = await c.query<{ owner: string; descr: string | null }>(
          `SELECT pg_get_userbyid(relowner) AS owner, obj_description(oid, 'pg_class') AS descr FROM pg_class WHERE oid = $1::regclass`,
          [view],
        );
        const vg = await c.query<{ grantee: string | null; privilege: string; grantable: string }>(
          `SELECT CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END AS grantee, a.privilege_type AS privilege, a.is_grantable::text AS grantable
             FROM pg_class c, aclexplode(c.relacl) a WHERE c.oid = $1::regclass`,
          [view],
        );
        await c.query(`DROP VIEW ${view}`);
        await c.query(`CREATE VIEW ${view}${withOptions} AS ${v.def}`);
        await c.query(`ALTER VIEW ${view} OWNER TO ${quoteIdent(vm.rows[0]!.owner)}`);
        for (const g of vg.rows) {
          await c.query(`GRANT ${g.privilege} ON ${view} TO ${g.grantee === null ? 'PUBLIC' : quoteIdent(g.grantee)}${g.grantable === 'true' ? ' WITH GRANT OPTION' : ''}`);
        }
        if (vm.rows[0]!.descr !== null) await c.query(`COMMENT ON VIEW ${view} IS ${quoteLiteral(vm.rows[0]!.descr)}`);
      } catch (err) {
        throw new ShadowshiftError(`cut-over: view ${v.schema}.${v.name} cannot be recreated on the new table: ${(err as Error).message}. Drop the view (and views on it) before the job and recreate them after.`, { cause: err });
      }
    }
    mark('views');
  }
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
