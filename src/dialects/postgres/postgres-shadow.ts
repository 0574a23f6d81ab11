// The shadow table: same definition as the original (LIKE ... INCLUDING ALL, plus the
// table comment and storage options), then the user's ALTER.

import type pg from 'pg';
import type { ArtefactLeft, ArtefactNames, TableInfo } from '../dialect.js';
import type { PgContext } from './postgres-context.js';
import { inspectTable, tableOid } from './postgres-inspector.js';
import { quoteIdent, quoteLiteral, quoteQualified } from './postgres-quote.js';
import { alterClauses, alterStatements, unsupportedUsing } from './postgres-alter-analysis.js';
import { ShadowshiftError } from '../../util/errors.js';
import { pgCode, type PgError } from './postgres-errors.js';
import { dropSlotAndPublication } from './postgres-slot.js';
import { deferIndexes } from './postgres-deferred-indexes.js';
import { withJobIndexNames } from './postgres-index-names.js';
import { readDefinitions } from './postgres-definitions.js';

function alterError(err: unknown, alter: string): ShadowshiftError {
  const e = err as PgError;
  return new ShadowshiftError(
    `the ALTER was refused by PostgreSQL: ${e.message}${e.hint ? ` (hint: ${e.hint})` : ''}. ALTER clauses: ${alter}. Nothing was changed.`,
    { cause: err },
  );
}

/** Copies the table comment and storage options (LIKE copies columns, defaults, constraints, indexes, column comments). */
async function carryTableProperties(c: pg.ClientBase, original: TableInfo, target: string): Promise<void> {
  const oid = await tableOid(c, original.ref);
  const r = await c.query<{ descr: string | null; reloptions: string | null }>(
    `SELECT obj_description($1::oid, 'pg_class') AS descr, array_to_string(reloptions, ',') AS reloptions FROM pg_class WHERE oid = $1`,
    [oid],
  );
  const row = r.rows[0];
  if (row?.reloptions) await c.query(`ALTER TABLE ${target} SET (${row.reloptions})`);
  if (row?.descr !== null && row?.descr !== undefined) await c.query(`COMMENT ON TABLE ${target} IS ${quoteLiteral(row.descr)}`);
}

/** Refuses USING expressions that are more than a cast (the copy could not reproduce them). */
function checkUsing(alter: string): void {
  const bad = unsupportedUsing(alter);
  if (bad.length) {
    throw new ShadowshiftError(
      `ALTER COLUMN ${bad[0]!.column} TYPE ... USING ${bad[0]!.using}: shadowshift converts existing and changed rows with casts, so a USING expression other than a cast of the column itself would not be applied to them. ` +
        `Add a new column instead, backfill it with the expression, and switch over (the migrate command's expand/contract phases), or run this ALTER directly. Nothing was changed.`,
    );
  }
}

export async function previewShadow(ctx: PgContext, original: TableInfo, alter: string): Promise<TableInfo> {
  checkUsing(alter);
  const clauses = alterClauses(alter);
  const source = quoteQualified(original.ref.schema, original.ref.name);
  const c = await ctx.pool.connect();
  try {
    await c.query('BEGIN');
    await c.query(`SET LOCAL lock_timeout = '5s'`);
    const tmpName = `_ss_preview_${process.pid}_${Date.now().toString(36)}`;
    let ref: { schema: string; name: string };
    await c.query('SAVEPOINT preview');
    try {
      await c.query(`CREATE TEMP TABLE ${quoteIdent(tmpName)} (LIKE ${source} INCLUDING ALL) ON COMMIT DROP`);
      for (const stmt of alterStatements(`pg_temp.${quoteIdent(tmpName)}`, clauses)) await c.query(stmt);
      const s = await c.query<{ nsp: string }>(`SELECT nspname AS nsp FROM pg_namespace WHERE oid = pg_my_temp_schema()`);
      ref = { schema: s.rows[0]!.nsp, name: tmpName };
    } catch (err) {
      // A temporary table cannot reference a permanent one (ADD FOREIGN KEY): use a
      // regular table inside this transaction, which is rolled back and never visible.
      if (pgCode(err) !== '42P16') throw err;
      await c.query('ROLLBACK TO SAVEPOINT preview');
      const target = quoteQualified(original.ref.schema, tmpName);
      await c.query(`CREATE TABLE ${target} (LIKE ${source} INCLUDING ALL)`);
      for (const stmt of alterStatements(target, clauses)) await c.query(stmt);
      ref = { schema: original.ref.schema, name: tmpName };
    }
    const info = await inspectTable(c, ref);
    if (!info) throw new ShadowshiftError('the preview table vanished');
    return { ...info, definitions: await readDefinitions(c, ref) };
  } catch (err) {
    if (err instanceof ShadowshiftError) throw err;
    throw alterError(err, clauses);
  } finally {
    await c.query('ROLLBACK').catch(() => undefined);
    c.release();
  }
}

