// The table's triggers, carried to the new table at the cut-over (issue 15;
// docs/design/mysql-foreign-keys-and-triggers.md has the measurements behind it).
//
// RENAME TABLE moves a table's triggers with it, so at the swap the old table keeps
// them, and trigger names are unique per schema. So the move takes two steps, neither
// of which leaves the live table without its triggers or fires one twice:
//
//   1. Under the swap's lock (the original locked, every change applied to the shadow,
//      nothing writes either table), B creates each trigger on the shadow under a
//      temporary name (`<name>_ssnew`), before it sends the RENAME. The applier never
//      writes the shadow once its triggers exist: a failed attempt drops them before the
//      stream is applied again (a job that cannot drop them fails, and its cleanup drops
//      the shadow with them). The RENAME then brings them live with the new table, atomically.
//   2. Just after the swap, under `LOCK TABLES new WRITE, old WRITE`, each trigger gets
//      its name back: dropped from the old table, created on the new one, and the
//      temporary one dropped. Nothing writes meanwhile. If that lock cannot be had, the
//      temporary names stay (the triggers work) and the log gives the statements.
//
// The definition comes from information_schema.TRIGGERS, the body from SHOW CREATE
// TRIGGER (information_schema loses characters outside the BMP). It is re-created with
// its definer, timing, event, order (created in ACTION_ORDER), body, sql_mode and
// collation_connection. The statement is sent in the connection's character set
// (utf8mb4), and string literals in the body keep their collation.

import { createHash } from 'node:crypto';
import type { Connection, Pool, PoolConnection, RowDataPacket } from 'mysql2/promise';
import { quoteIdent, quoteTable } from './mysql-quote.js';
import { MAX_IDENT_CHARS } from './mysql-names.js';
import { ShadowshiftError } from '../../util/errors.js';
import type { Logger } from '../../util/logger.js';

type Queryable = Pool | PoolConnection | Connection;

export const SHADOW_TRIGGER_SUFFIX = '_ssnew';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface TriggerDefinition {
  name: string;
  timing: string;
  event: string;
  body: string;
  definer: string;
  sqlMode: string;
  collationConnection: string;
}

/**
 * The name a trigger has on the shadow, until it gets its own back after the swap:
 * `<name>_ssnew`, or for a name too long for that, its start, `~` and a hash of the whole.
 */
export function shadowTriggerName(name: string): string {
  const chars = [...name];
  if (chars.length + SHADOW_TRIGGER_SUFFIX.length <= MAX_IDENT_CHARS) return `${name}${SHADOW_TRIGGER_SUFFIX}`;
  const hash = createHash('sha256').update(name).digest('hex').slice(0, 6);
  return `${chars.slice(0, MAX_IDENT_CHARS - SHADOW_TRIGGER_SUFFIX.length - hash.length - 1).join('')}~${hash}${SHADOW_TRIGGER_SUFFIX}`;
}

/** What information_schema shows of a text: it holds utf8mb3, so each character outside the BMP reads `?`. */
function asUtf8mb3(text: string): string {
  return [...text].map((ch) => (ch.codePointAt(0)! > 0xffff ? '?' : ch)).join('');
}

/**
 * The body exactly as written, from SHOW CREATE TRIGGER's statement (information_schema
 * loses characters outside the BMP): what follows `FOR EACH ROW` and an optional
 * FOLLOWS/PRECEDES clause, accepted only when it reads as information_schema's body.
 */
