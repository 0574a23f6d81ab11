// The way back after a revertible job (`shadowshift revert`), PostgreSQL.
//
// A slot cannot decode WAL from before its creation, so the stream a revert reads is made
// before the swap it undoes: a publication of the shadow (the new table, by its OID, so it
// follows the rename) and a logical slot, named as the revert job's (prepareWayBack). The
// swap reads the WAL position under its locks, before its commit (swap-transaction.ts):
// every write to the new table commits after it and every write the applier made to the
// shadow before it, so a revert reading the slot from there gets exactly the writes since
// the swap. The slot holds WAL and the catalog horizon while the window is open: `cleanup`
// lists it with the revert point, and the revert point's window bounds it.
//
// Before anything is written, the live table is scanned for what the old table cannot hold
// (losses), as on MySQL (mysql-revert.ts).

import { revertJobId, type ArtefactNames, type CopyPlan, type RevertLoss, type RevertPoint, type RevertSupport, type TableRef } from '../dialect.js';
import { jobTag, parseArtefactName, slotName } from './postgres-names.js';
import type { PgContext } from './postgres-context.js';
import { PostgresRevertPointStore } from './postgres-checkpoints.js';
import { createSlotAndPublication, dropSlotAndPublication } from './postgres-slot.js';
import { quoteIdent, quoteQualified } from './postgres-quote.js';

const KEYS_SHOWN = 5;

const INTEGER_RANGE: Record<string, [bigint, bigint]> = {
  smallint: [-(2n ** 15n), 2n ** 15n - 1n],
  integer: [-(2n ** 31n), 2n ** 31n - 1n],
  bigint: [-(2n ** 63n), 2n ** 63n - 1n],
};

interface TypedColumn {
  source: string;
  from: { type: string; nullable: boolean };
  to: { type: string; nullable: boolean };
}

const TEXT = /^(text|character varying|character varying\((\d+)\)|character\((\d+)\))$/;
const NUMERIC = /^numeric\((\d+),(\d+)\)$/;

/**
 * SQL true for a value `v` of the live table's column that the old column would not hold
 * exactly (format_type spellings), or why no such test is known.
 */
export function pgMisfit(c: TypedColumn, v: string): { sql: string | null } | { unknown: string } {
  const from = c.from.type;
  const to = c.to.type;
  const tests: string[] = [];
  if (!c.to.nullable && c.from.nullable) tests.push(`${v} IS NULL`);
  const done = () => ({ sql: tests.length ? tests.join(' OR ') : null });
  if (from === to) return done();
  const toRange = INTEGER_RANGE[to];
  const fromRange = INTEGER_RANGE[from];
  if (toRange && (fromRange || NUMERIC.test(from) || from === 'numeric')) {
    if (!(fromRange && toRange[0] <= fromRange[0] && toRange[1] >= fromRange[1])) tests.push(`${v} NOT BETWEEN ${toRange[0]} AND ${toRange[1]}`);
    if (!fromRange) tests.push(`${v} <> trunc(${v})`);
    return done();
  }
  const toText = TEXT.exec(to);
  if (toText && TEXT.test(from)) {
    const n = toText[2] ?? toText[3];
    if (n) tests.push(`char_length(${v}) > ${n}`);
    return done();
  }
  const toNumeric = NUMERIC.exec(to);
  if (toNumeric && (NUMERIC.test(from) || from === 'numeric' || fromRange)) {
    const [p, s] = [Number(toNumeric[1]), Number(toNumeric[2])];
    tests.push(`abs(${v}) >= 1e${p - s}`);
    if (!fromRange) tests.push(`${v} <> round(${v}, ${s})`);
    return done();
  }
  return { unknown: `${c.source} (${from} back to ${to}): no exact way back is known` };
}

export class PostgresRevertSupport implements RevertSupport {
  readonly points: PostgresRevertPointStore;

  constructor(private readonly ctx: PgContext) {
    this.points = new PostgresRevertPointStore(ctx);
  }

