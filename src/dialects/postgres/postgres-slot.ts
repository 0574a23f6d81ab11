// The replication slot and publication a PostgreSQL job's change stream reads: created
// when the stream starts (publication first: pgoutput reads it through the historic
// catalog snapshot, so it must exist before the slot's start), found again for a resume,
// dropped by the stream's stop and by the clean-up of leftovers.

import type pg from 'pg';
import type { StreamPosition, StreamPositionProblem } from '../dialect.js';
import { quoteIdent } from './postgres-quote.js';
import { ShadowshiftError } from '../../util/errors.js';
import { pgCode } from './postgres-errors.js';

/** Makes the slot (after the publication exists); returns its start LSN. */
export type SlotMaker = (slot: string) => Promise<string>;

/** The plain way: a slot whose start is the current end of the WAL, nothing exported. */
export function slotBySql(pool: pg.Pool): SlotMaker {
  return async (slot) => (await pool.query<{ lsn: string }>(`SELECT lsn::text AS lsn FROM pg_create_logical_replication_slot($1, 'pgoutput')`, [slot])).rows[0]!.lsn;
}

/** Creates the publication of `table` (quoted) and the slot; returns the slot's start LSN. */
export async function createSlotAndPublication(pool: pg.Pool, table: string, slot: string, publication: string, makeSlot: SlotMaker = slotBySql(pool)): Promise<string> {
  // Publishing a table without a replica identity makes the application's UPDATE and
  // DELETE on it fail: never do that, whatever the preflight said.
  const ri = await pool.query<{ ok: string }>(
    `SELECT (c.relreplident = 'f' OR (c.relreplident = 'd' AND EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary))
             OR (c.relreplident = 'i' AND EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisreplident)))::text AS ok
       FROM pg_class c WHERE c.oid = $1::regclass`,
    [table],
  );
  if (ri.rows[0]?.ok !== 'true') {
    throw new ShadowshiftError(`${table} has no replica identity (no primary key); publishing it would make the application's UPDATE and DELETE fail. Add a primary key first.`);
  }
  try {
    await pool.query(`CREATE PUBLICATION ${quoteIdent(publication)} FOR TABLE ${table}`);
    return await makeSlot(slot);
  } catch (err) {
    await dropSlotAndPublication(pool, slot, publication).catch(() => undefined);
    throw new ShadowshiftError(`cannot create the replication slot and publication for ${table}: ${(err as Error).message}`, { cause: err });
  }
}

/** A resume: the slot and publication kept by the earlier run must exist, and no dead run may still read the slot. */
export async function takeOverKeptSlot(pool: pg.Pool, slot: string, publication: string): Promise<void> {
  const r = await pool.query<{ slot: string | null; pub: string | null }>(
    `SELECT (SELECT slot_name FROM pg_replication_slots WHERE slot_name = $1) AS slot, (SELECT pubname FROM pg_publication WHERE pubname = $2) AS pub`,
    [slot, publication],
  );
  if (!r.rows[0]?.slot || !r.rows[0]?.pub) {
    throw new ShadowshiftError(
      `cannot resume: the replication slot ${slot} or publication ${publication} kept by the earlier run is gone, so changes since then are lost to the job. Run \`shadowshift cleanup --execute\` and start the job again without --resume.`,
    );
  }
  await releaseSlotOfDeadRun(pool, slot);
}

/** What a resume finds of the slot and publication a stopped run kept. */
export interface KeptSlotState {
  /** null: no slot of that name. */
  slot: {
    /** pg_replication_slots.wal_status: 'lost' once the WAL the slot needs was removed. */
    walStatus: string | null;
    /** PostgreSQL 16+ (null before): invalidated by a conflict with recovery. */
    conflicting: boolean | null;
    /** PostgreSQL 17+ (null before, and while the slot is valid). */
    invalidationReason: string | null;
  } | null;
  publication: boolean;
}

/** Reads the kept slot's state; the columns that say a slot was invalidated came one server version at a time. */
export async function readKeptSlot(pool: pg.Pool, slot: string, publication: string): Promise<KeptSlotState> {
  const v = await pool.query<{ n: string }>(`SELECT current_setting('server_version_num') AS n`);
  const version = Number(v.rows[0]!.n);
  const cols = ['wal_status', version >= 160000 ? 'conflicting::text' : 'NULL::text', version >= 170000 ? 'invalidation_reason' : 'NULL::text'];
  const r = await pool.query<{ wal_status: string | null; conflicting: string | null; invalidation_reason: string | null }>(
    `SELECT ${cols[0]} AS wal_status, ${cols[1]} AS conflicting, ${cols[2]} AS invalidation_reason FROM pg_replication_slots WHERE slot_name = $1`,
    [slot],
  );
  const p = await pool.query(`SELECT 1 FROM pg_publication WHERE pubname = $1`, [publication]);
  const s = r.rows[0];
  return {
    slot: s ? { walStatus: s.wal_status, conflicting: s.conflicting === null ? null : s.conflicting === 'true', invalidationReason: s.invalidation_reason } : null,
    publication: p.rows.length > 0,
  };
}

