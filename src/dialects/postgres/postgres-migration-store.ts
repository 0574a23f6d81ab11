// PostgreSQL SQL for the migration runner: the history table, the runner lock
// (session-level pg_advisory_lock), table statistics, DDL under a short
// lock_timeout with retries, clean-up of an INVALID index left by a failed
// CREATE INDEX CONCURRENTLY, statements made atomic as one implicit transaction,
// and the triggers that keep two columns in sync during an expand/contract operation.

import { createHash } from 'node:crypto';
import { userInfo } from 'node:os';
import pg from 'pg';
import type { ConnectionConfig } from '../../util/connection-url.js';
import type {
  ColumnDetail,
  DdlOptions,
  HistoryRecord,
  MigrationStore,
  SyncTriggerSpec,
  TableStats,
} from '../../migrations/migration-store.js';
import { clientConfigFor } from './postgres-context.js';
import { quoteIdent, quoteQualified } from './postgres-quote.js';
import { historyRecordFromRow, lockRetries, type LockTimeoutSession } from '../../migrations/migration-store.js';

export const HISTORY_TABLE = 'shadowshift_migrations';
const LOCK_NOT_AVAILABLE = '55P03';

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A signed 64-bit advisory-lock key for this database and schema, as text (bound as ::bigint). */
export function runnerLockKey(database: string, schema: string): string {
  const digest = createHash('sha256').update(`shadowshift:migrate:${database}:${schema}`).digest();
  return digest.readBigInt64BE(0).toString();
}

class PostgresMigrationStore implements MigrationStore {
  readonly dialect = 'postgres' as const;
  readonly historyTable = HISTORY_TABLE;
  private readonly lockKey: string;

  constructor(
    private readonly client: pg.Client,
    readonly schema: string,
    database: string,
    readonly appliedBy: string,
  ) {
    this.lockKey = runnerLockKey(database, schema);
  }

  quoteIdent(name: string): string {
    return quoteIdent(name);
  }

  placeholder(i: number): string {
    return `$${i}`;
  }