  async heldLogBytes(point: RevertPoint): Promise<number | null> {
    const r = await this.ctx.pool.query<{ held: string | null }>(
      `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint::text AS held FROM pg_replication_slots WHERE slot_name = $1`,
      [slotName(jobTag(revertJobId(point.jobId)))],
    );
    return r.rows[0]?.held ? Number(r.rows[0].held) : null;
  }

  /** WAL is kept by the slot, not for a time (max_slot_wal_keep_size may still invalidate it: the revert then says so). */
  async logRetentionSeconds(): Promise<number | null> {
    return null;
  }

  /** A stopped run of the same job may have made them already: a slot made before the swap serves as well. */
  async prepareWayBack(shadow: TableRef, wayBack: ArtefactNames, original: TableRef): Promise<void> {
    const table = quoteQualified(shadow.schema, shadow.name);
    await this.takeReplicaIdentity(table, quoteQualified(original.schema, original.name));
    const r = await this.ctx.pool.query<{ ok: string }>(
      `SELECT (EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND database = current_database() AND plugin = 'pgoutput')
          AND EXISTS (SELECT 1 FROM pg_publication_rel pr JOIN pg_publication p ON p.oid = pr.prpubid WHERE p.pubname = $2 AND pr.prrelid = $3::regclass))::text AS ok`,
      [wayBack.extra.slot, wayBack.changelog, table],
    );
    if (r.rows[0]?.ok === 'true') return;
    await dropSlotAndPublication(this.ctx.pool, wayBack.extra.slot!, wayBack.changelog);
    await createSlotAndPublication(this.ctx.pool, table, wayBack.extra.slot!, wayBack.changelog);
  }

  async wayBackCapacityProblem(alsoStreaming: boolean): Promise<string | null> {
    const r = await this.ctx.pool.query<{ max: string; used: string }>(
      "SELECT current_setting('max_replication_slots') AS max, (SELECT count(*) FROM pg_replication_slots)::text AS used",
    );
    return slotShortfall(Number(r.rows[0]!.max), Number(r.rows[0]!.used), alsoStreaming ? 2 : 1);
  }

  /**
   * A published table needs a replica identity, or the application's UPDATE and DELETE
   * on it fail. Without a primary key the shadow has none: it takes the original's
   * (REPLICA IDENTITY FULL, or USING INDEX its own unique index on the same columns),
   * which the swap gives the new table anyway. Nothing when no such index exists: the
   * publication then refuses, saying why.
   */
  private async takeReplicaIdentity(shadow: string, original: string): Promise<void> {
    const r = await this.ctx.pool.query<{ identity: string; shadowHasKey: string; index: string | null }>(
      `WITH ident AS (
         SELECT array_agg(a.attname::text ORDER BY k.n) AS cols FROM pg_index i
           CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, n)
           JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
          WHERE i.indrelid = $2::regclass AND i.indisreplident)
       SELECT o.relreplident::text AS identity,
              (s.relreplident <> 'd' OR EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = s.oid AND i.indisprimary))::text AS "shadowHasKey",
              (SELECT ic.relname::text FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
                 WHERE i.indrelid = s.oid AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL AND i.indimmediate AND i.indisvalid
                   AND (SELECT array_agg(a.attname::text ORDER BY k.n) FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, n)
                          JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum) = (SELECT cols FROM ident)
                 LIMIT 1) AS index
         FROM pg_class s, pg_class o WHERE s.oid = $1::regclass AND o.oid = $2::regclass`,
      [shadow, original],
    );
    const row = r.rows[0];
    if (!row || row.shadowHasKey === 'true') return;
    if (row.identity === 'f') await this.ctx.pool.query(`ALTER TABLE ${shadow} REPLICA IDENTITY FULL`);
    else if (row.identity === 'i' && row.index) await this.ctx.pool.query(`ALTER TABLE ${shadow} REPLICA IDENTITY USING INDEX ${quoteIdent(row.index)}`);
  }

