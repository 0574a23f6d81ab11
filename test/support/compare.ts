// Exact comparisons, row by row and column by column, for both dialects:
//  - compareWithModel: a workload table against its WorkloadModel;
//  - compareTables: two tables (original vs shadow) over their shared columns.
// Every value is read as the server's text (CAST AS CHAR / ::text) or as
// upper-case hex for binary types: never through a JS number or Date.

import { columnTextExpr, isIntegerType, primaryKeyColumns, quoteIdent, tableColumns, withDb, type Db } from './db.js';
import { normalizeDatetime, WORKLOAD_COLUMNS, type WorkloadColumn, type WorkloadModel, type WorkloadRow } from './workload/index.js';

export interface RowDiff {
  /** The row's key: the id for a model comparison, JSON of the key column values for two tables. */
  key: string;
  /** missing: expected (or in table A) but not there; extra: there but not expected (not in A); value: a column differs. */
  kind: 'missing' | 'extra' | 'value';
  column?: string;
  expected?: string | null;
  actual?: string | null;
  note?: string;
}

export interface CompareOptions {
  /** How many differences to keep in `diffs` (all are counted in diffCount). Default 20. */
  limit?: number;
  /** Rows fetched per query. Default 5000. */
  batchSize?: number;
}

export interface ModelCompareResult {
  equal: boolean;
  /** Rows found in the table. */
  tableRows: number;
  /** Rows the model requires (state present). */
  expectedRows: number;
  /** Ids whose state is unknown (each accepted in any of its candidate states). */
  unknownIds: number;
  diffCount: number;
  diffs: RowDiff[];
  columns: string[];
}

export interface ModelCompareOptions extends CompareOptions {
  /** Model columns to compare (id is always the key). Default: all; a missing column is an error. */
  columns?: WorkloadColumn[];
}

function pushDiff(list: RowDiff[], limit: number, d: RowDiff): void {
  if (list.length < limit) list.push(d);
}

function text(v: unknown): string | null {
  if (v === null || v === undefined) return null;
  return typeof v === 'string' ? v : Buffer.isBuffer(v) ? v.toString('utf8') : String(v);
}

function intLiteral(v: string): string {
  if (!/^-?\d+$/.test(v)) throw new Error(`not an integer key value: ${v}`);
  return v;
}

/** Compares a workload table with its model, exactly. */
export async function compareWithModel(target: string | Db, table: string, model: WorkloadModel, options: ModelCompareOptions = {}): Promise<ModelCompareResult> {
  const limit = options.limit ?? 20;
  const batch = options.batchSize ?? 5000;
  const wanted = (options.columns ?? [...WORKLOAD_COLUMNS]).filter((c) => c !== 'id');
  return withDb(target, async (db) => {
    const d = db.dialect;
    const types = new Map((await tableColumns(db, table)).map((c) => [c.name, c.dataType]));
    if (types.size === 0) throw new Error(`table ${table} not found`);
    const missingCols = ['id', ...wanted].filter((c) => !types.has(c));
    if (missingCols.length) throw new Error(`table ${table} lacks model column(s) ${missingCols.join(', ')}; pass options.columns to compare fewer`);
    const cols = ['id', ...wanted] as WorkloadColumn[];
    const select = cols.map((c, i) => `${columnTextExpr(d, c, types.get(c)!)} AS c${i}`).join(', ');
    const t = quoteIdent(d, table);
    const idq = quoteIdent(d, 'id');

    const diffs: RowDiff[] = [];
    let diffCount = 0;
    let tableRows = 0;
    const diff = (x: RowDiff) => {
      diffCount++;
      pushDiff(diffs, limit, x);
    };
    const readRow = (r: Record<string, unknown>): WorkloadRow => {
      const row: Partial<Record<WorkloadColumn, string | null>> = {};
      cols.forEach((c, i) => {
        const v = text(r[`c${i}`]);
        row[c] = c === 'created_at' && v !== null ? normalizeDatetime(v) : v;
      });
      return row as WorkloadRow;
    };
    const columnDiffs = (expected: WorkloadRow, actual: WorkloadRow): RowDiff[] =>
      cols
        .filter((c) => expected[c] !== actual[c])
        .map((c) => ({ key: actual.id, kind: 'value' as const, column: c, expected: expected[c], actual: actual[c] }));

    const expectedIds = model.candidateIds();
    let nextExpected = expectedIds.next();
    /** Handles an expected id with no row in the table. */
    const noRow = (id: number) => {
      const s = model.get(id);
      if (s.kind === 'present') diff({ key: String(id), kind: 'missing' });
      else if (s.kind === 'unknown' && !s.candidates.includes(null)) diff({ key: String(id), kind: 'missing', note: 'outcome unknown, but every candidate has a row' });
    };

    let last: string | null = null;
    for (;;) {
      const where: string = last === null ? '' : `WHERE ${idq} > ${intLiteral(last)}`;
      const rows: Record<string, unknown>[] = await db.query<Record<string, unknown>>(`SELECT ${select} FROM ${t} ${where} ORDER BY ${idq} LIMIT ${batch}`);
      for (const r of rows) {
        const actual = readRow(r);
        tableRows++;
        const id = BigInt(actual.id);
        while (!nextExpected.done && BigInt(nextExpected.value) < id) {
          noRow(nextExpected.value);
          nextExpected = expectedIds.next();
        }
        if (!nextExpected.done && BigInt(nextExpected.value) === id) nextExpected = expectedIds.next();
        const s = id <= BigInt(Number.MAX_SAFE_INTEGER) && id >= 0n ? model.get(Number(id)) : ({ kind: 'absent' } as const);
        if (s.kind === 'absent') diff({ key: actual.id, kind: 'extra' });
        else if (s.kind === 'present') for (const x of columnDiffs(s.row, actual)) diff(x);
        else {
          const rowsOk = s.candidates.filter((c): c is WorkloadRow => c !== null);
          if (rowsOk.length === 0) diff({ key: actual.id, kind: 'extra', note: 'outcome unknown, but no candidate has a row' });
          else if (!rowsOk.some((c) => columnDiffs(c, actual).length === 0)) {
            for (const x of columnDiffs(rowsOk[0]!, actual)) diff({ ...x, note: 'outcome unknown; matches no candidate' });
          }
        }
      }
      if (rows.length < batch) break;
      last = readRow(rows[rows.length - 1]!).id;
    }
    while (!nextExpected.done) {
      noRow(nextExpected.value);
      nextExpected = expectedIds.next();
    }
    const counts = model.counts();
    return { equal: diffCount === 0, tableRows, expectedRows: counts.present, unknownIds: counts.unknown, diffCount, diffs, columns: cols };
  });
}

