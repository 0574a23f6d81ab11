// The shadow table (original's definition with the ALTER applied) and the changelog
// table (markers, heartbeats). previewShadow() does the same on a TEMPORARY table of
// one connection: invisible to every other session, gone with the connection, and
// not written to a ROW-format binlog; for partitions, on a real table (previewOnTable).

import { checkTriggersFit } from './mysql-triggers.js';
import { checkKeysFit } from './mysql-shadow-keys.js';
import { checkChildrenFit, repointChildrenBack } from './mysql-child-repoint.js';
import type { PoolConnection, RowDataPacket } from 'mysql2/promise';
import type { ArtefactLeft, ArtefactNames, TableInfo, TableRef } from '../dialect.js';
import { PreflightError, ShadowshiftError } from '../../util/errors.js';
import { privilegesCheck } from './checks/privileges.js';
import { deferIndexes } from './mysql-deferred-indexes.js';

const ACCESS_DENIED = new Set([1044, 1142, 1227]);
import { type MyContext, SESSION_SQL_MODE, withConnection } from './mysql-context.js';
import { inspectTable, inspectTemporary } from './mysql-inspector.js';
import { previewLockName, previewName, previewTableName } from './mysql-names.js';
import { quoteIdent, quoteTable } from './mysql-quote.js';
import { analyzeAlter, partitionsTable, setsAutoIncrement } from './mysql-alter-analysis.js';

function refused(original: TableInfo, alter: string, err: unknown): ShadowshiftError {
  const e = err as { message?: string; errno?: number };
  return new ShadowshiftError(
    `the server refused the ALTER on ${original.ref.name} ("${alter.trim()}") for its syntax or definition: ${e.message ?? String(err)}. ` +
      'Nothing was changed; correct the --alter clauses and run again.',
    { cause: err },
  );
}

/**
 * Runs the shadow's DDL under the server's sql_mode (@@GLOBAL, what the user's own ALTER
 * would run under), not the session's pinned one: that one allows zero dates because the
 * copy must take every row the original holds, but it would also accept a definition the
 * server refuses (`DEFAULT '1970-00-00'` under NO_ZERO_IN_DATE). The shadow is empty
 * while its DDL runs, so no row needs the relaxation there. Restored afterwards: the
 * connection goes back to the pool.
 */
async function underServerSqlMode<T>(conn: Pick<PoolConnection, 'query' | 'destroy'>, fn: () => Promise<T>): Promise<T> {
  await conn.query('SET SESSION sql_mode = @@GLOBAL.sql_mode');
  try {
    return await fn();
  } finally {
    await conn.query(`SET SESSION sql_mode = '${SESSION_SQL_MODE}'`).catch(() => conn.destroy());
  }
}

/** The table's own definition is refused under the server's sql_mode (a zero-date default under NO_ZERO_DATE). */
function refusedAsIs(original: TableInfo, err: unknown): ShadowshiftError {
  return new ShadowshiftError(
    `the server refuses ${original.ref.name}'s current definition under its sql_mode (${(err as Error).message}), so any ALTER of it would fail ` +
      'the same way natively. Nothing was changed; fix the definition (or the sql_mode) first.',
    { cause: err },
  );
}

export async function previewShadow(ctx: MyContext, original: TableInfo, alter: string): Promise<TableInfo> {
  return withConnection(ctx, async (conn) => {
    if (partitionsTable(alter) || (await isPartitioned(conn, original.ref))) return previewOnTable(ctx, conn, original, alter);
    const temp = { schema: original.ref.schema, name: previewName(original.ref.name) };
    const q = quoteTable(temp.schema, temp.name);
    try {
      try {
        await conn.query(`DROP TEMPORARY TABLE IF EXISTS ${q}`);
        await underServerSqlMode(conn, () => conn.query(`CREATE TEMPORARY TABLE ${q} LIKE ${quoteTable(original.ref.schema, original.ref.name)}`));
      } catch (err) {
        throw await refusedCopy(ctx, original, err, 'a temporary table', 'Grant CREATE TEMPORARY TABLES on the database.');
      }
      try {
        await underServerSqlMode(conn, () => conn.query(`ALTER TABLE ${q} ${alter}`));
      } catch (err) {
        throw refused(original, alter, err);
      }
      return await inspectTemporary(conn, temp, original);
    } finally {
      await conn.query(`DROP TEMPORARY TABLE IF EXISTS ${q}`).catch(() => conn.destroy());
    }
  });
}

/** Why the preview's copy of the definition could not be created: the definition itself, or a missing privilege. */
async function refusedCopy(ctx: MyContext, original: TableInfo, err: unknown, where: string, grant: string): Promise<Error> {
  if (!ACCESS_DENIED.has((err as { errno?: number }).errno ?? 0)) return refusedAsIs(original, err);
  // The preview runs even when a connect-phase check failed: name the real cause.
  const check = await privilegesCheck(ctx, ctx.flavor ?? 'mariadb').run({ table: original.ref, info: original, alter: null, plan: null }).catch(() => null);
  return new PreflightError([
    { check: 'privileges', message: `cannot preview the ALTER on ${where} (${(err as Error).message}). ${check && !check.ok ? check.message : grant}` },
  ]);
}

