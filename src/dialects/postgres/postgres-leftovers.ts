// What `shadowshift cleanup` finds: slots, publications, shadow and backup tables of
// shadowshift in this database, checkpoints of resumable jobs, and the checkpoint and
// heartbeat tables every job shares. An artefact is in use when its job's slot is being
// read, or when the job lock of the table it belongs to is held; a shared table while
// any job of the database runs (it may write there at any moment).

import { releaseVacuumGuard } from './postgres-vacuum-guard.js';
import { revertJobId, revertPointAge, revertWindowClosed, type Leftover, type RevertPoint, type TableRef } from '../dialect.js';
import { PostgresRevertSupport } from './postgres-revert.js';
import type { PgContext } from './postgres-context.js';
import { anyJobLockHeld, jobLockHeld } from './postgres-job-lock.js';
import { CHECKPOINT_TABLE, PostgresCheckpointStore, PostgresRevertPointStore, REVERT_TABLE } from './postgres-checkpoints.js';
import { HEARTBEAT_TABLE } from './postgres-probes.js';
import { CUTOVER_APPLICATION_NAME, isResumableArtefact, jobTag, parseArtefactName } from './postgres-names.js';
import { quoteIdent, quoteLiteral, quoteQualified } from './postgres-quote.js';
import { dropSlotAndPublication } from './postgres-slot.js';
import { ShadowshiftError } from '../../util/errors.js';

export interface PgLeftover extends Leftover {
  schema?: string;
}

