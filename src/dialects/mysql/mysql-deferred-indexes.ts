// Secondary indexes built after the copy instead of before: InnoDB builds an index from
// sorted rows far faster than it maintains one row by row (bench/RESULTS.md, "Index
// experiment": a PK-only copy plus the build beat the copy with the indexes in place
// 1.4-2.1x on 1M rows).
//
// Only plain keys are deferred (KEY, not UNIQUE, FULLTEXT or SPATIAL): the copy's INSERT
// IGNORE and the applier rely on the unique keys, and a plain key cannot fail to build on
// the data. All of them or none, so the table's keys end in the order a native ALTER
// leaves them. createShadow records each definition (as SHOW CREATE TABLE prints it) in
// the job's changelog before dropping it from the empty shadow, so a resumed job finds
// them; finishShadow() builds the missing ones in one ALTER ... ALGORITHM=INPLACE,
// LOCK=NONE while the engine keeps applying the binlog to the shadow.
//
// The build replicates as one statement: every replica applies it before anything
// after it, so its replication stalls for the build's length. By default a job defers
// only when it can see that no replica reads the binlog (deferralConcern).

import type { Connection, PoolConnection, RowDataPacket } from 'mysql2/promise';
import type { TableRef } from '../dialect.js';
import { ShadowshiftError } from '../../util/errors.js';
import { dedicatedConnection, type MyContext } from './mysql-context.js';
import { wrapError } from './mysql-errors.js';
import { changelogBeside } from './mysql-names.js';
import { quoteTable } from './mysql-quote.js';
import { hasGlobal, parseGrant, type Grant } from './checks/privileges.js';

const KIND = 'deferred-index';
const ER_INNODB_ONLINE_LOG_TOO_BIG = 1799;
/** The changelog's value column (mysql-shadow.ts). A longer definition keeps every key in place. */
const MAX_DEFINITION = 255;

export interface PlainKey {
  name: string;
  /** As SHOW CREATE TABLE prints it: `KEY \`name\` (\`a\`,\`b\`(10)) COMMENT '...'`. */
  definition: string;
}

/** The plain keys of a SHOW CREATE TABLE text, in its order. */
export function plainKeys(createTable: string): PlainKey[] {
  const keys: PlainKey[] = [];
  for (const line of createTable.split('\n')) {
    const m = /^\s*KEY `((?:[^`]|``)+)` \(.*?,?$/u.exec(line);
    if (m) keys.push({ name: m[1]!.replace(/``/g, '`'), definition: line.trim().replace(/,$/, '') });
  }
  return keys;
}

async function showCreate(db: Pick<Connection, 'query'>, ref: TableRef): Promise<string> {
  const [r] = await db.query<RowDataPacket[]>(`SHOW CREATE TABLE ${quoteTable(ref.schema, ref.name)}`);
  return String(r[0]!['Create Table']);
}

/** Whether the key's columns begin with `columns` (`KEY \`k\` (\`a\`,\`b\`)`). */
export function keyLeadsWith(definition: string, columns: string[]): boolean {
  const list = definition.slice(definition.indexOf(' (') + 2);
  const lead = columns.map((c) => `\`${c.replace(/`/g, '``')}\``).join(',');
  return list.toLowerCase().startsWith(lead.toLowerCase()) && /^[,)(]/.test(list.slice(lead.length));
}

/**
 * Drops the plain keys of the new, empty shadow after recording them in `changelog`,
 * except those leading with one of `keep` (the replayed cascades find their rows by
 * them, mysql-cascades.ts). Returns why nothing was deferred, or null.
 */