async function isPartitioned(conn: PoolConnection, ref: TableRef): Promise<boolean> {
  const [r] = await conn.query<RowDataPacket[]>(
    'SELECT 1 FROM information_schema.PARTITIONS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND PARTITION_NAME IS NOT NULL LIMIT 1',
    [ref.schema, ref.name],
  );
  return r.length > 0;
}

/**
 * The preview of a table that has, or gets, partitions: a temporary table cannot have
 * them ("storage engine 'partition' does not support the create option 'TEMPORARY'"),
 * and a copy without them would not show what the ALTER does to them (a key that leaves
 * out a column of the partitioning function is refused only on a partitioned table). So a
 * real table, named like the job's artefacts so that `cleanup` finds one a crash left,
 * dropped on every way out. Unlike the temporary one its DDL reaches the binlog; the
 * change stream ignores it (another table, a CREATE ... LIKE without OR REPLACE).
 */
async function previewOnTable(ctx: MyContext, conn: PoolConnection, original: TableInfo, alter: string): Promise<TableInfo> {
  const [id] = await conn.query<RowDataPacket[]>('SELECT CONNECTION_ID() AS id');
  const ref = { schema: original.ref.schema, name: previewTableName(original.ref.name, Number(id[0]!.id)) };
  const q = quoteTable(ref.schema, ref.name);
  const lock = previewLockName(ref.name)!;
  await conn.query('DO GET_LOCK(?, 0)', [lock]);
  let outcome: { info: TableInfo } | { err: unknown };
  try {
    // Only a dead connection with this id can have left it: the server restarted since.
    await conn.query(`DROP TABLE IF EXISTS ${q}`);
    try {
      await underServerSqlMode(conn, () => conn.query(`CREATE TABLE ${q} LIKE ${quoteTable(original.ref.schema, original.ref.name)}`));
    } catch (err) {
      throw await refusedCopy(ctx, original, err, `a copy of the table (${ref.name})`, 'Grant CREATE, ALTER and DROP on the database.');
    }
    try {
      await underServerSqlMode(conn, () => conn.query(`ALTER TABLE ${q} ${alter}`));
    } catch (err) {
      throw refused(original, alter, err);
    }
    outcome = { info: await inspectTemporary(conn, ref, original) };
  } catch (err) {
    outcome = { err };
  }
  const dropped = await conn.query(`DROP TABLE IF EXISTS ${q}`).then(
    () => null,
    (err: Error) => err,
  );
  if (dropped) {
    conn.destroy();
    ctx.log.warn({ table: ref.name, err: dropped.message }, 'could not drop the preview table; `shadowshift cleanup --execute` removes it');
  } else {
    await conn.query('DO RELEASE_LOCK(?)', [lock]).catch(() => conn.destroy());
  }
  if ('err' in outcome) throw outcome.err;
  if (dropped) {
    throw new ShadowshiftError(
      `could not drop the preview table ${ref.schema}.${ref.name} (${dropped.message}). Nothing else was changed; run \`shadowshift cleanup --execute\` to remove it, then run again.`,
      { cause: dropped },
    );
  }
  return outcome.info;
}

/** With `deferIndexes`, the shadow's plain keys wait for finishShadow() (mysql-deferred-indexes.ts). */
/** The job's marker and heartbeat table (the change stream reads its rows). */
export async function createChangelog(conn: PoolConnection, schema: string, name: string): Promise<void> {
  await conn.query(
    `CREATE TABLE IF NOT EXISTS ${quoteTable(schema, name)} (
       id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
       kind VARCHAR(32) NOT NULL,
       value VARCHAR(255) NOT NULL,
       written_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
     ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='shadowshift changelog (markers, heartbeats)'`,
  );
}