export function bodyFromStatement(statement: string, shownBody: string): string {
  const head = /\bFOR\s+EACH\s+ROW\s+(?:(?:FOLLOWS|PRECEDES)\s+(?:`(?:[^`]|``)+`|\S+)\s+)?/i.exec(statement);
  const body = head ? statement.slice(head.index + head[0].length) : null;
  if (body === null || asUtf8mb3(body) !== shownBody) {
    throw new ShadowshiftError(`cannot read the body of a trigger exactly (SHOW CREATE TRIGGER and information_schema disagree): '${shownBody.slice(0, 80)}'. Re-create the trigger, or drop it for the ALTER`);
  }
  return body;
}

/**
 * The table's triggers as information_schema shows them, in the order they fire for each
 * timing and event; the body as it shows it (characters outside the BMP as `?`). Needs no
 * TRIGGER privilege, unlike triggersOf.
 */
export async function listTriggers(db: Queryable, schema: string, table: string): Promise<TriggerDefinition[]> {
  const [rows] = await db.query<RowDataPacket[]>(
    `SELECT TRIGGER_NAME, ACTION_TIMING, EVENT_MANIPULATION, ACTION_STATEMENT, DEFINER, SQL_MODE, COLLATION_CONNECTION
       FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA = ? AND EVENT_OBJECT_TABLE = ?
      ORDER BY EVENT_MANIPULATION, ACTION_TIMING, ACTION_ORDER`,
    [schema, table],
  );
  return rows.map((r) => ({
    name: String(r.TRIGGER_NAME),
    timing: String(r.ACTION_TIMING),
    event: String(r.EVENT_MANIPULATION),
    body: String(r.ACTION_STATEMENT),
    definer: String(r.DEFINER),
    sqlMode: String(r.SQL_MODE),
    collationConnection: String(r.COLLATION_CONNECTION),
  }));
}

/** The table's triggers with their bodies exactly as written (SHOW CREATE TRIGGER, which needs the TRIGGER privilege). */
export async function triggersOf(db: Queryable, schema: string, table: string): Promise<TriggerDefinition[]> {
  const out: TriggerDefinition[] = [];
  for (const t of await listTriggers(db, schema, table)) {
    const [[shown]] = await db.query<RowDataPacket[]>(`SHOW CREATE TRIGGER ${quoteTable(schema, t.name)}`);
    out.push({ ...t, body: bodyFromStatement(String(shown!['SQL Original Statement']), t.body) });
  }
  return out;
}

/** `user@host` as information_schema gives it, quoted for DEFINER= (the host follows the last @; a role has none). */
export function quoteDefiner(definer: string): string {
  const at = definer.lastIndexOf('@');
  return at < 0 ? quoteIdent(definer) : `${quoteIdent(definer.slice(0, at))}@${quoteIdent(definer.slice(at + 1))}`;
}

/** `precedes`: the trigger it is placed before (the temporary one it replaces keeps its place in the order). */
export function createTriggerSql(t: TriggerDefinition, name: string, schema: string, table: string, precedes?: string): string {
  const order = precedes ? `PRECEDES ${quoteIdent(precedes)} ` : '';
  return `CREATE DEFINER=${quoteDefiner(t.definer)} TRIGGER ${quoteTable(schema, name)} ${t.timing} ${t.event} ON ${quoteTable(schema, table)} FOR EACH ROW ${order}${t.body}`;
}

export function dropTriggerSql(schema: string, name: string): string {
  return `DROP TRIGGER IF EXISTS ${quoteTable(schema, name)}`;
}

/** Creates the trigger under the sql_mode and collation it was created with, then puts the session's back. */
async function createTrigger(conn: Connection, t: TriggerDefinition, name: string, schema: string, table: string, precedes?: string): Promise<void> {
  const [[before]] = await conn.query<RowDataPacket[]>('SELECT @@SESSION.sql_mode AS m, @@SESSION.collation_connection AS c');
  await conn.query('SET SESSION sql_mode = ?, collation_connection = ?', [t.sqlMode, t.collationConnection]);
  try {
    await conn.query(createTriggerSql(t, name, schema, table, precedes));
  } finally {
    await conn.query('SET SESSION sql_mode = ?, collation_connection = ?', [before!.m, before!.c]);
  }
}

/** Step 1: the table's triggers on the shadow, under their temporary names. */
export async function createShadowTriggers(conn: Connection, schema: string, shadow: string, triggers: TriggerDefinition[]): Promise<void> {
  for (const t of triggers) await createTrigger(conn, t, shadowTriggerName(t.name), schema, shadow);
}

/** Drops every trigger on the shadow (each is the job's own), by the table: after a swap there is none, whatever the names. */
export async function dropShadowTriggers(conn: Queryable, schema: string, shadow: string): Promise<string[]> {
  const [rows] = await conn.query<RowDataPacket[]>('SELECT TRIGGER_NAME AS n FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA = ? AND EVENT_OBJECT_TABLE = ?', [schema, shadow]);
  for (const r of rows) await conn.query(dropTriggerSql(schema, String(r.n)));
  return rows.map((r) => String(r.n));
}

/**
 * Before anything is copied: each trigger can be created on the (empty) shadow, so that
 * an ALTER that drops or renames a column a trigger uses (`Unknown column 'x' in 'NEW'`)
 * fails the job now instead of every cut-over attempt under the lock.
 */
export async function checkTriggersFit(conn: Connection, schema: string, table: string, shadow: string): Promise<void> {
  const triggers = await triggersOf(conn, schema, table);
  try {
    for (const t of triggers) {
      try {
        await createTrigger(conn, t, shadowTriggerName(t.name), schema, shadow);
      } catch (err) {
        throw new ShadowshiftError(
          `the trigger ${t.name} of ${table} does not fit the new table (${(err as Error).message}): it would fail at the cut-over. ` +
            'Re-create the trigger so that it fits both the old and the new table, or drop it, then run the ALTER again',
          { cause: err },
        );
      }
    }
  } finally {
    await dropShadowTriggers(conn, schema, shadow);
  }
}

/**
 * Step 2, on a connection that holds `LOCK TABLES live WRITE, old WRITE`: each trigger's
 * own name moves from the old table to the live one, replacing the temporary one, placed
 * just before it (the order holds at every step). Created before the temporary one is
 * dropped, so a crash in between leaves one trigger too many (which `--resume` removes,
 * MysqlCutover.settleStoppedCutover), never one too few.
 */
export async function renameLiveTriggers(conn: Connection, schema: string, live: string, triggers: TriggerDefinition[]): Promise<void> {
  for (const t of triggers) {
    const temporary = shadowTriggerName(t.name);
    await conn.query(dropTriggerSql(schema, t.name));
    await createTrigger(conn, t, t.name, schema, live, temporary);
    await conn.query(dropTriggerSql(schema, temporary));
  }
}

/** The statements that finish step 2 by hand. */
export function renameStatements(schema: string, live: string, old: string | null, triggers: TriggerDefinition[]): string[] {
  return [
    `LOCK TABLES ${[live, old].filter((t) => t !== null).map((t) => `${quoteTable(schema, t)} WRITE`).join(', ')}`,
    ...triggers.flatMap((t) => [
      dropTriggerSql(schema, t.name),
      `SET SESSION sql_mode = '${t.sqlMode}', collation_connection = '${t.collationConnection}'`,
      createTriggerSql(t, t.name, schema, live, shadowTriggerName(t.name)),
      dropTriggerSql(schema, shadowTriggerName(t.name)),
    ]),
    'UNLOCK TABLES',
  ];
}

/** Step 2, a few tries; the temporary names stay (and work) if the lock cannot be had. Never throws: the log says how to finish. */
export async function giveTriggersTheirNames(
  connect: () => Promise<Connection>,
  schema: string,
  live: string,
  old: string | null,
  triggers: TriggerDefinition[],
  lockSeconds: number,
  log: Logger,
): Promise<void> {
  let lastError = '';
  // Few tries: each holds the table's queries up to the lock timeout while it waits.
  for (let attempt = 1; attempt <= 3; attempt++) {
    let conn: Connection | null = null;
    try {
      conn = await connect();
      await conn.query(`SET SESSION lock_wait_timeout = ${lockSeconds}`);
      const requestedAt = Date.now();
      await conn.query(`LOCK TABLES ${[live, old].filter((t) => t !== null).map((t) => `${quoteTable(schema, t)} WRITE`).join(', ')}`);
      const lockedAt = Date.now();
      try {
        await renameLiveTriggers(conn, schema, live, triggers);
      } finally {
        await conn.query('UNLOCK TABLES');
      }
      log.info({ triggers: triggers.map((t) => t.name), blockedMs: Date.now() - lockedAt, lockedMs: Date.now() - requestedAt }, 'the triggers have their names back on the new table');
      return;
    } catch (err) {
      lastError = (err as Error).message;
      await sleep(200 * attempt);
    } finally {
      await conn?.end().catch(() => conn?.destroy());
    }
  }
  log.warn(
    { triggers: triggers.map((t) => t.name), err: lastError, statements: renameStatements(schema, live, old, triggers) },
    `the triggers work on the new table, under temporary names ending in _ssnew, but could not be given their own names back (${lastError}); ` +
      'run the logged statements in one session',
  );
}