  async dropWayBack(wayBack: ArtefactNames): Promise<void> {
    await dropSlotAndPublication(this.ctx.pool, wayBack.extra.slot!, wayBack.changelog);
  }

  async prepareStream(names: ArtefactNames): Promise<void> {
    await this.ctx.pool.query(`ALTER TABLE ${quoteQualified(names.extra.schema ?? 'public', names.shadow)} DISABLE TRIGGER USER`);
  }

  async losses(plan: CopyPlan): Promise<RevertLoss[]> {
    const live = quoteQualified(plan.original.ref.schema, plan.original.ref.name);
    const keyList = plan.key.map((k) => quoteIdent(k.source));
    const keysOf = async (where: string): Promise<string[]> => {
      const r = await this.ctx.pool.query(`SELECT ${keyList.map((k) => `${k}::text`).join(', ')} FROM ${live} WHERE ${where} LIMIT ${KEYS_SHOWN}`);
      return r.rows.map((row: Record<string, unknown>) => plan.key.map((k) => `${k.source}=${String(row[k.source])}`).join(', '));
    };
    const type = (cols: CopyPlan['original']['columns'], name: string) => cols.find((c) => c.name === name)!;
    const out: RevertLoss[] = [];
    for (const m of plan.columns) {
      const from = type(plan.original.columns, m.source);
      const to = type(plan.shadow.columns, m.target);
      const test = pgMisfit({ source: m.source, from, to }, quoteIdent(m.source));
      if ('unknown' in test) {
        out.push({ problem: test.unknown, keys: [] });
        continue;
      }
      if (!test.sql) continue;
      const keys = await keysOf(test.sql);
      if (keys.length > 0) out.push({ problem: `${m.source}: values the old column (${to.type}${to.nullable ? '' : ' NOT NULL'}) cannot hold`, keys });
    }
    out.push(...(await this.unfilledColumns(plan)));
    out.push(...(await this.checkViolations(plan)));
    for (const name of plan.newUniqueIndexes) {
      const index = plan.shadow.indexes.find((i) => i.name === name);
      const sources = index?.columns.map((col) => plan.columns.find((m) => m.target === col)?.source);
      if (!sources || sources.some((s) => s === undefined)) continue;
      const cols = sources.map((s) => quoteIdent(s!));
      // Equal as the old key compares them: under its collation when that one is nondeterministic (case-insensitive, say).
      const grouped = cols.map((c, i) => {
        const before = plan.shadow.columns.find((x) => x.name === index!.columns[i])?.collation;
        return before && before !== plan.original.columns.find((x) => x.name === sources[i])?.collation ? `${c} COLLATE ${quoteIdent(before)}` : c;
      });
      const dups = await this.ctx.pool.query(
        `SELECT ${cols.map((c, i) => `min(${c}::text) AS c${i}`).join(', ')}, count(*)::int AS n FROM ${live} WHERE ${cols.map((c) => `${c} IS NOT NULL`).join(' AND ')}
          GROUP BY ${grouped.join(', ')} HAVING count(*) > 1 LIMIT ${KEYS_SHOWN}`,
      );
      if (dups.rows.length > 0) {
        out.push({
          problem: `unique key ${nameBeforeAside(name)} of the old table: values the new table holds more than once`,
          keys: dups.rows.map((d: Record<string, unknown>) => `${sources.map((s, i) => `${s}=${String(d[`c${i}`])}`).join(', ')} (${String(d.n)} rows)`),
        });
      }
    }
    return out;
  }