export async function listLeftovers(ctx: PgContext): Promise<PgLeftover[]> {
  const { pool } = ctx;
  // Statements first: a killed job's CREATE of its shadow that commits between two reads is
  // then seen running or seen as the table it made. Read after the tables, it could be
  // neither (the table not there yet, the statement already over) and the shadow missed.
  const statements = await runningStatements(pool);
  const out: PgLeftover[] = [];
  // Revert points, and what each keeps for `shadowshift revert`: the old table, and the slot
  // and publication the revert reads (named as the revert job's). Not debris while the window is open.
  const reverts = await revertPoints(ctx);
  const keptOld = new Map<string, Leftover['revertWindow']>();
  const keptTags = new Map<string, Leftover['revertWindow']>();
  for (const r of reverts) {
    keptOld.set(`${r.table!.schema}.${r.point.oldTable}`, r.revertWindow);
    keptTags.set(jobTag(revertJobId(r.point.jobId)), r.revertWindow);
  }
  const kept = (window: Leftover['revertWindow']) => (window ? { revertWindow: window } : {});
  const activeTags = new Set<string>();
  /** Tags of resumable jobs (their slot or publication is `_ss_<tag>_rslot` / `_rpub`). */
  const resumableTags = new Set<string>();
  const slots = await pool.query<{ slot_name: string; active: string }>(
    `SELECT slot_name, active::text AS active FROM pg_replication_slots WHERE database = current_database() AND slot_name LIKE '\\_ss\\_%' ORDER BY slot_name`,
  );
  for (const s of slots.rows) {
    const parsed = parseArtefactName(s.slot_name);
    if (!parsed) continue;
    if (s.active === 'true') activeTags.add(parsed.tag);
    if (isResumableArtefact(s.slot_name)) resumableTags.add(parsed.tag);
  }
  // Tag -> the table its publication covers (the job's table).
  const pubs = await pool.query<{ pubname: string; schemaname: string | null; tablename: string | null }>(
    `SELECT p.pubname, t.schemaname, t.tablename FROM pg_publication p LEFT JOIN pg_publication_tables t ON t.pubname = p.pubname
      WHERE p.pubname LIKE '\\_ss\\_%' ORDER BY p.pubname`,
  );
  const lockedTags = new Set<string>();
  /** Tag -> the table its job works on: from its publication, or from its shadow's name. */
  const tagTable = new Map<string, TableRef>();
  for (const p of pubs.rows) {
    const parsed = parseArtefactName(p.pubname);
    if (parsed && isResumableArtefact(p.pubname)) resumableTags.add(parsed.tag);
    if (parsed && p.schemaname && p.tablename) tagTable.set(parsed.tag, { schema: p.schemaname, name: p.tablename });
    if (parsed && p.schemaname && p.tablename && (await jobLockHeld(pool, { schema: p.schemaname, name: p.tablename }))) lockedTags.add(parsed.tag);
  }
  const tables = await pool.query<{ nspname: string; relname: string }>(
    `SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r','p') AND c.relname LIKE '\\_ss\\_%' AND n.nspname NOT LIKE 'pg\\_temp\\_%' ORDER BY 1, 2`,
  );
  for (const t of tables.rows) {
    const parsed = parseArtefactName(t.relname);
    if (!parsed || (parsed.kind !== 'new' && parsed.kind !== 'old')) continue;
    let inUse = activeTags.has(parsed.tag) || lockedTags.has(parsed.tag);
    // The name carries the table's name, cut to fit 63 bytes: the tables it may be, the whole name first.
    const owners = parsed.rest
      ? (
          await pool.query<{ relname: string }>(
            `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = $1 AND c.relkind IN ('r','p') AND left(c.relname, length($2)) = $2 AND c.relname NOT LIKE '\\_ss\\_%'
              ORDER BY c.relname <> $2, c.relname`,
            [t.nspname, parsed.rest],
          )
        ).rows.map((o) => o.relname)
      : [];
    for (const o of owners) if (!inUse && (await jobLockHeld(pool, { schema: t.nspname, name: o }))) inUse = true;
    const table = tagTable.get(parsed.tag) ?? { schema: t.nspname, name: owners[0] ?? parsed.rest };
    // A shadow names its job's table for the slot and publication when they are all that says it.
    if (parsed.kind === 'new') tagTable.set(parsed.tag, table);
    // A resumable job's shadow goes with its kept slot; its backup only exists after a cut-over (nothing to resume).
    out.push({
      kind: parsed.kind === 'new' ? 'shadow' : 'backup', name: t.relname, schema: t.nspname, table, inUse, resumable: parsed.kind === 'new' && resumableTags.has(parsed.tag),
      ...kept(parsed.kind === 'old' ? keptOld.get(`${t.nspname}.${t.relname}`) : undefined),
    });
  }
  const tableOf = (tag: string) => (tagTable.has(tag) ? { table: tagTable.get(tag)! } : {});
  for (const s of slots.rows) {
    const parsed = parseArtefactName(s.slot_name);
    if (!parsed) continue;
    out.push({ kind: 'slot', name: s.slot_name, ...tableOf(parsed.tag), inUse: s.active === 'true' || lockedTags.has(parsed.tag), resumable: isResumableArtefact(s.slot_name), ...kept(keptTags.get(parsed.tag)) });
  }
  const seen = new Set<string>();
  for (const p of pubs.rows) {
    const parsed = parseArtefactName(p.pubname);
    if (!parsed || seen.has(p.pubname)) continue;
    seen.add(p.pubname);
    out.push({ kind: 'publication', name: p.pubname, ...tableOf(parsed.tag), inUse: activeTags.has(parsed.tag) || lockedTags.has(parsed.tag), resumable: isResumableArtefact(p.pubname), ...kept(keptTags.get(parsed.tag)) });
  }
  for (const r of reverts) out.push({ kind: 'revert-point', name: r.name, table: r.table, inUse: await jobLockHeld(pool, r.table!), revertWindow: r.revertWindow });
  out.push(...(await sharedTables(pool)));
  out.push(...statements);
  return out;
}

/**
 * Statements of shadowshift sessions still running on artefacts. A job killed a moment ago
 * leaves its session running its last statement until the server notices the client is
 * gone; a CREATE of its shadow then commits, and the table appears only after a cleanup that
 * looked before would have found nothing. Listed as in use, so `cleanup --wait` waits them out.
 */