  async query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]> {
    const r = await this.client.query(sql, params as unknown[] | undefined);
    // A multi-statement text returns an array of results; the last one's rows count.
    const last = Array.isArray(r) ? (r as pg.QueryResult[])[(r as pg.QueryResult[]).length - 1] : r;
    return (last?.rows ?? []) as T[];
  }

  async exec(sql: string, params?: unknown[]): Promise<{ rowCount: number }> {
    const r = await this.client.query(sql, params as unknown[] | undefined);
    const last = Array.isArray(r) ? (r as pg.QueryResult[])[(r as pg.QueryResult[]).length - 1] : r;
    return { rowCount: last?.rowCount ?? 0 };
  }

  async acquireLock(waitMs: number): Promise<boolean> {
    const deadline = Date.now() + Math.max(0, waitMs);
    for (;;) {
      const rows = await this.query<{ got: string }>('SELECT pg_try_advisory_lock($1::bigint)::text AS got', [this.lockKey]);
      if (rows[0]?.got === 'true') return true;
      if (Date.now() >= deadline) return false;
      await sleep(Math.min(100, Math.max(1, deadline - Date.now())));
    }
  }

  async releaseLock(): Promise<void> {
    await this.query('SELECT pg_advisory_unlock($1::bigint)', [this.lockKey]);
  }

  private qualifiedHistory(): string {
    return quoteQualified(this.schema, HISTORY_TABLE);
  }

  async ensureHistoryTable(): Promise<void> {
    await this.exec(`CREATE TABLE IF NOT EXISTS ${this.qualifiedHistory()} (
  version varchar(40) PRIMARY KEY,
  name varchar(255) NOT NULL,
  checksum char(64) NOT NULL,
  kind varchar(16) NOT NULL,
  reached varchar(16),
  status varchar(16) NOT NULL,
  current_phase varchar(16),
  statements_done integer NOT NULL DEFAULT 0,
  done_checksum char(64),
  phase_checksums text,
  backfill_cursor text,
  applied_by varchar(255) NOT NULL,
  host varchar(255) NOT NULL,
  started_at timestamptz,
  finished_at timestamptz,
  duration_ms bigint,
  error text,
  failed_statement text
)`);
  }

  async readHistory(): Promise<HistoryRecord[]> {
    const exists = await this.query<{ t: string | null }>('SELECT to_regclass($1)::text AS t', [this.qualifiedHistory()]);
    if (!exists[0]?.t) return [];
    const ts = (c: string) => `to_char(${c} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS ${c}`;
    const rows = await this.query<Record<string, string | null>>(
      `SELECT version, name, checksum, kind, reached, status, current_phase, statements_done::text AS statements_done,
              done_checksum, phase_checksums, backfill_cursor, applied_by, host, ${ts('started_at')}, ${ts('finished_at')},
              duration_ms::text AS duration_ms, error, failed_statement
         FROM ${this.qualifiedHistory()}`,
    );
    return rows.map((r) => historyRecordFromRow(r));
  }

  async saveHistory(r: HistoryRecord): Promise<void> {
    const cols = ['version', 'name', 'checksum', 'kind', 'reached', 'status', 'current_phase', 'statements_done', 'done_checksum', 'phase_checksums', 'backfill_cursor', 'applied_by', 'host', 'started_at', 'finished_at', 'duration_ms', 'error', 'failed_statement'];
    const values = [r.version, r.name, r.checksum, r.kind, r.reached, r.status, r.currentPhase, r.statementsDone, r.doneChecksum, r.phaseChecksums, r.backfillCursor, r.appliedBy, r.host, r.startedAt, r.finishedAt, r.durationMs, r.error, r.failedStatement];
    await this.exec(
      `INSERT INTO ${this.qualifiedHistory()} (${cols.map(quoteIdent).join(', ')}) VALUES (${cols.map((_, i) => `$${i + 1}`).join(', ')})
       ON CONFLICT (version) DO UPDATE SET ${cols.slice(1).map((c) => `${quoteIdent(c)} = EXCLUDED.${quoteIdent(c)}`).join(', ')}`,
      values,
    );
  }

  private splitName(table: string): { schema: string; name: string } {
    const dot = table.indexOf('.');
    return dot > 0 ? { schema: table.slice(0, dot), name: table.slice(dot + 1) } : { schema: this.schema, name: table };
  }

  async tableStats(table: string): Promise<TableStats | null> {
    const { schema, name } = this.splitName(table);
    const t = await this.query<{ oid: string; reltuples: string; bytes: string }>(
      `SELECT c.oid::text AS oid, c.reltuples::bigint::text AS reltuples, pg_table_size(c.oid)::text AS bytes
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')`,
      [schema, name],
    );
    if (t.length === 0) return null;
    const oid = t[0]!.oid;
    let rows = Number(t[0]!.reltuples);
    if (rows < 0) {
      // Never analysed (PostgreSQL 14+ says -1): count, but never more than a million rows.
      const c = await this.query<{ n: string }>(`SELECT count(*)::text AS n FROM (SELECT 1 FROM ${quoteQualified(schema, name)} LIMIT 1000000) s`);
      rows = Number(c[0]?.n ?? 0);
    }
    const cols = await this.query<{ name: string; type: string; notnull: string; def: string | null }>(
      `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull::text AS notnull,
              pg_get_expr(d.adbin, d.adrelid) AS def
         FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`,
      [oid],
    );
    const pk = await this.query<{ name: string }>(
      `SELECT a.attname AS name FROM pg_index i
         JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) ON true
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
        WHERE i.indrelid = $1::oid AND i.indisprimary ORDER BY k.ord`,
      [oid],
    );
    const columns: ColumnDetail[] = cols.map((c) => ({ name: c.name, type: c.type, nullable: c.notnull !== 'true', defaultExpr: c.def }));
    return { schema, name, rows, bytes: Number(t[0]!.bytes), columns, primaryKey: pk.map((p) => p.name) };
  }

  private readonly lockWait: LockTimeoutSession = {
    setLockTimeout: (ms) => this.exec(`SET lock_timeout = '${Math.max(1, Math.round(ms))}ms'`),
    resetLockTimeout: () => this.exec('RESET lock_timeout'),
    isLockTimeout: (err) => (err as { code?: string }).code === LOCK_NOT_AVAILABLE,
  };

  async runDdl(sql: string, options: DdlOptions): Promise<void> {
    await lockRetries(this.lockWait, options, () => this.exec(sql));
  }

  async dropInvalidIndex(name: string): Promise<boolean> {
    const rows = await this.query<{ idx: string }>(
      `SELECT c.relname AS idx FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = $1 AND c.relname = $2 AND NOT i.indisvalid`,
      [this.schema, name],
    );
    if (rows.length === 0) return false;
    await this.exec(`DROP INDEX CONCURRENTLY IF EXISTS ${quoteQualified(this.schema, name)}`);
    return true;
  }

  async runAtomically(_table: string, statements: string[], options: DdlOptions): Promise<void> {
    // One simple-protocol message without BEGIN/COMMIT runs as one implicit transaction.
    await this.runDdl(statements.join(';\n'), options);
  }

  syncTriggers(spec: SyncTriggerSpec): { create: string[]; drop: string[] } {
    const t = quoteIdent(spec.table);
    const o = quoteIdent(spec.oldColumn);
    const n = quoteIdent(spec.newColumn);
    const conv = (expr: string | null, value: string) => (expr ? expr.split('{{value}}').join(value) : value);
    const toNew = conv(spec.toNew, `NEW.${o}`);
    const toOld = conv(spec.toOld, `NEW.${n}`);
    const fn = quoteIdent(`${spec.name}_fn`);
    const trg = quoteIdent(spec.name);
    // A backfill session sets shadowshift.backfill so its own writes are not echoed back.
    return {
      create: [
        `CREATE OR REPLACE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql AS $shadowshift$
BEGIN
  IF current_setting('shadowshift.backfill', true) = 'on' THEN
    RETURN NEW;
  END IF;
  IF TG_OP = 'INSERT' THEN
    IF NEW.${n} IS NOT NULL THEN
      NEW.${o} := ${toOld};
    ELSE
      NEW.${n} := ${toNew};
    END IF;
  ELSIF NEW.${n} IS DISTINCT FROM OLD.${n} AND NEW.${o} IS NOT DISTINCT FROM OLD.${o} THEN
    NEW.${o} := ${toOld};
  ELSIF NEW.${o} IS DISTINCT FROM OLD.${o} AND NEW.${n} IS NOT DISTINCT FROM OLD.${n} THEN
    NEW.${n} := ${toNew};
  END IF;
  RETURN NEW;
END
$shadowshift$`,
        `CREATE TRIGGER ${trg} BEFORE INSERT OR UPDATE ON ${t} FOR EACH ROW EXECUTE FUNCTION ${fn}()`,
      ],
      drop: [`DROP TRIGGER IF EXISTS ${trg} ON ${t}`, `DROP FUNCTION IF EXISTS ${fn}()`],
    };
  }

  async close(): Promise<void> {
    await this.client.end().catch(() => undefined);
  }
}

export async function openPostgresMigrationStore(config: ConnectionConfig): Promise<MigrationStore> {
  const client = new pg.Client({ ...clientConfigFor(config), application_name: 'shadowshift-migrate' });
  client.on('error', () => undefined);
  await client.connect();
  const rows = await client.query<{ schema: string | null; user: string }>('SELECT current_schema() AS schema, current_user AS user');
  const schema = rows.rows[0]?.schema;
  if (!schema) {
    await client.end();
    throw new Error('the connection has no current schema (search_path is empty); set search_path for the user or add ?options=-csearch_path=public to the URL');
  }
  let os = 'unknown';
  try {
    os = process.env.USER ?? userInfo().username;
  } catch {
    /* no OS user */
  }
  return new PostgresMigrationStore(client, schema, config.database, `${rows.rows[0]!.user}(${os})`);
}
