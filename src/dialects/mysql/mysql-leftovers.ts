// What `shadowshift cleanup` finds: shadow, changelog, backup and sentry tables of
// shadowshift in the URL's database. One is in use while the job lock of the table it
// belongs to is held (a job is running).

import type { RowDataPacket } from 'mysql2/promise';
import type { Leftover } from '../dialect.js';
import { ShadowshiftError } from '../../util/errors.js';
import type { MyContext } from './mysql-context.js';
import { jobLockHeld } from './mysql-job-lock.js';
import { baseName, parseArtefactName } from './mysql-names.js';
import { quoteTable } from './mysql-quote.js';
import { SENTRY_COMMENT } from './mysql-shadow.js';
import { CHECKPOINT_TABLE } from './mysql-checkpoints.js';

export async function listLeftovers(ctx: MyContext): Promise<Leftover[]> {
  const schema = ctx.config.database;
  const [tables] = await ctx.pool.query<RowDataPacket[]>(
    `SELECT TABLE_NAME AS name, TABLE_COMMENT AS comment FROM information_schema.TABLES
      WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME`,
    [schema],
  );
  // base name -> the user tables it may belong to (a cut name maps back through its hash).
  const owners = new Map<string, string[]>();
  for (const t of tables) {
    const name = String(t.name);
    if (parseArtefactName(name)) continue;
    const base = baseName(name);
    owners.set(base, [...(owners.get(base) ?? []), name]);
  }
  // Tables whose resumable job kept its state on purpose (a checkpoint row exists).
  const resumableOwners = new Set<string>();
  if (tables.some((t) => String(t.name) === CHECKPOINT_TABLE)) {
    const [cps] = await ctx.pool.query<RowDataPacket[]>(`SELECT table_name AS t FROM ${quoteTable(schema, CHECKPOINT_TABLE)} WHERE table_schema = ?`, [schema]);
    for (const c of cps) resumableOwners.add(String(c.t));
  }
  const out: Leftover[] = [];
  for (const t of tables) {
    const name = String(t.name);
    const parsed = parseArtefactName(name);
    if (!parsed) continue;
    // A `<t>~ssf` / `<t>~ssd` that is not our sentry (no sentry comment) is a user's table.
    if (/~ss[fd]$/u.test(name) && String(t.comment) !== SENTRY_COMMENT) continue;
    let inUse = false;
    // After a cut-over the original name holds the new table; before it, the original. Either way
    // the job lock is on that name. A base without an owner belongs to a table that is gone.
    const candidates = owners.get(parsed.base) ?? [];
    if (candidates.length === 0 && !parsed.base.includes('~')) candidates.push(parsed.base.slice(1));
    for (const owner of candidates) if (await jobLockHeld(ctx, { schema, name: owner })) inUse = true;
    const kind: Leftover['kind'] = parsed.kind === 'backup' && String(t.comment) === SENTRY_COMMENT ? 'sentry' : parsed.kind;
    const resumable = candidates.some((o) => resumableOwners.has(o));
    out.push({ kind, name, inUse, ...(resumable ? { resumable: true } : {}) });
  }
  return out;
}

export async function removeLeftover(ctx: MyContext, item: Leftover): Promise<void> {
  if (item.inUse) throw new ShadowshiftError(`${item.kind} ${item.name} belongs to a job that is still running; stop that job first`);
  if (!parseArtefactName(item.name)) throw new ShadowshiftError(`${item.name} is not a shadowshift table; refusing to drop it`);
  if (!['shadow', 'changelog', 'backup', 'sentry'].includes(item.kind)) throw new ShadowshiftError(`MySQL has no ${item.kind} artefacts`);
  await ctx.pool.query(`DROP TABLE IF EXISTS ${quoteTable(ctx.config.database, item.name)}`);
}