async function runningStatements(pool: PgContext['pool']): Promise<PgLeftover[]> {
  const r = await pool.query<{ pid: string; query: string }>(
    `SELECT pid::text AS pid, left(regexp_replace(query, '\\s+', ' ', 'g'), 100) AS query FROM pg_stat_activity
      WHERE pid <> pg_backend_pid() AND datname = current_database() AND backend_type = 'client backend' AND state = 'active'
        AND application_name LIKE 'shadowshift%' AND strpos(query, '_ss_') > 0
      ORDER BY pid`,
  );
  return r.rows.map((s) => ({ kind: 'statement' as const, name: `pid ${s.pid} (${s.query})`, inUse: true }));
}

/** Every revert point, in every schema's `_ss_reverts`. */
async function revertPoints(ctx: PgContext): Promise<Array<PgLeftover & { point: RevertPoint }>> {
  const { pool } = ctx;
  const support = new PostgresRevertSupport(ctx);
  const tables = await pool.query<{ nspname: string }>(
    `SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' AND c.relname = $1 AND n.nspname NOT LIKE 'pg\\_temp\\_%' ORDER BY 1`,
    [REVERT_TABLE],
  );
  const out: Array<PgLeftover & { point: RevertPoint }> = [];
  for (const t of tables.rows) {
    const rows = await pool.query<{ s: string; t: string; p: string }>(`SELECT table_schema AS s, table_name AS t, checkpoint AS p FROM ${quoteQualified(t.nspname, REVERT_TABLE)} ORDER BY 1, 2`);
    for (const r of rows.rows) {
      const point = JSON.parse(r.p) as RevertPoint;
      const age = revertPointAge(point);
      // Closed also once the slot kept for it holds more WAL than its --max-slot-lag: cleanup --execute then drops it.
      const open = revertWindowClosed(point, await support.heldLogBytes(point)) === null;
      out.push({ kind: 'revert-point', name: `${r.s}.${r.t}`, table: { schema: r.s, name: r.t }, inUse: false, point, revertWindow: { ageSeconds: age, windowSeconds: point.windowSeconds, open } });
    }
  }
  return out;
}

/** Checkpoints (one per table, kept for --resume) and the shared tables, in every schema. */
async function sharedTables(pool: PgContext['pool']): Promise<PgLeftover[]> {
  const out: PgLeftover[] = [];
  const tables = await pool.query<{ nspname: string; relname: string }>(
    `SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind = 'r' AND c.relname IN ($1, $2) AND n.nspname NOT LIKE 'pg\\_temp\\_%' ORDER BY 1, 2`,
    [CHECKPOINT_TABLE, HEARTBEAT_TABLE],
  );
  if (tables.rows.length === 0) return out;
  const anyJob = await anyJobLockHeld(pool);
  for (const t of tables.rows) {
    if (t.relname === HEARTBEAT_TABLE) {
      out.push({ kind: 'heartbeat-table', name: t.relname, schema: t.nspname, inUse: anyJob });
      continue;
    }
    const rows = await pool.query<{ s: string; t: string }>(`SELECT table_schema AS s, table_name AS t FROM ${quoteQualified(t.nspname, t.relname)} ORDER BY 1, 2`);
    if (rows.rows.length === 0) out.push({ kind: 'checkpoint-table', name: t.relname, schema: t.nspname, inUse: anyJob });
    for (const r of rows.rows) {
      const table = { schema: r.s, name: r.t };
      out.push({ kind: 'checkpoint', name: `${r.s}.${r.t}`, table, inUse: await jobLockHeld(pool, table), resumable: true });
    }
  }
  return out;
}

