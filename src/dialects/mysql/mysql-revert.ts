// The way back after a revertible job (`shadowshift revert`): the old table becomes the
// shadow of a job whose original is the live table, and the binlog from the swap on
// brings it every write made since (docs/ARCHITECTURE.md, "Revert after the cut-over").
//
// Before anything is written, the live table is scanned for what the old table cannot
// hold. A revert that met such a row during its catch-up would fail there (strict mode,
// and the applier's check of unique keys the new table does not enforce), the live table
// untouched; the scan says it first, naming rows, so nothing is started that cannot end.

import type { RowDataPacket } from 'mysql2/promise';
import type { ArtefactNames, CopyPlan, RevertLoss, RevertSupport } from '../dialect.js';
import type { MyContext } from './mysql-context.js';
import { MysqlRevertPointStore } from './mysql-checkpoints.js';
import { createChangelog } from './mysql-shadow.js';
import { quoteIdent, quoteTable } from './mysql-quote.js';
import { convertedForChecksum, typedColumns, type TypedColumn } from './mysql-conversions.js';

/** Keys named per problem. */
const KEYS_SHOWN = 5;

const INTEGER_RANGE: Record<string, [bigint, bigint]> = {
  tinyint: [-(2n ** 7n), 2n ** 7n - 1n],
  smallint: [-(2n ** 15n), 2n ** 15n - 1n],
  mediumint: [-(2n ** 23n), 2n ** 23n - 1n],
  int: [-(2n ** 31n), 2n ** 31n - 1n],
  bigint: [-(2n ** 63n), 2n ** 63n - 1n],
};

/** The range of an integer type as SHOW COLUMNS spells it, or null for any other type. */
export function integerRange(type: string): [bigint, bigint] | null {
  const m = /^(tiny|small|medium|big)?int(\(\d+\))?( unsigned)?( zerofill)?$/i.exec(type.trim());
  if (!m) return null;
  const [lo, hi] = INTEGER_RANGE[`${(m[1] ?? '').toLowerCase()}int`]!;
  return m[3] ? [0n, hi * 2n + 1n] : [lo, hi];
}

/**
 * SQL true for a value `v` of the live table's column that the old column would not hold
 * exactly, or why no such test is known. Integers by range (their text does not change
 * with width); everything else by a round trip through the old type, compared byte for byte.
 */
