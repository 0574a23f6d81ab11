// Rows and statements of the adversarial workload: random rows (cells to bind
// plus the model's text), the SQL that writes and reads them, and the seeding.

import { ph, quoteIdent, type Db, type Dialect } from '../db.js';
import { AdvModel, keyOf, type Row } from './model.js';
import { columnDefs, textExpr, type ColumnDef } from './schema.js';
import { bigBinary, bigText, int, keyText, scrambleSid, small, type Cell, type Rng } from './values.js';

/** Column values of one write: what to bind, per column. */
export type Cells = Map<string, Cell>;

export const BIG_COLUMNS = ['big_text', 'big_bin'] as const;

/** A value of at least this many bytes is a large (out-of-line, TOASTed) one. */
const BIG_THRESHOLD = 10_000;

export function isBigRow(row: Row): boolean {
  return BIG_COLUMNS.some((c) => Number((row[c] ?? '0:').split(':')[0]) >= BIG_THRESHOLD);
}

export const rowOfCells = (cells: Cells): Row => Object.fromEntries([...cells].map(([c, v]) => [c, v.text]));

export class RowFactory {
  readonly columns: ColumnDef[];
  /** Ordinary columns (not key, not sid, not large). */
  readonly smallColumns: string[];
  private nextSid: number;

  constructor(
    readonly dialect: Dialect,
    flavor: 'mariadb' | 'mysql' | 'postgres',
    private readonly rand: Rng,
    firstSid = 1,
  ) {
    this.columns = columnDefs(dialect, flavor);
    this.smallColumns = this.columns.filter((c) => !c.big && !['tenant_id', 'k', 'sid'].includes(c.name)).map((c) => c.name);
    this.nextSid = firstSid;
  }

  /** The sid the next freshSid() gives: where a later factory must start. */
  get sidCounter(): number {
    return this.nextSid;
  }

  /** A sid no row has ever had. */
  freshSid(): Cell {
    const s = scrambleSid(this.nextSid++);
    return { param: s, text: s };
  }

  /** A whole new row under (tenant, k); large values with probability pBig. */
  newRow(tenant: number, k: string, pBig: number): Cells {
    const cells: Cells = new Map();
    cells.set('tenant_id', { param: tenant, text: String(tenant) });
    cells.set('k', { param: k, text: k });
    cells.set('sid', this.freshSid());
    for (const c of this.smallColumns) cells.set(c, small(this.rand, this.dialect, c));
    const big = this.rand() < pBig;
    cells.set('big_text', bigText(this.rand, big && this.rand() < 0.8));
    cells.set('big_bin', bigBinary(this.rand, big && this.rand() < 0.8));
    if (big && !isBigRow(rowOfCells(cells))) cells.set('big_text', bigText(this.rand, true));
    return cells;
  }

  /** 1-4 ordinary columns with new values (NULLs included); never a large one. */
  smallChanges(): Cells {
    const cells: Cells = new Map();
    const n = int(this.rand, 1, 4);
    for (let i = 0; i < n; i++) {
      const c = this.smallColumns[int(this.rand, 0, this.smallColumns.length - 1)]!;
      cells.set(c, small(this.rand, this.dialect, c));
    }
    return cells;
  }

  /** New large values for one or both large columns (sometimes NULL or small). */
  bigChanges(both: boolean): Cells {
    const cells: Cells = new Map();
    const which = both ? [...BIG_COLUMNS] : [BIG_COLUMNS[int(this.rand, 0, 1)]!];
    for (const c of which) {
      const large = this.rand() < 0.85;
      cells.set(c, c === 'big_text' ? bigText(this.rand, large) : bigBinary(this.rand, large));
    }
    return cells;
  }
}

// ---------------------------------------------------------------------------
// SQL

export interface Sql {
  sql: string;
  params: unknown[];
}

export class Statements {
  private readonly t: string;
  private readonly selectList: string;

  constructor(
    private readonly d: Dialect,
    table: string,
    readonly columns: ColumnDef[],
  ) {
    this.t = quoteIdent(d, table);
    this.selectList = columns.map((c) => `${textExpr(d, c)} AS ${quoteIdent(d, c.name)}`).join(', ');
  }

  private q(c: string): string {
    return quoteIdent(this.d, c);
  }

  private whereKey(row: Row, first: number): { sql: string; params: unknown[] } {
    return { sql: `${this.q('tenant_id')} = ${ph(this.d, first)} AND ${this.q('k')} = ${ph(this.d, first + 1)}`, params: [Number(row.tenant_id), row.k] };
  }

