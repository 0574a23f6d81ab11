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
// The definition comes from information_schema.TRIGGERS and is re-created with its
// definer, timing, event, order (created in ACTION_ORDER), body, sql_mode and
// collation_connection. The character set the statement is sent in is the connection's
// (utf8mb4); string literals in the body keep their collation.

import { createHash } from 'node:crypto';
import type { Connection, Pool, PoolConnection, RowDataPacket } from 'mysql2/promise';
import { quoteIdent, quoteTable } from './mysql-quote.js';
import { MAX_IDENT_CHARS } from './mysql-names.js';

type Queryable = Pool | PoolConnection | Connection;

export const SHADOW_TRIGGER_SUFFIX = '_ssnew';

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

/** The table's triggers, in the order they fire for each timing and event. */
export async function triggersOf(db: Queryable, schema: string, table: string): Promise<TriggerDefinition[]> {
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

/** `user@host` as information_schema gives it, quoted for DEFINER= (the host follows the last @; a role has none). */
export function quoteDefiner(definer: string): string {
  const at = definer.lastIndexOf('@');
  return at < 0 ? quoteIdent(definer) : `${quoteIdent(definer.slice(0, at))}@${quoteIdent(definer.slice(at + 1))}`;
}

export function createTriggerSql(t: TriggerDefinition, name: string, schema: string, table: string): string {
  return `CREATE DEFINER=${quoteDefiner(t.definer)} TRIGGER ${quoteTable(schema, name)} ${t.timing} ${t.event} ON ${quoteTable(schema, table)} FOR EACH ROW ${t.body}`;
}

export function dropTriggerSql(schema: string, name: string): string {
  return `DROP TRIGGER IF EXISTS ${quoteTable(schema, name)}`;
}

/** Creates the trigger under the sql_mode and collation it was created with, then puts the session's back. */
async function createTrigger(conn: Connection, t: TriggerDefinition, name: string, schema: string, table: string): Promise<void> {
  const [[before]] = await conn.query<RowDataPacket[]>('SELECT @@SESSION.sql_mode AS m, @@SESSION.collation_connection AS c');
  await conn.query('SET SESSION sql_mode = ?, collation_connection = ?', [t.sqlMode, t.collationConnection]);
  try {
    await conn.query(createTriggerSql(t, name, schema, table));
  } finally {
    await conn.query('SET SESSION sql_mode = ?, collation_connection = ?', [before!.m, before!.c]);
  }
}

/** Step 1: the table's triggers on the shadow, under their temporary names. */
export async function createShadowTriggers(conn: Connection, schema: string, shadow: string, triggers: TriggerDefinition[]): Promise<void> {
  for (const t of triggers) await createTrigger(conn, t, shadowTriggerName(t.name), schema, shadow);
}

export async function dropShadowTriggers(conn: Queryable, schema: string, triggers: TriggerDefinition[]): Promise<void> {
  for (const t of triggers) await conn.query(dropTriggerSql(schema, shadowTriggerName(t.name)));
}

/**
 * Step 2, on a connection that holds `LOCK TABLES live WRITE, old WRITE`: each trigger's
 * own name moves from the old table to the live one, replacing the temporary one. Created
 * before the temporary one is dropped, so a crash in between leaves one trigger too many
 * (which `cleanup` removes), never one too few.
 */
export async function renameLiveTriggers(conn: Connection, schema: string, live: string, triggers: TriggerDefinition[]): Promise<void> {
  for (const t of triggers) {
    await conn.query(dropTriggerSql(schema, t.name));
    await createTrigger(conn, t, t.name, schema, live);
    await conn.query(dropTriggerSql(schema, shadowTriggerName(t.name)));
  }
}

/** The statements that finish step 2 by hand. */
export function renameStatements(schema: string, live: string, old: string | null, triggers: TriggerDefinition[]): string[] {
  return [
    `LOCK TABLES ${[live, old].filter((t) => t !== null).map((t) => `${quoteTable(schema, t)} WRITE`).join(', ')}`,
    ...triggers.flatMap((t) => [
      dropTriggerSql(schema, t.name),
      `SET SESSION sql_mode = '${t.sqlMode}', collation_connection = '${t.collationConnection}'`,
      createTriggerSql(t, t.name, schema, live),
      dropTriggerSql(schema, shadowTriggerName(t.name)),
    ]),
    'UNLOCK TABLES',
  ];
}