/**
 * Why a resume cannot read on from `position` through the kept slot, or null when it can.
 * The slot's confirmed_flush_lsn past `position` is not a reason: the job confirms only what
 * it applied to the shadow, but it saves a checkpoint only every few seconds (and confirms
 * the server's sent position while idle), so the slot is normally ahead of the checkpoint;
 * the server then starts at confirmed_flush_lsn, and what lies between is in the shadow
 * already. Someone else consuming the slot (pg_logical_slot_get_changes,
 * pg_replication_slot_advance) looks the same from here, so it cannot be told apart.
 */
export function keptSlotProblem(state: KeptSlotState, names: { shadow: string; slot: string; publication: string }, position: StreamPosition): StreamPositionProblem | null {
  const { slot, publication } = names;
  const left = [names.shadow, ...(state.publication ? [`the publication ${publication}`] : []), ...(state.slot ? [`the replication slot ${slot}`] : [])];
  if (!state.slot) {
    return {
      problem:
        `the replication slot ${slot} that the checkpoint's position ${position} is read from no longer exists on the server (it was dropped: pg_drop_replication_slot, or a cleanup while the job was stopped), ` +
        'and with it the changes since that position. A job can resume only while its slot is kept: do not drop the slot of a stopped job',
      left,
    };
  }
  const invalidated = invalidation(state.slot);
  if (invalidated) {
    return { problem: `the server invalidated the replication slot ${slot} that the checkpoint's position ${position} is read from (${invalidated.why}): it can no longer send the changes since that position. ${invalidated.keep}`, left };
  }
  if (!state.publication) {
    return {
      problem: `the publication ${publication} that the replication slot ${slot} decodes the table's changes through (from the checkpoint's position ${position}) no longer exists on the server. A job can resume only while its publication is kept: do not drop the publication of a stopped job`,
      left,
    };
  }
  return null;
}

/** Why the server invalidated the slot and what keeps the next job's slot, or null while it is valid. */
function invalidation(s: NonNullable<KeptSlotState['slot']>): { why: string; keep: string } | null {
  const walKept =
    'A job can resume only while the server keeps the WAL its slot needs: set max_slot_wal_keep_size above the WAL the server writes while a job may stay stopped (-1, the default, keeps all of it), or resume sooner';
  const reason = s.invalidationReason ?? (s.walStatus === 'lost' ? 'wal_removed' : s.conflicting ? 'conflict' : null);
  switch (reason) {
    case null:
      return null;
    case 'wal_removed':
      return { why: 'wal_status lost: the WAL it needed was removed, past max_slot_wal_keep_size', keep: walKept };
    case 'idle_timeout':
      return { why: 'idle_timeout: unused for longer than idle_replication_slot_timeout', keep: 'A job can resume only within idle_replication_slot_timeout of its stop: set it above the time a job may stay stopped, or 0 (no timeout)' };
    default:
      return { why: `${reason === 'conflict' ? 'a conflict with recovery' : reason}${s.walStatus ? `, wal_status ${s.walStatus}` : ''}`, keep: walKept };
  }
}

/**
 * A run killed a moment ago can leave its walsender holding the slot until the server
 * notices the client is gone; reading the slot then fails (55006). The resuming job
 * holds the table's job lock, so no live job reads this slot: wait briefly, then end
 * that walsender.
 */
async function releaseSlotOfDeadRun(pool: pg.Pool, slot: string): Promise<void> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const r = await pool.query<{ active_pid: string | null }>(`SELECT active_pid::text FROM pg_replication_slots WHERE slot_name = $1`, [slot]);
    const pid = r.rows[0]?.active_pid;
    if (!pid) return;
    if (attempt >= 10) await pool.query(`SELECT pg_terminate_backend($1::int)`, [pid]).catch(() => undefined);
    await new Promise((res) => setTimeout(res, 100));
  }
  throw new ShadowshiftError(`cannot resume: replication slot ${slot} is still in use by another session; stop it (see pg_replication_slots.active_pid) and run again`);
}

/** Drops the slot (waiting for, then ending, a walsender still holding it) and the publication. */
export async function dropSlotAndPublication(pool: pg.Pool, slot: string, publication: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    const r = await pool.query<{ active_pid: string | null }>(`SELECT active_pid::text FROM pg_replication_slots WHERE slot_name = $1`, [slot]);
    if (r.rows.length === 0) break;
    const pid = r.rows[0]!.active_pid;
    if (pid === null) {
      try {
        await pool.query(`SELECT pg_drop_replication_slot($1)`, [slot]);
        break;
      } catch (err) {
        if (pgCode(err) === '42704') break; // gone meanwhile
        if (pgCode(err) !== '55006' || attempt > 50) throw err;
      }
    } else if (attempt >= 10) {
      // Our own walsender lingering after its client went away.
      await pool.query(`SELECT pg_terminate_backend($1::int)`, [pid]).catch(() => undefined);
    }
    await new Promise((res) => setTimeout(res, 100));
  }
  if (publication) await pool.query(`DROP PUBLICATION IF EXISTS ${quoteIdent(publication)}`);
}
