// What `shadowshift cleanup` finds: shadow, changelog, backup, sentry and preview tables of
// shadowshift in the URL's database, checkpoints of resumable jobs, and the checkpoint
// and heartbeat tables every job shares. One is in use while the job lock of the table
// it belongs to is held (a job is running); a shared table while any job of the
// database runs (it may write there at any moment).

import type { RowDataPacket } from 'mysql2/promise';
import { revertPointAge, revertWindowClosed, type ArtefactNames, type Leftover, type RevertPoint } from '../dialect.js';
import { ShadowshiftError } from '../../util/errors.js';
import type { MyContext } from './mysql-context.js';
import { anyJobLockHeld, jobLockHeld } from './mysql-job-lock.js';
import { baseName, canOrderNamesAfter, legacyBaseName, parseArtefactName, previewLockName } from './mysql-names.js';
import { quoteTable } from './mysql-quote.js';
import { SENTRY_COMMENT } from './mysql-shadow.js';
import { CHECKPOINT_TABLE, MysqlCheckpointStore, MysqlRevertPointStore, REVERT_TABLE } from './mysql-checkpoints.js';
import { HEARTBEAT_TABLE } from './mysql-probes.js';
import { repointChildrenBack } from './mysql-child-repoint.js';

/** In `schema`, by default the URL's database. */
export async function listLeftovers(ctx: MyContext, schema = ctx.config.database): Promise<Leftover[]> {
  const [tables] = await ctx.pool.query<RowDataPacket[]>(
    `SELECT TABLE_NAME AS name, TABLE_COMMENT AS comment FROM information_schema.TABLES
      WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME`,
    [schema],
  );
  // base name -> the user tables it may belong to (a cut name maps back through its hash;
  // artefacts of earlier versions have a base of their own).
  const owners = new Map<string, string[]>();
  for (const t of tables) {
    const name = String(t.name);
    if (parseArtefactName(name)) continue;
    for (const base of new Set([...(canOrderNamesAfter(name) ? [baseName(name)] : []), legacyBaseName(name)])) {
      owners.set(base, [...(owners.get(base) ?? []), name]);
    }
  }
  // Tables whose resumable job kept its state on purpose (a checkpoint row exists).
  const resumableOwners = new Set<string>();
  const sharedOut: Leftover[] = [];
  const shared = tables.map((t) => String(t.name)).filter((n) => n === CHECKPOINT_TABLE || n === HEARTBEAT_TABLE);
  const anyJob = shared.length > 0 && (await anyJobLockHeld(ctx, schema, [...owners.values()].flat()));
  for (const name of shared) {
    if (name === HEARTBEAT_TABLE) {
      sharedOut.push({ kind: 'heartbeat-table', name, inUse: anyJob });
      continue;
    }
    const [cps] = await ctx.pool.query<RowDataPacket[]>(`SELECT table_schema AS s, table_name AS t FROM ${quoteTable(schema, CHECKPOINT_TABLE)} ORDER BY 1, 2`);
    if (cps.length === 0) sharedOut.push({ kind: 'checkpoint-table', name, inUse: anyJob });
    for (const c of cps) {
      const table = { schema: String(c.s), name: String(c.t) };
      if (table.schema === schema) resumableOwners.add(table.name);
      sharedOut.push({ kind: 'checkpoint', name: `${table.schema}.${table.name}`, table, inUse: await jobLockHeld(ctx, table), resumable: true });
    }
  }
  // Revert points, and the old tables they keep (a revert's target: not debris while its window is open).
  const keptOld = new Map<string, Leftover['revertWindow']>();
  if (tables.some((t) => String(t.name) === REVERT_TABLE)) {
    const [points] = await ctx.pool.query<RowDataPacket[]>(`SELECT table_schema AS s, table_name AS t, checkpoint AS p FROM ${quoteTable(schema, REVERT_TABLE)} ORDER BY 1, 2`);
    for (const p of points) {
      const point = JSON.parse(String(p.p)) as RevertPoint;
      const age = revertPointAge(point);
      const window = { ageSeconds: age, windowSeconds: point.windowSeconds, open: revertWindowClosed(point, null) === null };
      const table = { schema: String(p.s), name: String(p.t) };
      if (table.schema === schema) keptOld.set(point.oldTable, window);
      sharedOut.push({ kind: 'revert-point', name: `${table.schema}.${table.name}`, table, inUse: await jobLockHeld(ctx, table), revertWindow: window });
    }
  }
  const out: Leftover[] = [];
  for (const t of tables) {
    const name = String(t.name);
    const parsed = parseArtefactName(name);
    if (!parsed) continue;
    // A `<t>~ssf` / `<t>~ssd` (the fence of an earlier version) without the sentry comment is a user's table.
    if (/~ss[fd]$/u.test(name) && String(t.comment) !== SENTRY_COMMENT) continue;
    let inUse = false;
    // After a cut-over the original name holds the new table; before it, the original. Either way
    // the job lock is on that name. A base without an owner belongs to a table that is gone.
    const candidates = [...(owners.get(parsed.base) ?? [])];
    if (candidates.length === 0 && !parsed.base.includes('~')) candidates.push(parsed.base, ...(parsed.base.startsWith('_') ? [parsed.base.slice(1)] : []));
    for (const owner of candidates) if (await jobLockHeld(ctx, { schema, name: owner })) inUse = true;
    // A preview belongs to a run that holds no job lock yet: its own lock says it is live.
    const previewLock = parsed.kind === 'preview' ? previewLockName(name) : null;
    if (previewLock) {
      const [held] = await ctx.pool.query<RowDataPacket[]>('SELECT IS_USED_LOCK(?) AS id', [previewLock]);
      if (held[0]?.id !== null && held[0]?.id !== undefined) inUse = true;
    }
    const kind: Leftover['kind'] = parsed.kind === 'backup' && String(t.comment) === SENTRY_COMMENT ? 'sentry' : parsed.kind;
    const resumable = candidates.some((o) => resumableOwners.has(o));
    // The table whose name is the base itself, the usual case; a cut or legacy base maps back through owners.
    const table = { schema, name: candidates.includes(parsed.base) ? parsed.base : (candidates[0] ?? parsed.base) };
    const revertWindow = kind === 'backup' ? keptOld.get(name) : undefined;
    out.push({ kind, name, table, inUse, ...(resumable ? { resumable: true } : {}), ...(revertWindow ? { revertWindow } : {}) });
  }
  return [...out, ...sharedOut];
}