  /**
   * CHECK constraints of the old table that rows of the live table fail (the ALTER dropped
   * or loosened one), each evaluated over the live table's columns under their old names.
   * One over a column the live table lacks is left to the catch-up, which fails naming the row.
   */
  private async checkViolations(plan: CopyPlan): Promise<RevertLoss[]> {
    const checks = async (ref: TableRef) =>
      (
        await this.ctx.pool.query<{ name: string; expr: string }>(
          "SELECT conname AS name, pg_get_expr(conbin, conrelid) AS expr FROM pg_constraint WHERE conrelid = $1::regclass AND contype = 'c' ORDER BY conname",
          [quoteQualified(ref.schema, ref.name)],
        )
      ).rows;
    const renamed = plan.columns.some((m) => m.source !== m.target);
    const enforced = renamed ? new Set<string>() : new Set((await checks(plan.original.ref)).map((c) => c.expr));
    const live = quoteQualified(plan.original.ref.schema, plan.original.ref.name);
    const asOld = `(SELECT ${plan.columns.map((m) => `${quoteIdent(m.source)} AS ${quoteIdent(m.target)}`).join(', ')} FROM ${live}) AS t`;
    const out: RevertLoss[] = [];
    for (const check of await checks(plan.shadow.ref)) {
      if (enforced.has(check.expr)) continue; // the live table enforces it too
      let rows: Array<Record<string, unknown>>;
      try {
        rows = (await this.ctx.pool.query(`SELECT ${plan.key.map((k) => `${quoteIdent(k.target)}::text`).join(', ')} FROM ${asOld} WHERE NOT (${check.expr}) LIMIT ${KEYS_SHOWN}`)).rows;
      } catch {
        continue; // over a column the live table lacks: the catch-up names the row
      }
      if (rows.length > 0) out.push({ problem: `check constraint ${check.name} of the old table (${check.expr}): rows that fail it`, keys: rows.map((r) => plan.key.map((k) => `${k.source}=${String(r[k.target])}`).join(', ')) });
    }
    return out;
  }

  /** Columns of the old table the live table does not fill: NOT NULL without a default, or under a unique key. */
  private async unfilledColumns(plan: CopyPlan): Promise<RevertLoss[]> {
    const filled = new Set(plan.columns.map((m) => m.target));
    // Booleans as text: this pool reads every value as the server's text.
    const r = await this.ctx.pool.query<{ name: string; notnull: string; hasdef: string; filledBy: string }>(
      `SELECT attname AS name, attnotnull::text AS notnull, atthasdef::text AS hasdef, (attidentity IN ('a', 'd') OR attgenerated = 's')::text AS "filledBy"
         FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`,
      [quoteQualified(plan.shadow.ref.schema, plan.shadow.ref.name)],
    );
    const out: RevertLoss[] = [];
    for (const row of r.rows) {
      const c = { name: row.name, notnull: row.notnull === 'true', hasdef: row.hasdef === 'true' };
      // An identity or generated column fills itself.
      if (filled.has(c.name) || row.filledBy === 'true') continue;
      if (c.notnull && !c.hasdef) {
        out.push({ problem: `column ${c.name} of the old table is NOT NULL without a default, and the new table has no column for it: a row written since the swap cannot go back`, keys: [] });
      }
      const unique = plan.shadow.indexes.find((i) => i.unique && i.columns.includes(c.name));
      if (unique && (c.notnull || c.hasdef)) out.push({ problem: `unique key ${unique.name} of the old table covers ${c.name}, which the new table has no column for: rows written since the swap would share its default`, keys: [] });
    }
    return out;
  }
}

/** Why `needed` more replication slots do not fit (a revertible job's own and its way back), or null. */
export function slotShortfall(max: number, used: number, needed: number): string | null {
  const free = Math.max(0, max - used);
  if (free >= needed) return null;
  return (
    `a revertible job needs ${needed === 2 ? 'two replication slots (its own stream, and the way back kept for the revert window)' : 'a replication slot for the way back'}, ` +
    `and ${free} of ${max} (max_replication_slots) ${free === 1 ? 'is' : 'are'} free. Drop an unused slot (see \`shadowshift cleanup\`), raise max_replication_slots and restart, or run without --revertible`
  );
}

/** An index an earlier cut-over moved aside (`_ss_<tag>_o<n>_<name>`) by the name it gets back at the revert's swap. */
function nameBeforeAside(name: string): string {
  const p = parseArtefactName(name);
  return p && /^o\d+$/.test(p.kind) && p.rest ? p.rest : name;
}
