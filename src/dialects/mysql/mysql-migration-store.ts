// MySQL/MariaDB SQL for the migration runner: the history table, the runner
// lock (GET_LOCK), table statistics, DDL under a short lock_wait_timeout,
// ALGORITHM=INSTANT / INPLACE attempts, statements made atomic under LOCK TABLES,
// and the triggers that keep two columns in sync during an expand/contract operation.

import { createHash } from 'node:crypto';
import { userInfo } from 'node:os';
import mysql from 'mysql2/promise';
import type { ConnectionConfig } from '../../util/connection-url.js';
import { quoteIdent, quoteTable } from './mysql-quote.js';
import type {
  AlgorithmAttempt,
  ColumnDetail,
  DdlOptions,
  HistoryRecord,
  MigrationStore,
  SyncTriggerSpec,
  TableStats,
} from '../../migrations/migration-store.js';
import { connectionOptionsFor } from './mysql-context.js';
import { historyRecordFromRow, lockRetries, type LockTimeoutSession } from '../../migrations/migration-store.js';

export const HISTORY_TABLE = 'shadowshift_migrations';

const UNSUPPORTED_ALGORITHM = new Set([1845, 1846, 4092]);
const LOCK_WAIT_TIMEOUT = 1205;

function errno(err: unknown): number | undefined {
  return (err as { errno?: number }).errno;
}

function utcText(iso: string | null): string | null {
  return iso ? iso.replace('T', ' ').replace('Z', '') : null;
}

class MysqlMigrationStore implements MigrationStore {
  readonly dialect = 'mysql' as const;
  readonly historyTable = HISTORY_TABLE;
  readonly appliedBy: string;
  private lockName: string;

  constructor(
    private readonly conn: mysql.Connection,
    readonly schema: string,
    user: string,
  ) {
    this.appliedBy = user;
    this.lockName = 'shadowshift_migrate_' + createHash('sha1').update(schema).digest('hex').slice(0, 40);
  }

  quoteIdent(name: string): string {
    return quoteIdent(name);
  }

  placeholder(): string {
    return '?';
  }