  insert(rows: Cells[]): Sql {
    const cols = [...rows[0]!.keys()];
    const params: unknown[] = [];
    const tuples = rows.map((cells) => `(${cols.map((c) => (params.push(cells.get(c)!.param), ph(this.d, params.length))).join(', ')})`);
    return { sql: `INSERT INTO ${this.t} (${cols.map((c) => this.q(c)).join(', ')}) VALUES ${tuples.join(', ')}`, params };
  }

  update(key: Row, set: Cells): Sql {
    const params: unknown[] = [];
    const sets = [...set].map(([c, v]) => (params.push(v.param), `${this.q(c)} = ${ph(this.d, params.length)}`));
    const w = this.whereKey(key, params.length + 1);
    return { sql: `UPDATE ${this.t} SET ${sets.join(', ')} WHERE ${w.sql}`, params: [...params, ...w.params] };
  }

  delete(key: Row): Sql {
    const w = this.whereKey(key, 1);
    return { sql: `DELETE FROM ${this.t} WHERE ${w.sql}`, params: w.params };
  }

  select(key: Row): Sql {
    const w = this.whereKey(key, 1);
    return { sql: `SELECT ${this.selectList} FROM ${this.t} WHERE ${w.sql}`, params: w.params };
  }

  /** All rows in sid order after `afterSid` (keyset paging on a column unique in every version of the table). */
  page(table: string, afterSid: string | null, limit: number): Sql {
    // Qualified: a bare `sid` in ORDER BY would name the text alias and sort as strings.
    const sid = `${quoteIdent(this.d, table)}.${this.q('sid')}`;
    const where = afterSid === null ? '' : `WHERE ${sid} > ${this.d === 'mysql' ? 'CAST(? AS SIGNED)' : '$1::bigint'}`;
    return { sql: `SELECT ${this.selectList} FROM ${quoteIdent(this.d, table)} ${where} ORDER BY ${sid} LIMIT ${limit}`, params: afterSid === null ? [] : [afterSid] };
  }
}

/** Reads a result row (every column already text) into a model row. */
export function readRow(columns: ColumnDef[], r: Record<string, unknown>): Row {
  const row: Row = {};
  for (const c of columns) {
    const v = r[c.name];
    row[c.name] = v === null || v === undefined ? null : Buffer.isBuffer(v) ? v.toString('utf8') : String(v);
  }
  return row;
}

// ---------------------------------------------------------------------------
// Seeding

export interface SeedPlan {
  tenants: number;
  /** Key families to seed; each gets several variants of its stem in one or two tenants. */
  families: number;
  /** Share of rows with ~50 KB values. */
  pBig: number;
}

/** Variants each seeded family gets: case, trailing space, 4-byte prefix, NFD (the rest are left for inserts). */
const SEED_VARIANTS = [0, 1, 2, 4, 6, 3];

/**
 * Fills the table (which must be empty) and returns the model of it. Family f
 * lives in tenant 1 + f % tenants; every seventh family also in the next tenant,
 * so equal k values exist under different tenants.
 */
export async function seedTable(db: Db, factory: RowFactory, statements: Statements, plan: SeedPlan): Promise<AdvModel> {
  const rows: Row[] = [];
  let batch: Cells[] = [];
  let bytes = 0;
  const flush = async () => {
    if (!batch.length) return;
    const { sql, params } = statements.insert(batch);
    await db.exec(sql, params);
    batch = [];
    bytes = 0;
  };
  for (let f = 0; f < plan.families; f++) {
    const tenants = [1 + (f % plan.tenants), ...(f % 7 === 0 ? [1 + ((f + 1) % plan.tenants)] : [])];
    for (const tenant of tenants) {
      const seen = new Set<string>();
      for (const v of SEED_VARIANTS.slice(0, 4 + (f % 3))) {
        const k = keyText(f, v);
        if (seen.has(k)) continue;
        seen.add(k);
        const cells = factory.newRow(tenant, k, plan.pBig);
        rows.push(rowOfCells(cells));
        batch.push(cells);
        bytes += ((cells.get('big_text')!.param as string | null)?.length ?? 0) + ((cells.get('big_bin')!.param as Buffer | null)?.length ?? 0);
        if (batch.length >= 250 || bytes > 2_000_000) await flush();
      }
    }
  }
  await flush();
  if (db.dialect === 'postgres') await db.exec('ANALYZE');
  if (rows.length !== new Set(rows.map((r) => keyOf(r.tenant_id!, r.k!))).size) throw new Error('seed produced duplicate keys');
  return new AdvModel(rows);
}