export async function removeLeftover(ctx: PgContext, item: PgLeftover): Promise<void> {
  if (item.inUse) throw new ShadowshiftError(`${item.kind} ${item.name} is in use by a running job; stop that job first`);
  const { pool } = ctx;
  switch (item.kind) {
    case 'slot':
      await dropSlotAndPublication(pool, item.name, '');
      return;
    case 'publication':
      await pool.query(`DROP PUBLICATION IF EXISTS ${quoteIdent(item.name)}`);
      return;
    case 'shadow':
    case 'backup': {
      let schema = item.schema;
      if (!schema) {
        const r = await pool.query<{ nspname: string }>(
          `SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = $1 AND c.relkind IN ('r','p')`,
          [item.name],
        );
        if (r.rows.length !== 1) throw new ShadowshiftError(`cannot tell which schema holds ${item.name} (${r.rows.length} candidates)`);
        schema = r.rows[0]!.nspname;
      }
      // This session's own guard on it would make the DROP wait for ever (postgres-vacuum-guard.ts).
      await releaseVacuumGuard(ctx, { schema, name: item.name });
      await pool.query(`DROP TABLE IF EXISTS ${quoteQualified(schema, item.name)}`);
      return;
    }
    case 'checkpoint':
      if (!item.table) throw new ShadowshiftError(`checkpoint ${item.name} does not say which table it belongs to`);
      await new PostgresCheckpointStore(ctx).remove(item.table);
      return;
    case 'checkpoint-table': {
      // Only while it is still empty: a job may have saved its first checkpoint since it was listed.
      const t = quoteQualified(item.schema ?? 'public', CHECKPOINT_TABLE);
      await pool.query(`DO $$BEGIN IF to_regclass(${quoteLiteral(t)}) IS NOT NULL AND NOT EXISTS (SELECT 1 FROM ${t}) THEN DROP TABLE ${t}; END IF; END$$`);
      return;
    }
    case 'heartbeat-table':
      await pool.query(`DROP TABLE IF EXISTS ${quoteQualified(item.schema ?? 'public', HEARTBEAT_TABLE)}`);
      return;
    case 'revert-point':
      if (!item.table) throw new ShadowshiftError(`revert point ${item.name} does not say which table it belongs to`);
      await new PostgresRevertPointStore(ctx).remove(item.table);
      return;
    default:
      throw new ShadowshiftError(`PostgreSQL has no ${item.kind} artefacts`);
  }
}

/**
 * Backends other than ours whose statement names the job's shadow: a stopped run's (a chunk, an
 * index build), terminated. And the stopped run's cut-over lock request on the table, which names
 * only the table: a dead client's LOCK stays queued for its whole lock_timeout, the application's
 * writes and every statement of the resume that touches the table (its preflight) queued behind it.
 * It is told by the cut-over's application_name and its exact statement; the job lock (held by the
 * caller) proves no live job of the table sent it.
 */
export async function endStoppedRun(ctx: PgContext, names: { shadow: string; backup: string; extra: Record<string, string> }, table: TableRef): Promise<number[]> {
  // And the walsender still reading the job's slot (it goes only once the server notices the client is gone).
  const cutoverLock = `${quoteQualified(table.schema, table.name)} IN ACCESS EXCLUSIVE MODE`;
  const find = async () =>
    (
      await ctx.pool.query<{ pid: number }>(
        `SELECT pid FROM pg_stat_activity
          WHERE pid <> pg_backend_pid() AND datname = current_database() AND backend_type = 'client backend' AND state <> 'idle'
            AND (strpos(query, $1) > 0 OR strpos(query, $2) > 0
                 OR (application_name = $4 AND query LIKE 'LOCK TABLE %' AND right(query, length($5)) = $5))
         UNION SELECT active_pid FROM pg_replication_slots WHERE slot_name = $3 AND active_pid IS NOT NULL`,
        [names.shadow, names.backup, names.extra.slot ?? '', CUTOVER_APPLICATION_NAME, cutoverLock],
      )
    ).rows.map((r) => Number(r.pid));
  const ended = await find();
  for (const pid of ended) await ctx.pool.query('SELECT pg_terminate_backend($1)', [pid]).catch(() => undefined);
  for (let i = 0; i < 100 && ended.length > 0 && (await find()).some((pid) => ended.includes(pid)); i++) await new Promise((r) => setTimeout(r, 100));
  return ended;
}