export function misfit(c: TypedColumn, v: string): { sql: string | null } | { unknown: string } {
  const from = c.from.type.toLowerCase();
  const to = c.to.type.toLowerCase();
  const notNull = !c.to.nullable && c.from.nullable ? `${v} IS NULL` : null;
  const either = (test: string | null) => ({ sql: [notNull, test].filter(Boolean).join(' OR ') || null });
  // A character set changed alone leaves the type's text as it was.
  if (from === to && c.from.charset === c.to.charset) return either(null);
  const toRange = integerRange(to);
  const fromRange = integerRange(from);
  const outOfRange = toRange && !(fromRange && toRange[0] <= fromRange[0] && toRange[1] >= fromRange[1]) ? `${v} NOT BETWEEN ${toRange[0]} AND ${toRange[1]}` : null;
  if (toRange && fromRange) return either(outOfRange);
  // The same type in another character set: only the characters change.
  const converted = from === to && c.to.charset ? { sql: `CAST(${v} AS CHAR CHARACTER SET ${c.to.charset})` } : convertedForChecksum(c, v, null);
  if ('skip' in converted) return { unknown: `${c.source} (${c.from.type} back to ${c.to.type}): ${converted.skip}` };
  // Text compares as utf8mb4 bytes, so a character the old character set lacks (it becomes '?') counts.
  const bytes = (e: string) => (/char|text|^enum\(|^set\(/.test(to) ? `BINARY CONVERT(${e} USING utf8mb4)` : `BINARY ${e}`);
  return either([outOfRange, `NOT (${bytes(converted.sql)} <=> ${bytes(v)})`].filter(Boolean).join(' OR '));
}

export class MysqlRevertSupport implements RevertSupport {
  readonly points: MysqlRevertPointStore;

  constructor(private readonly ctx: MyContext) {
    this.points = new MysqlRevertPointStore(ctx);
  }

  /** binlog_expire_logs_seconds (MariaDB 10.6+, MySQL 8), else expire_logs_days; 0 means never. */
  async logRetentionSeconds(): Promise<number | null> {
    const [r] = await this.ctx.pool.query<RowDataPacket[]>('SELECT @@global.expire_logs_days AS days');
    let seconds = Math.round(Number(r[0]?.days ?? 0) * 86400);
    try {
      const [s] = await this.ctx.pool.query<RowDataPacket[]>('SELECT @@global.binlog_expire_logs_seconds AS s');
      seconds = Number(s[0]?.s ?? 0) || seconds;
    } catch {
      // An older server has only expire_logs_days.
    }
    return seconds > 0 ? seconds : null;
  }

  /** The binlog is the server's own; a revert point holds none of it back. */
  async heldLogBytes(): Promise<null> {
    return null;
  }

  /** The binlog already holds every write: nothing to prepare. */
  async prepareWayBack(): Promise<void> {}

  async dropWayBack(): Promise<void> {}

  async prepareStream(names: ArtefactNames): Promise<void> {
    const conn = await this.ctx.pool.getConnection();
    try {
      await createChangelog(conn, names.extra.schema ?? this.ctx.config.database, names.changelog);
    } finally {
      conn.release();
    }
  }

  async losses(plan: CopyPlan): Promise<RevertLoss[]> {
    const live = plan.original.ref;
    const from = quoteTable(live.schema, live.name);
    const keyList = plan.key.map((k) => quoteIdent(k.source));
    const keysOf = async (where: string): Promise<string[]> => {
      const [rows] = await this.ctx.pool.query<RowDataPacket[]>(`SELECT ${keyList.join(', ')} FROM ${from} WHERE ${where} LIMIT ${KEYS_SHOWN}`);
      return rows.map((r) => plan.key.map((k) => `${k.source}=${String(r[k.source])}`).join(', '));
    };
    const out: RevertLoss[] = [];
    for (const c of typedColumns(plan)) {
      const test = misfit(c, quoteIdent(c.source));
      if ('unknown' in test) {
        out.push({ problem: `no exact way back is known for ${test.unknown}`, keys: [] });
        continue;
      }
      if (!test.sql) continue;
      const keys = await keysOf(test.sql);
      if (keys.length > 0) out.push({ problem: `${c.source}: values the old column (${c.to.type}${c.to.nullable ? '' : ' NOT NULL'}) cannot hold`, keys });
    }
    out.push(...(await this.unfilledColumns(plan)));
    out.push(...(await this.checkViolations(plan)));
    for (const name of plan.newUniqueIndexes) {
      const index = plan.shadow.indexes.find((i) => i.name === name);
      if (!index) continue;
      const maps = index.columns.map((col) => plan.columns.find((m) => m.target.toLowerCase() === col.toLowerCase()));
      if (maps.some((m) => m === undefined)) continue; // unfilledColumns names it
      const sources = maps.map((m) => m!.source);
      const cols = sources.map((s) => quoteIdent(s));
      // Equal as the old key compares them: in its collation (utf8mb4_bin → _general_ci makes 'A' and 'a' one value).
      const grouped = maps.map((m) => asOldKeyCompares(plan, m!.source, m!.target));
      const [dups] = await this.ctx.pool.query<RowDataPacket[]>(
        `SELECT ${cols.map((c, i) => `MIN(${c}) AS ${quoteIdent(sources[i]!)}`).join(', ')}, COUNT(*) AS n FROM ${from} WHERE ${cols.map((c) => `${c} IS NOT NULL`).join(' AND ')} ` +
          `GROUP BY ${grouped.join(', ')} HAVING COUNT(*) > 1 LIMIT ${KEYS_SHOWN}`,
      );
      if (dups.length > 0) {
        out.push({
          problem: `unique key ${name} of the old table: values the new table holds more than once`,
          keys: dups.map((d) => `${sources.map((s) => `${s}=${String(d[s!])}`).join(', ')} (${String(d.n)} rows)`),
        });
      }
    }
    return out;
  }

  /**
   * CHECK constraints of the old table that rows of the live table fail (the ALTER dropped
   * or loosened one). Each clause is evaluated over the live table's columns under their
   * old names; one over a column the live table lacks is left to the catch-up, which
   * fails naming the row (a CHECK violation is a data error there).
   */
  private async checkViolations(plan: CopyPlan): Promise<RevertLoss[]> {
    const old = plan.shadow.ref;
    const live = plan.original.ref;
    const clauses = async (table: { schema: string; name: string }): Promise<Array<{ name: string; clause: string }>> => {
      // MariaDB names a constraint per table (CHECK_CONSTRAINTS.TABLE_NAME); MySQL 8 per schema.
      const [rows] = await this.ctx.pool
        .query<RowDataPacket[]>('SELECT CONSTRAINT_NAME AS name, CHECK_CLAUSE AS clause FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ?', [table.schema, table.name])
        .catch(() =>
          this.ctx.pool.query<RowDataPacket[]>(
            `SELECT cc.CONSTRAINT_NAME AS name, cc.CHECK_CLAUSE AS clause FROM information_schema.TABLE_CONSTRAINTS tc
               JOIN information_schema.CHECK_CONSTRAINTS cc ON cc.CONSTRAINT_SCHEMA = tc.CONSTRAINT_SCHEMA AND cc.CONSTRAINT_NAME = tc.CONSTRAINT_NAME
              WHERE tc.TABLE_SCHEMA = ? AND tc.TABLE_NAME = ? AND tc.CONSTRAINT_TYPE = 'CHECK'`,
            [table.schema, table.name],
          ),
        );
      return rows.map((r) => ({ name: String(r.name), clause: String(r.clause) }));
    };
    const renamed = plan.columns.some((m) => m.source.toLowerCase() !== m.target.toLowerCase());
    const liveClauses = renamed ? new Set<string>() : new Set((await clauses(live)).map((c) => c.clause));
    const asOld = `(SELECT ${plan.columns.map((m) => `${quoteIdent(m.source)} AS ${quoteIdent(m.target)}`).join(', ')} FROM ${quoteTable(live.schema, live.name)}) AS t`;
    const out: RevertLoss[] = [];
    for (const check of await clauses(old)) {
      if (liveClauses.has(check.clause)) continue; // the live table enforces it too
      let keys: string[];
      try {
        const [rows] = await this.ctx.pool.query<RowDataPacket[]>(`SELECT ${plan.key.map((k) => quoteIdent(k.target)).join(', ')} FROM ${asOld} WHERE NOT (${check.clause}) LIMIT ${KEYS_SHOWN}`);
        keys = rows.map((r) => plan.key.map((k) => `${k.source}=${String(r[k.target])}`).join(', '));
      } catch {
        continue; // over a column the live table lacks: the catch-up names the row
      }
      if (keys.length > 0) out.push({ problem: `check constraint ${check.name} of the old table (${check.clause}): rows that fail it`, keys });
    }
    return out;
  }

  /**
   * Columns of the old table no column of the live table fills (the ALTER dropped them): a
   * row written since the swap gets their default, which must exist, and a unique key over
   * one would see that default twice.
   */
  private async unfilledColumns(plan: CopyPlan): Promise<RevertLoss[]> {
    const old = plan.shadow.ref;
    const filled = new Set(plan.columns.map((m) => m.target.toLowerCase()));
    const [cols] = await this.ctx.pool.query<RowDataPacket[]>(
      `SELECT COLUMN_NAME AS name, IS_NULLABLE AS nullable, COLUMN_DEFAULT AS dflt, EXTRA AS extra FROM information_schema.COLUMNS
        WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION`,
      [old.schema, old.name],
    );
    const out: RevertLoss[] = [];
    for (const c of cols) {
      const name = String(c.name);
      const extra = String(c.extra ?? '').toLowerCase();
      if (filled.has(name.toLowerCase()) || /generated|auto_increment/.test(extra)) continue;
      // MariaDB spells "no default" as NULL, and a default of NULL as the text 'NULL'.
      if (c.nullable === 'NO' && c.dflt === null) {
        out.push({ problem: `column ${name} of the old table is NOT NULL without a default, and the new table has no column for it: a row written since the swap cannot go back`, keys: [] });
      }
      const unique = plan.shadow.indexes.find((i) => i.unique && i.columns.some((x) => x.toLowerCase() === name.toLowerCase()));
      const defaultsToNull = c.nullable === 'YES' && (c.dflt === null || String(c.dflt).toUpperCase() === 'NULL');
      if (unique && !defaultsToNull) out.push({ problem: `unique key ${unique.name} of the old table covers ${name}, which the new table has no column for: rows written since the swap would share its default`, keys: [] });
    }
    return out;
  }
}

/** A live column's value as the old table's key compares it: its old character set and collation, when those differ. */
function asOldKeyCompares(plan: CopyPlan, source: string, target: string): string {
  const col = (cols: CopyPlan['original']['columns'], name: string) => cols.find((c) => c.name.toLowerCase() === name.toLowerCase());
  const now = col(plan.original.columns, source);
  const before = col(plan.shadow.columns, target);
  const v = quoteIdent(source);
  if (!before?.collation || before.collation === now?.collation) return v;
  return `${before.charset && before.charset !== now?.charset ? `CONVERT(${v} USING ${before.charset})` : v} COLLATE ${before.collation}`;
}
