// The shadow table (original's definition with the ALTER applied) and the changelog
// table (markers, heartbeats). previewShadow() does the same on a TEMPORARY table of
// one connection: invisible to every other session, gone with the connection, and
// not written to a ROW-format binlog.

import type { RowDataPacket } from 'mysql2/promise';
import type { ArtefactNames, TableInfo } from '../dialect.js';
import { PreflightError, ShadowshiftError } from '../../util/errors.js';
import { privilegesCheck } from './checks/privileges.js';

const ACCESS_DENIED = new Set([1044, 1142, 1227]);
import { type MyContext, withConnection } from './mysql-context.js';
import { inspectTable, inspectTemporary } from './mysql-inspector.js';
import { previewName } from './mysql-names.js';
import { quoteIdent, quoteTable } from './mysql-quote.js';

function refused(original: TableInfo, alter: string, err: unknown): ShadowshiftError {
  const e = err as { message?: string; errno?: number };
  return new ShadowshiftError(
    `the server refused the ALTER on ${original.ref.name} ("${alter.trim()}") for its syntax or definition: ${e.message ?? String(err)}. ` +
      'Nothing was changed; correct the --alter clauses and run again.',
    { cause: err },
  );
}

export async function previewShadow(ctx: MyContext, original: TableInfo, alter: string): Promise<TableInfo> {
  return withConnection(ctx, async (conn) => {
    const temp = { schema: original.ref.schema, name: previewName(original.ref.name) };
    const q = quoteTable(temp.schema, temp.name);
    try {
      try {
        await conn.query(`DROP TEMPORARY TABLE IF EXISTS ${q}`);
        await conn.query(`CREATE TEMPORARY TABLE ${q} LIKE ${quoteTable(original.ref.schema, original.ref.name)}`);
      } catch (err) {
        if (!ACCESS_DENIED.has((err as { errno?: number }).errno ?? 0)) throw err;
        // The preview runs even when a connect-phase check failed: name the real cause.
        const check = await privilegesCheck(ctx, ctx.flavor ?? 'mariadb').run({ table: original.ref, info: original, alter: null, plan: null }).catch(() => null);
        throw new PreflightError([
          { check: 'privileges', message: `cannot preview the ALTER on a temporary table (${(err as Error).message}). ${check && !check.ok ? check.message : 'Grant CREATE TEMPORARY TABLES on the database.'}` },
        ]);
      }
      try {
        await conn.query(`ALTER TABLE ${q} ${alter}`);
      } catch (err) {
        throw refused(original, alter, err);
      }
      return await inspectTemporary(conn, temp, original);
    } finally {
      await conn.query(`DROP TEMPORARY TABLE IF EXISTS ${q}`).catch(() => conn.destroy());
    }
  });
}

export async function createShadow(ctx: MyContext, original: TableInfo, alter: string, names: ArtefactNames): Promise<TableInfo> {
  const schema = original.ref.schema;
  const shadow = quoteTable(schema, names.shadow);
  const changelog = quoteTable(schema, names.changelog);
  return withConnection(ctx, async (conn) => {
    try {
      await conn.query(`CREATE TABLE ${shadow} LIKE ${quoteTable(schema, original.ref.name)}`);
    } catch (err) {
      if ((err as { errno?: number }).errno === 1050) {
        throw new ShadowshiftError(
          `the shadow table ${schema}.${names.shadow} already exists (left by an earlier job that did not finish?). ` +
            'Run `shadowshift cleanup` to see and remove it, then run again.',
          { cause: err },
        );
      }
      throw err;
    }
    try {
      try {
        await conn.query(`ALTER TABLE ${shadow} ${alter}`);
      } catch (err) {
        throw refused(original, alter, err);
      }
      // LIKE resets AUTO_INCREMENT: keep the original's, so ids freed at the top are not handed out again.
      const [ai] = await conn.query<RowDataPacket[]>(
        'SELECT AUTO_INCREMENT AS ai FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?',
        [schema, original.ref.name],
      );
      const next = ai[0]?.ai as string | number | null | undefined;
      if (next !== null && next !== undefined && /^\d+$/.test(String(next))) {
        await conn.query(`ALTER TABLE ${shadow} AUTO_INCREMENT = ${String(next)}`);
      }
      await conn.query(
        `CREATE TABLE IF NOT EXISTS ${changelog} (
           id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
           kind VARCHAR(32) NOT NULL,
           value VARCHAR(255) NOT NULL,
           written_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
         ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='shadowshift changelog (markers, heartbeats)'`,
      );
      const info = await inspectTable(conn, { schema, name: names.shadow });
      if (!info) throw new ShadowshiftError(`the shadow table ${names.shadow} vanished right after it was created`);
      return info;
    } catch (err) {
      await conn.query(`DROP TABLE IF EXISTS ${shadow}, ${changelog}`).catch(() => undefined);
      throw err;
    }
  });
}

export async function dropArtefacts(ctx: MyContext, names: ArtefactNames, schema: string, opts: { keepBackup: boolean }): Promise<void> {
  const tables = [names.shadow, names.changelog];
  if (!opts.keepBackup) tables.push(names.backup);
  await ctx.pool.query(`DROP TABLE IF EXISTS ${tables.map((t) => quoteTable(schema, t)).join(', ')}`);
  // A sentry left by a cut-over attempt whose connection died (same name as the backup):
  // only ever dropped when it is really the sentry.
  if (opts.keepBackup && names.extra.sentry) {
    const [r] = await ctx.pool.query<RowDataPacket[]>(
      'SELECT TABLE_COMMENT AS c FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?',
      [schema, names.extra.sentry],
    );
    if (r[0] && String(r[0].c) === SENTRY_COMMENT) await ctx.pool.query(`DROP TABLE IF EXISTS ${quoteTable(schema, names.extra.sentry)}`);
  }
}

export const SENTRY_COMMENT = 'shadowshift cut-over sentry';

export { quoteIdent };