export async function createShadow(ctx: MyContext, original: TableInfo, alter: string, names: ArtefactNames, options: { deferIndexes?: boolean } = {}): Promise<TableInfo> {
  const schema = original.ref.schema;
  const shadow = quoteTable(schema, names.shadow);
  const changelog = quoteTable(schema, names.changelog);
  return withConnection(ctx, async (conn) => {
    try {
      await underServerSqlMode(conn, () => conn.query(`CREATE TABLE ${shadow} LIKE ${quoteTable(schema, original.ref.name)}`));
    } catch (err) {
      if ((err as { errno?: number }).errno === 1050) {
        throw new ShadowshiftError(
          `the shadow table ${schema}.${names.shadow} already exists (left by an earlier job that did not finish?). ` +
            '`shadowshift cleanup` lists it and `shadowshift cleanup --execute` removes it; then run again.',
          { cause: err },
        );
      }
      throw err;
    }
    try {
      try {
        await underServerSqlMode(conn, () => conn.query(`ALTER TABLE ${shadow} ${alter}`));
      } catch (err) {
        throw refused(original, alter, err);
      }
      await checkTriggersFit(conn, schema, original.ref.name, names.shadow);
      await checkChildrenFit(conn, schema, original.ref.name, names.shadow);
      const analysis = analyzeAlter(alter);
      const replayedColumns = await checkKeysFit(conn, schema, original.ref.name, names.shadow, analysis.renamedColumns, analysis.droppedColumns);
      // LIKE resets AUTO_INCREMENT: keep the original's, so ids freed at the top are not handed out
      // again, unless the ALTER sets its own (the server raises that to the largest id + 1, as a
      // native ALTER does). Later inserts reach the shadow through the stream and raise it further.
      const [ai] = await conn.query<RowDataPacket[]>(
        'SELECT AUTO_INCREMENT AS ai FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?',
        [schema, original.ref.name],
      );
      const next = setsAutoIncrement(alter) ? null : (ai[0]?.ai as string | number | null | undefined);
      if (next !== null && next !== undefined && /^\d+$/.test(String(next))) {
        await conn.query(`ALTER TABLE ${shadow} AUTO_INCREMENT = ${String(next)}`);
      }
      await createChangelog(conn, schema, names.changelog);
      if (options.deferIndexes) {
        const kept = await deferIndexes(conn, { schema, name: names.shadow }, names.changelog, replayedColumns);
        if (kept) ctx.log.info({ why: kept }, "the new table's indexes are built before the copy");
      }
      const info = await inspectTable(conn, { schema, name: names.shadow });
      if (!info) throw new ShadowshiftError(`the shadow table ${names.shadow} vanished right after it was created`);
      return info;
    } catch (err) {
      await conn.query(`DROP TABLE IF EXISTS ${shadow}, ${changelog}`).catch(() => undefined);
      throw err;
    }
  });
}

/**
 * Each table on its own, so one that another session holds (a reader's open transaction
 * keeps its metadata lock) does not keep the rest; each DROP waits at most
 * `lockTimeoutMs` (lock_wait_timeout, whole seconds) instead of the server's default year.
 */
export async function dropArtefacts(
  ctx: MyContext,
  names: ArtefactNames,
  schema: string,
  opts: { keepBackup: boolean; keepShadow?: boolean; keepStream?: boolean; lockTimeoutMs?: number },
): Promise<ArtefactLeft[]> {
  const tables: Array<[ArtefactLeft['kind'], string]> = [...(opts.keepShadow ? [] : [['shadow', names.shadow] as [ArtefactLeft['kind'], string]]), ['changelog', names.changelog]];
  if (!opts.keepBackup) tables.push(['backup', names.backup]);
  const left: ArtefactLeft[] = [];
  await withConnection(ctx, async (conn) => {
    await conn.query(`SET SESSION lock_wait_timeout = ${Math.max(1, Math.ceil((opts.lockTimeoutMs ?? 5000) / 1000))}`);
    try {
      const drop = async (kind: ArtefactLeft['kind'], name: string) => {
        try {
          await conn.query(`DROP TABLE IF EXISTS ${quoteTable(schema, name)}`);
        } catch (err) {
          left.push({ kind, name, reason: (err as Error).message });
        }
      };
      // Children a stopped cut-over left pointing at the shadow go back on the table first: the drop would fail, or leave their keys dangling.
      const children = opts.keepShadow || !names.extra.table ? null : await repointChildrenBack(ctx, schema, names.extra.table, names.shadow, { lockSeconds: Math.max(1, Math.ceil((opts.lockTimeoutMs ?? 5000) / 1000)), log: ctx.log }).catch((err: Error) => err);
      if (children instanceof Error) left.push({ kind: 'shadow', name: names.shadow, reason: children.message });
      for (const [kind, name] of tables) if (!(children instanceof Error && kind === 'shadow')) await drop(kind, name);
      // A sentry left by a cut-over attempt whose connection died (same name as the backup):
      // only ever dropped when it is really the sentry.
      if (opts.keepBackup && names.extra.sentry) {
        const [r] = await conn.query<RowDataPacket[]>(
          'SELECT TABLE_COMMENT AS c FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?',
          [schema, names.extra.sentry],
        );
        if (r[0] && String(r[0].c) === SENTRY_COMMENT) await drop('sentry', names.extra.sentry);
      }
    } finally {
      await conn.query('SET SESSION lock_wait_timeout = DEFAULT').catch(() => conn.destroy());
    }
  });
  return left;
}

export const SENTRY_COMMENT = 'shadowshift cut-over sentry';

export { quoteIdent };