  async query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]> {
    const [rows] = await this.conn.query(sql, params);
    return (Array.isArray(rows) ? rows : []) as T[];
  }

  async exec(sql: string, params?: unknown[]): Promise<{ rowCount: number }> {
    const [res] = await this.conn.query(sql, params);
    return { rowCount: Number((res as { affectedRows?: number }).affectedRows ?? 0) };
  }

  async acquireLock(waitMs: number): Promise<boolean> {
    const rows = await this.query<{ got: string | number | null }>('SELECT GET_LOCK(?, ?) AS got', [this.lockName, Math.max(0, waitMs) / 1000]);
    return String(rows[0]?.got) === '1';
  }

  async releaseLock(): Promise<void> {
    await this.query('SELECT RELEASE_LOCK(?)', [this.lockName]);
  }

  private qualifiedHistory(): string {
    return `${quoteIdent(this.schema)}.${quoteIdent(HISTORY_TABLE)}`;
  }

  async ensureHistoryTable(): Promise<void> {
    await this.exec(`CREATE TABLE IF NOT EXISTS ${this.qualifiedHistory()} (
  version VARCHAR(40) NOT NULL PRIMARY KEY,
  name VARCHAR(255) NOT NULL,
  checksum CHAR(64) NOT NULL,
  kind VARCHAR(16) NOT NULL,
  reached VARCHAR(16) NULL,
  status VARCHAR(16) NOT NULL,
  current_phase VARCHAR(16) NULL,
  statements_done INT NOT NULL DEFAULT 0,
  done_checksum CHAR(64) NULL,
  phase_checksums TEXT NULL,
  backfill_cursor TEXT NULL,
  applied_by VARCHAR(255) NOT NULL,
  host VARCHAR(255) NOT NULL,
  started_at DATETIME(3) NULL,
  finished_at DATETIME(3) NULL,
  duration_ms BIGINT NULL,
  error TEXT NULL,
  failed_statement MEDIUMTEXT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`);
  }

  async readHistory(): Promise<HistoryRecord[]> {
    const exists = await this.query('SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?', [this.schema, HISTORY_TABLE]);
    if (exists.length === 0) return [];
    const rows = await this.query<Record<string, string | null>>(
      `SELECT version, name, checksum, kind, reached, status, current_phase, CAST(statements_done AS CHAR) AS statements_done,
              done_checksum, phase_checksums, backfill_cursor, applied_by, host,
              DATE_FORMAT(started_at, '%Y-%m-%dT%H:%i:%s.%fZ') AS started_at,
              DATE_FORMAT(finished_at, '%Y-%m-%dT%H:%i:%s.%fZ') AS finished_at,
              CAST(duration_ms AS CHAR) AS duration_ms, error, failed_statement
         FROM ${this.qualifiedHistory()}`,
    );
    return rows.map(rowToRecord);
  }

  async saveHistory(r: HistoryRecord): Promise<void> {
    const cols = ['version', 'name', 'checksum', 'kind', 'reached', 'status', 'current_phase', 'statements_done', 'done_checksum', 'phase_checksums', 'backfill_cursor', 'applied_by', 'host', 'started_at', 'finished_at', 'duration_ms', 'error', 'failed_statement'];
    const values = [r.version, r.name, r.checksum, r.kind, r.reached, r.status, r.currentPhase, r.statementsDone, r.doneChecksum, r.phaseChecksums, r.backfillCursor, r.appliedBy, r.host, utcText(r.startedAt), utcText(r.finishedAt), r.durationMs, r.error, r.failedStatement];
    await this.exec(
      `INSERT INTO ${this.qualifiedHistory()} (${cols.map(quoteIdent).join(', ')}) VALUES (${cols.map(() => '?').join(', ')})
       ON DUPLICATE KEY UPDATE ${cols.slice(1).map((c) => `${quoteIdent(c)} = VALUES(${quoteIdent(c)})`).join(', ')}`,
      values,
    );
  }

  private splitName(table: string): { schema: string; name: string } {
    const dot = table.indexOf('.');
    return dot > 0 ? { schema: table.slice(0, dot), name: table.slice(dot + 1) } : { schema: this.schema, name: table };
  }

  async tableStats(table: string): Promise<TableStats | null> {
    const { schema, name } = this.splitName(table);
    const t = await this.query<{ rows: string | null; bytes: string | null }>(
      `SELECT CAST(TABLE_ROWS AS CHAR) AS \`rows\`, CAST(DATA_LENGTH + INDEX_LENGTH AS CHAR) AS bytes
         FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND TABLE_TYPE = 'BASE TABLE'`,
      [schema, name],
    );
    if (t.length === 0) return null;
    const cols = await this.query<{ name: string; type: string; nullable: string; def: string | null }>(
      `SELECT COLUMN_NAME AS name, COLUMN_TYPE AS type, IS_NULLABLE AS nullable, COLUMN_DEFAULT AS def
         FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION`,
      [schema, name],
    );
    const pk = await this.query<{ name: string }>(
      `SELECT COLUMN_NAME AS name FROM information_schema.STATISTICS
        WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX`,
      [schema, name],
    );
    const columns: ColumnDetail[] = cols.map((c) => ({
      name: c.name,
      type: c.type,
      nullable: c.nullable === 'YES',
      // MariaDB shows a missing default of a nullable column as the text NULL.
      defaultExpr: c.def === null || c.def === 'NULL' ? null : c.def,
    }));
    return { schema, name, rows: Number(t[0]!.rows ?? 0), bytes: Number(t[0]!.bytes ?? 0), columns, primaryKey: pk.map((p) => p.name) };
  }

  private readonly lockWait: LockTimeoutSession = {
    setLockTimeout: (ms) => this.exec(`SET SESSION lock_wait_timeout = ${Math.max(1, Math.ceil(ms / 1000))}`),
    resetLockTimeout: () => this.exec('SET SESSION lock_wait_timeout = DEFAULT'),
    isLockTimeout: (err) => errno(err) === LOCK_WAIT_TIMEOUT,
  };

  async runDdl(sql: string, options: DdlOptions): Promise<void> {
    await lockRetries(this.lockWait, options, () => this.exec(sql));
  }

  async tryAlgorithm(sql: string, algorithm: 'INSTANT' | 'INPLACE', options: DdlOptions): Promise<AlgorithmAttempt> {
    const isCreateIndex = /^\s*create\s+(unique\s+|fulltext\s+|spatial\s+)?index\b/i.test(sql);
    const suffix = algorithm === 'INSTANT' ? 'ALGORITHM=INSTANT' : 'ALGORITHM=INPLACE, LOCK=NONE';
    const text = isCreateIndex ? `${sql} ${suffix.replace(',', '')}` : `${sql}, ${suffix}`;
    try {
      await lockRetries(this.lockWait, options, () => this.exec(text));
      return { ok: true };
    } catch (err) {
      const e = err as Error;
      if (UNSUPPORTED_ALGORITHM.has(errno(err) ?? 0) || /ALGORITHM=\w+ is not supported/i.test(e.message)) {
        return { ok: false, unsupported: true, message: e.message };
      }
      throw err;
    }
  }

  async runAtomically(table: string, statements: string[], options: DdlOptions): Promise<void> {
    const dot = table.indexOf('.');
    const t = dot > 0 ? quoteTable(table.slice(0, dot), table.slice(dot + 1)) : quoteIdent(table);
    await this.runDdl(`LOCK TABLES ${t} WRITE`, options);
    try {
      for (const s of statements) await this.exec(s);
    } finally {
      await this.exec('UNLOCK TABLES');
    }
  }

  syncTriggers(spec: SyncTriggerSpec): { create: string[]; drop: string[] } {
    const t = quoteIdent(spec.table);
    const o = quoteIdent(spec.oldColumn);
    const n = quoteIdent(spec.newColumn);
    const conv = (expr: string | null, value: string) => (expr ? expr.split('{{value}}').join(value) : value);
    const toNew = conv(spec.toNew, `NEW.${o}`);
    const toOld = conv(spec.toOld, `NEW.${n}`);
    const ins = quoteIdent(`${spec.name}_ins`);
    const upd = quoteIdent(`${spec.name}_upd`);
    // A backfill session sets @shadowshift_backfill so its own writes are not echoed back.
    return {
      create: [
        `CREATE TRIGGER ${ins} BEFORE INSERT ON ${t} FOR EACH ROW
BEGIN
  IF @shadowshift_backfill IS NULL THEN
    IF NEW.${n} IS NOT NULL THEN SET NEW.${o} = ${toOld};
    ELSE SET NEW.${n} = ${toNew};
    END IF;
  END IF;
END`,
        `CREATE TRIGGER ${upd} BEFORE UPDATE ON ${t} FOR EACH ROW
BEGIN
  IF @shadowshift_backfill IS NULL THEN
    IF NOT (NEW.${n} <=> OLD.${n}) AND (NEW.${o} <=> OLD.${o}) THEN SET NEW.${o} = ${toOld};
    ELSEIF NOT (NEW.${o} <=> OLD.${o}) AND (NEW.${n} <=> OLD.${n}) THEN SET NEW.${n} = ${toNew};
    END IF;
  END IF;
END`,
      ],
      drop: [`DROP TRIGGER IF EXISTS ${ins}`, `DROP TRIGGER IF EXISTS ${upd}`],
    };
  }

  async close(): Promise<void> {
    await this.conn.end().catch(() => this.conn.destroy());
  }
}

/** MySQL keeps microseconds; the history shows milliseconds like PostgreSQL's. */
const rowToRecord = (r: Record<string, string | null>): HistoryRecord => historyRecordFromRow(r, (t) => t.replace(/(\.\d{3})\d*Z$/, '$1Z'));

export async function openMysqlMigrationStore(config: ConnectionConfig): Promise<MigrationStore> {
  const conn = await mysql.createConnection({ ...connectionOptionsFor(config), multipleStatements: false });
  conn.on('error', () => undefined);
  // Strict mode: a migration's UPDATE must fail rather than truncate silently.
  await conn.query("SET SESSION sql_mode = CONCAT_WS(',', @@SESSION.sql_mode, 'STRICT_TRANS_TABLES'), time_zone = '+00:00'");
  const user = process.env.USER ?? safeUser();
  return new MysqlMigrationStore(conn, config.database, `${config.user}(${user})`);
}

function safeUser(): string {
  try {
    return userInfo().username;
  } catch {
    return 'unknown';
  }
}
