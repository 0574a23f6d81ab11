// What `shadowshift cleanup` finds: slots, publications, shadow and backup tables of
// shadowshift in this database. An artefact is in use when its job's slot is being
// read, or when the job lock of the table it belongs to is held.

import type { Leftover } from '../dialect.js';
import type { PgContext } from './postgres-context.js';
import { jobLockHeld } from './postgres-job-lock.js';
import { isResumableArtefact, parseArtefactName } from './postgres-names.js';
import { quoteIdent, quoteQualified } from './postgres-quote.js';
import { dropSlotAndPublication } from './postgres-change-stream.js';
import { ShadowshiftError } from '../../util/errors.js';

export interface PgLeftover extends Leftover {
  schema?: string;
}

export async function listLeftovers(ctx: PgContext): Promise<PgLeftover[]> {
  const { pool } = ctx;
  const out: PgLeftover[] = [];
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
  for (const p of pubs.rows) {
    const parsed = parseArtefactName(p.pubname);
    if (parsed && isResumableArtefact(p.pubname)) resumableTags.add(parsed.tag);
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
    // The name carries the table's name (cut to fit 63 bytes): check that table's lock too.
    if (!inUse && parsed.rest) {
      const owners = await pool.query<{ relname: string }>(
        `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = $1 AND c.relkind IN ('r','p') AND left(c.relname, length($2)) = $2 AND c.relname NOT LIKE '\\_ss\\_%'`,
        [t.nspname, parsed.rest],
      );
      for (const o of owners.rows) if (await jobLockHeld(pool, { schema: t.nspname, name: o.relname })) inUse = true;
    }
    // A resumable job's shadow goes with its kept slot; its backup only exists after a cut-over (nothing to resume).
    out.push({ kind: parsed.kind === 'new' ? 'shadow' : 'backup', name: t.relname, schema: t.nspname, inUse, resumable: parsed.kind === 'new' && resumableTags.has(parsed.tag) });
  }
  for (const s of slots.rows) {
    const parsed = parseArtefactName(s.slot_name);
    if (!parsed) continue;
    out.push({ kind: 'slot', name: s.slot_name, inUse: s.active === 'true' || lockedTags.has(parsed.tag), resumable: isResumableArtefact(s.slot_name) });
  }
  const seen = new Set<string>();
  for (const p of pubs.rows) {
    const parsed = parseArtefactName(p.pubname);
    if (!parsed || seen.has(p.pubname)) continue;
    seen.add(p.pubname);
    out.push({ kind: 'publication', name: p.pubname, inUse: activeTags.has(parsed.tag) || lockedTags.has(parsed.tag), resumable: isResumableArtefact(p.pubname) });
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
      await pool.query(`DROP TABLE IF EXISTS ${quoteQualified(schema, item.name)}`);
      return;
    }
    default:
      throw new ShadowshiftError(`PostgreSQL has no ${item.kind} artefacts`);
  }
}