export async function createShadow(
  ctx: PgContext,
  original: TableInfo,
  alter: string,
  names: ArtefactNames,
  options: { deferIndexes?: boolean } = {},
): Promise<TableInfo> {
  checkUsing(alter);
  // The shadow's new indexes get the job's own names; the cut-over gives them the asked ones.
  const clauses = withJobIndexNames(alterClauses(alter), names.extra);
  const source = quoteQualified(original.ref.schema, original.ref.name);
  const target = quoteQualified(original.ref.schema, names.shadow);
  const c = await ctx.pool.connect();
  try {
    await c.query('BEGIN');
    await c.query(`SET LOCAL lock_timeout = '5s'`);
    await c.query(`CREATE TABLE ${target} (LIKE ${source} INCLUDING ALL)`);
    await carryTableProperties(c, original, target);
    try {
      for (const stmt of alterStatements(target, clauses)) await c.query(stmt);
    } catch (err) {
      throw alterError(err, clauses);
    }
    if (options.deferIndexes) await deferIndexes(c, { schema: original.ref.schema, name: names.shadow });
    await c.query('COMMIT');
  } catch (err) {
    await c.query('ROLLBACK').catch(() => undefined);
    if (err instanceof ShadowshiftError) throw err;
    throw new ShadowshiftError(`cannot create the shadow table ${names.shadow}: ${(err as Error).message}`, { cause: err });
  } finally {
    c.release();
  }
  const info = await inspectTable(ctx.pool, { schema: original.ref.schema, name: names.shadow });
  if (!info) throw new ShadowshiftError(`the shadow table ${names.shadow} vanished after it was created`);
  return info;
}

/**
 * Each artefact on its own, so one that another session holds does not keep the rest:
 * the slot first (it holds WAL on the server), then the publication and the tables, each
 * waiting at most `lockTimeoutMs` for its lock.
 */
export async function dropArtefacts(ctx: PgContext, names: ArtefactNames, opts: { keepBackup: boolean; keepShadow?: boolean; keepStream?: boolean; lockTimeoutMs?: number }): Promise<ArtefactLeft[]> {
  const schema = names.extra.schema ?? 'public';
  const lockTimeoutMs = Math.max(1, Math.floor(opts.lockTimeoutMs ?? 5000));
  const left: ArtefactLeft[] = [];
  const attempt = async (kind: ArtefactLeft['kind'], name: string, drop: () => Promise<unknown>) => {
    try {
      await drop();
    } catch (err) {
      left.push({ kind, name, reason: (err as Error).message });
    }
  };
  const underTimeout = (sql: string) => async () => {
    const c = await ctx.pool.connect();
    try {
      await c.query(`BEGIN; SET LOCAL lock_timeout = ${lockTimeoutMs}; ${sql}; COMMIT`);
    } catch (err) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      c.release();
    }
  };
  if (!opts.keepStream) {
    if (names.extra.slot) await attempt('slot', names.extra.slot, () => dropSlotAndPublication(ctx.pool, names.extra.slot!, ''));
    await attempt('publication', names.changelog, underTimeout(`DROP PUBLICATION IF EXISTS ${quoteIdent(names.changelog)}`));
  }
  if (!opts.keepShadow) await attempt('shadow', `${schema}.${names.shadow}`, underTimeout(`DROP TABLE IF EXISTS ${quoteQualified(schema, names.shadow)}`));
  if (!opts.keepBackup) await attempt('backup', `${schema}.${names.backup}`, underTimeout(`DROP TABLE IF EXISTS ${quoteQualified(schema, names.backup)}`));
  return left;
}