export interface TableCompareOptions extends CompareOptions {
  /** Columns to compare (default: every column the two tables share, in A's order). */
  columns?: string[];
  /** Key columns (default: A's primary key). They must exist in both tables. */
  keyColumns?: string[];
}

export interface TableCompareResult {
  equal: boolean;
  rowsA: number;
  rowsB: number;
  diffCount: number;
  diffs: RowDiff[];
  /** Columns compared. */
  columns: string[];
  keyColumns: string[];
  /** Columns only in A / only in B (not compared). */
  onlyInA: string[];
  onlyInB: string[];
}

/**
 * Compares table A (e.g. the original) with table B (e.g. the shadow) over
 * their shared columns, exactly. Rows are matched by key: A is read in key
 * order in batches, and B is read over the same key range, so no ordering is
 * ever done in JS. 'missing' = in A, not in B; 'extra' = in B, not in A.
 */
export async function compareTables(target: string | Db, tableA: string, tableB: string, options: TableCompareOptions = {}): Promise<TableCompareResult> {
  const limit = options.limit ?? 20;
  const batch = options.batchSize ?? 5000;
  return withDb(target, async (db) => {
    const d = db.dialect;
    const colsA = await tableColumns(db, tableA);
    const colsB = await tableColumns(db, tableB);
    if (colsA.length === 0) throw new Error(`table ${tableA} not found`);
    if (colsB.length === 0) throw new Error(`table ${tableB} not found`);
    const typeA = new Map(colsA.map((c) => [c.name, c.dataType]));
    const typeB = new Map(colsB.map((c) => [c.name, c.dataType]));
    const shared = colsA.map((c) => c.name).filter((c) => typeB.has(c));
    const columns = options.columns ?? shared;
    for (const c of columns) if (!typeA.has(c) || !typeB.has(c)) throw new Error(`column ${c} is not in both ${tableA} and ${tableB}`);
    const keyColumns = options.keyColumns ?? (await primaryKeyColumns(db, tableA));
    if (keyColumns.length === 0) throw new Error(`${tableA} has no primary key: pass keyColumns`);
    for (const k of keyColumns) if (!typeA.has(k) || !typeB.has(k)) throw new Error(`key column ${k} is not in both tables`);

    const selectFor = (types: Map<string, string>) =>
      [...keyColumns.map((k, i) => `${columnTextExpr(d, k, types.get(k)!)} AS k${i}`), ...columns.map((c, i) => `${columnTextExpr(d, c, types.get(c)!)} AS c${i}`)].join(', ');
    const selA = selectFor(typeA);
    const selB = selectFor(typeB);
    const keyList = keyColumns.map((k) => quoteIdent(d, k)).join(', ');
    const keyTuple = keyColumns.length === 1 ? keyList : `(${keyList})`;

    /** A key bound: inline integer literals; bind everything else as its text (hex for binary). */
    const bound = (types: Map<string, string>, values: string[], params: unknown[]): string => {
      const parts = keyColumns.map((k, i) => {
        const type = types.get(k)!;
        const v = values[i]!;
        if (isIntegerType(type)) return intLiteral(v);
        params.push(v);
        const p = d === 'mysql' ? '?' : `$${params.length}`;
        const binary = columnTextExpr(d, k, type).startsWith(d === 'mysql' ? 'HEX(' : 'upper(encode(');
        return binary ? (d === 'mysql' ? `UNHEX(${p})` : `decode(${p}, 'hex')`) : p;
      });
      return parts.length === 1 ? parts[0]! : `(${parts.join(', ')})`;
    };
    const keyOf = (r: Record<string, unknown>) => keyColumns.map((_, i) => text(r[`k${i}`]) ?? '');
    const vals = (r: Record<string, unknown>) => columns.map((_, i) => text(r[`c${i}`]));

    const diffs: RowDiff[] = [];
    let diffCount = 0;
    const diff = (x: RowDiff) => {
      diffCount++;
      pushDiff(diffs, limit, x);
    };
    let rowsA = 0;
    let rowsB = 0;
    const qa = quoteIdent(d, tableA);
    const qb = quoteIdent(d, tableB);

    let last: string[] | null = null;
    for (;;) {
      const pa: unknown[] = [];
      const whereA = last ? `WHERE ${keyTuple} > ${bound(typeA, last, pa)}` : '';
      const rows = await db.query<Record<string, unknown>>(`SELECT ${selA} FROM ${qa} ${whereA} ORDER BY ${keyList} LIMIT ${batch}`, pa);
      if (rows.length === 0) {
        // A is exhausted: whatever B has beyond A's last key is extra.
        const pb: unknown[] = [];
        const rest = await db.query<Record<string, unknown>>(`SELECT ${selB} FROM ${qb} ${last ? `WHERE ${keyTuple} > ${bound(typeB, last, pb)}` : ''} ORDER BY ${keyList}`, pb);
        rowsB += rest.length;
        for (const r of rest) diff({ key: JSON.stringify(keyOf(r)), kind: 'extra' });
        break;
      }
      rowsA += rows.length;
      const upper = keyOf(rows[rows.length - 1]!);
      const pb: unknown[] = [];
      const conds = [...(last ? [`${keyTuple} > ${bound(typeB, last, pb)}`] : []), ...(rows.length === batch ? [`${keyTuple} <= ${bound(typeB, upper, pb)}`] : [])];
      const rowsInB = await db.query<Record<string, unknown>>(`SELECT ${selB} FROM ${qb} ${conds.length ? 'WHERE ' + conds.join(' AND ') : ''} ORDER BY ${keyList}`, pb);
      rowsB += rowsInB.length;
      const byKey = new Map<string, Record<string, unknown>>();
      for (const r of rowsInB) byKey.set(JSON.stringify(keyOf(r)), r);
      for (const r of rows) {
        const k = JSON.stringify(keyOf(r));
        const other = byKey.get(k);
        if (!other) {
          diff({ key: k, kind: 'missing' });
          continue;
        }
        byKey.delete(k);
        const va = vals(r);
        const vb = vals(other);
        columns.forEach((c, i) => {
          if (va[i] !== vb[i]) diff({ key: k, kind: 'value', column: c, expected: va[i], actual: vb[i] });
        });
      }
      for (const k of byKey.keys()) diff({ key: k, kind: 'extra' });
      if (rows.length < batch) break;
      last = upper;
    }
    return {
      equal: diffCount === 0,
      rowsA,
      rowsB,
      diffCount,
      diffs,
      columns,
      keyColumns,
      onlyInA: colsA.map((c) => c.name).filter((c) => !typeB.has(c)),
      onlyInB: colsB.map((c) => c.name).filter((c) => !typeA.has(c)),
    };
  });
}

/** A readable summary of differences, for assertion messages. */
export function formatDiffs(result: { diffCount: number; diffs: RowDiff[] }): string {
  if (result.diffCount === 0) return 'no differences';
  const lines = result.diffs.map((x) =>
    x.kind === 'value'
      ? `  ${x.key} ${x.column}: expected ${JSON.stringify(x.expected)}, got ${JSON.stringify(x.actual)}${x.note ? ` (${x.note})` : ''}`
      : `  ${x.key} ${x.kind}${x.note ? ` (${x.note})` : ''}`,
  );
  return `${result.diffCount} difference(s), first ${result.diffs.length}:\n${lines.join('\n')}`;
}