export async function removeLeftover(ctx: MyContext, item: Leftover): Promise<void> {
  if (item.inUse) throw new ShadowshiftError(`${item.kind} ${item.name} belongs to a job that is still running; stop that job first`);
  const schema = ctx.config.database;
  switch (item.kind) {
    case 'checkpoint':
      if (!item.table) throw new ShadowshiftError(`checkpoint ${item.name} does not say which table it belongs to`);
      await new MysqlCheckpointStore(ctx).remove(item.table);
      return;
    case 'checkpoint-table': {
      // Only while it is still empty: a job may have saved its first checkpoint since it was listed.
      const [n] = await ctx.pool.query<RowDataPacket[]>(`SELECT COUNT(*) AS n FROM ${quoteTable(schema, CHECKPOINT_TABLE)}`);
      if (Number(n[0]?.n) === 0) await ctx.pool.query(`DROP TABLE IF EXISTS ${quoteTable(schema, CHECKPOINT_TABLE)}`);
      return;
    }
    case 'heartbeat-table':
      await ctx.pool.query(`DROP TABLE IF EXISTS ${quoteTable(schema, HEARTBEAT_TABLE)}`);
      return;
    case 'revert-point':
      if (!item.table) throw new ShadowshiftError(`revert point ${item.name} does not say which table it belongs to`);
      await new MysqlRevertPointStore(ctx).remove(item.table);
      return;
    default:
  }
  if (!parseArtefactName(item.name)) throw new ShadowshiftError(`${item.name} is not a shadowshift table; refusing to drop it`);
  if (!['shadow', 'changelog', 'backup', 'sentry', 'preview'].includes(item.kind)) throw new ShadowshiftError(`MySQL has no ${item.kind} artefacts`);
  // Children a stopped cut-over repointed at the shadow go back on the table first (mysql-child-repoint.ts); throws, naming them, when the table is gone.
  if (item.kind === 'shadow' && item.table) await repointChildrenBack(ctx, schema, item.table.name, item.name, { lockSeconds: 10, log: ctx.log });
  await ctx.pool.query(`DROP TABLE IF EXISTS ${quoteTable(schema, item.name)}`);
}

/** Sessions other than ours whose statement names the job's shadow or backup/sentry: a stopped run's, ended with KILL. */
export async function endStoppedRun(ctx: MyContext, names: ArtefactNames): Promise<number[]> {
  const find = async () => {
    const [rows] = await ctx.pool.query<RowDataPacket[]>(
      `SELECT ID AS id FROM information_schema.PROCESSLIST
        WHERE ID <> CONNECTION_ID() AND INFO IS NOT NULL AND COMMAND <> 'Binlog Dump' AND (INSTR(INFO, ?) > 0 OR INSTR(INFO, ?) > 0)`,
      [names.shadow, names.backup],
    );
    return rows.map((r) => Number(r.id));
  };
  const ended = await find();
  for (const id of ended) await ctx.pool.query(`KILL ${id}`).catch(() => undefined);
  for (let i = 0; i < 100 && ended.length > 0 && (await find()).some((id) => ended.includes(id)); i++) await new Promise((r) => setTimeout(r, 100));
  return ended;
}