export async function deferIndexes(conn: PoolConnection, shadow: TableRef, changelog: string, keep: string[][] = []): Promise<string | null> {
  const create = await showCreate(conn, shadow);
  if (!/\) ENGINE=InnoDB\b/u.test(create)) return 'the new table is not InnoDB';
  const keys = plainKeys(create).filter((k) => !keep.some((columns) => keyLeadsWith(k.definition, columns)));
  if (keys.length === 0) return null;
  if (keys.some((k) => Buffer.byteLength(k.definition) > MAX_DEFINITION)) return `a key's definition is longer than ${MAX_DEFINITION} bytes`;
  const log = quoteTable(shadow.schema, changelog);
  for (const k of keys) await conn.query(`INSERT INTO ${log} (kind, value) VALUES (?, ?)`, [KIND, k.definition]);
  try {
    await conn.query(`ALTER TABLE ${quoteTable(shadow.schema, shadow.name)} ${keys.map((k) => `DROP KEY \`${k.name.replace(/`/g, '``')}\``).join(', ')}`);
  } catch (err) {
    // The server's reason is the answer (a key an AUTO_INCREMENT column or a foreign key needs).
    await conn.query(`DELETE FROM ${log} WHERE kind = ?`, [KIND]);
    return (err as Error).message;
  }
  return null;
}

/** The keys recorded for `shadow` that it does not have (yet). */
async function missingKeys(db: Pick<Connection, 'query'>, shadow: TableRef): Promise<PlainKey[]> {
  const changelog = changelogBeside(shadow.name);
  if (!changelog) return [];
  let recorded: RowDataPacket[];
  try {
    [recorded] = await db.query<RowDataPacket[]>(`SELECT value FROM ${quoteTable(shadow.schema, changelog)} WHERE kind = ? ORDER BY id`, [KIND]);
  } catch (err) {
    if ((err as { errno?: number }).errno === 1146) return []; // no changelog: nothing was deferred
    throw err;
  }
  if (recorded.length === 0) return [];
  const present = new Set(plainKeys(await showCreate(db, shadow)).map((k) => k.name));
  return recorded.flatMap((r) => plainKeys(String(r.value))).filter((k) => !present.has(k.name));
}

/** Builds the keys createShadow deferred that the shadow lacks; a no-op when it has them all. */
export async function finishShadow(ctx: MyContext, shadow: TableRef, signal?: AbortSignal): Promise<void> {
  const cancelled = () => new ShadowshiftError("the build of the new table's indexes was cancelled: the job is stopping");
  let conn: Connection | null = null;
  const onAbort = () => {
    if (conn?.threadId) void ctx.pool.query(`KILL QUERY ${conn.threadId}`).catch(() => undefined);
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const missing = await missingKeys(ctx.pool, shadow);
    if (missing.length === 0) return;
    if (signal?.aborted) throw cancelled();
    conn = await dedicatedConnection(ctx);
    if (signal?.aborted) throw cancelled();
    // One statement: InnoDB reads the table once for all of them.
    await conn.query(`ALTER TABLE ${quoteTable(shadow.schema, shadow.name)} ${missing.map((k) => `ADD ${k.definition}`).join(', ')}, ALGORITHM=INPLACE, LOCK=NONE`);
  } catch (err) {
    if (signal?.aborted) throw cancelled();
    if ((err as { errno?: number }).errno === ER_INNODB_ONLINE_LOG_TOO_BIG) {
      throw new ShadowshiftError(
        `building the new table's indexes failed: the writes applied to it meanwhile outgrew innodb_online_alter_log_max_size (${(err as Error).message}). ` +
          'The original table is untouched. Raise it (SET GLOBAL innodb_online_alter_log_max_size = ...), or run with --no-defer-indexes; a job started with --resumable continues with --resume.',
        { cause: err },
      );
    }
    throw wrapError(err, "building the new table's indexes");
  } finally {
    signal?.removeEventListener('abort', onAbort);
    await conn?.end().catch(() => conn?.destroy());
  }
}

/**
 * Why building the indexes after the copy would stall replication, or null when the job
 * can see that no replica reads the binlog: with PROCESS, no `Binlog Dump` thread of
 * another user. The job's own user's are shadowshift's streams (other jobs' too); a
 * replica connects as its replication user.
 */
export async function deferralConcern(ctx: MyContext): Promise<string | null> {
  const [grants] = await ctx.pool.query<RowDataPacket[]>('SHOW GRANTS FOR CURRENT_USER()');
  const parsed = grants.map((r) => parseGrant(String(Object.values(r)[0]))).filter((g): g is Grant => g !== null);
  if (!hasGlobal(parsed, 'PROCESS')) return 'without the PROCESS privilege the job cannot see whether a replica reads the binlog';
  const [dumps] = await ctx.pool.query<RowDataPacket[]>(
    "SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE COMMAND IN ('Binlog Dump', 'Binlog Dump GTID') AND USER <> SUBSTRING_INDEX(CURRENT_USER(), '@', 1)",
  );
  const n = Number(dumps[0]!.n);
  return n > 0 ? `${n} session${n === 1 ? '' : 's'} of another user read${n === 1 ? 's' : ''} the binlog (a replica)` : null;
}
