// Reads a version of the adversarial table (the original, the shadow, the table
// after the cut-over) as exact text and compares it with the model, column by
// column. Rows are matched by (tenant_id, k) as JavaScript strings, never by the
// server's collation, so two keys the server would fold together cannot hide
// each other.

import { openDb, type Db } from '../db.js';
import { keyOf, type AdvModel, type Diff, type Row } from './model.js';
import { readRow, Statements } from './rows.js';
import { columnDefs, prepareSession, serverFlavor } from './schema.js';

export interface AdvCompareResult {
  equal: boolean;
  tableRows: number;
  modelRows: number;
  unknownGroups: number;
  /** Unknown outcomes the table shows as committed (the rest as rolled back). */
  unknownCommitted: number;
  diffCount: number;
  diffs: Diff[];
  /** Keys that appear more than once in the table. */
  duplicateKeys: string[];
}

export async function readTable(db: Db, table: string): Promise<{ rows: Map<string, Row>; duplicates: string[] }> {
  const columns = columnDefs(db.dialect, await serverFlavor(db));
  const statements = new Statements(db.dialect, table, columns);
  const rows = new Map<string, Row>();
  const duplicates: string[] = [];
  let after: string | null = null;
  for (;;) {
    const { sql, params } = statements.page(table, after, 2000);
    const page = await db.query<Record<string, unknown>>(sql, params);
    for (const r of page) {
      const row = readRow(columns, r);
      const key = keyOf(row.tenant_id!, row.k!);
      if (rows.has(key)) duplicates.push(key);
      rows.set(key, row);
    }
    if (page.length < 2000) break;
    after = String(page[page.length - 1]!.sid);
  }
  return { rows, duplicates };
}

export async function compareWithAdvModel(url: string, table: string, model: AdvModel): Promise<AdvCompareResult> {
  const db = await openDb(url);
  try {
    await prepareSession(db);
    const { rows, duplicates } = await readTable(db, table);
    const columns = columnDefs(db.dialect, await serverFlavor(db)).map((c) => c.name);
    const { count, diffs, unknownCommitted } = model.diff(rows, columns);
    return {
      equal: count === 0 && duplicates.length === 0,
      tableRows: rows.size,
      modelRows: model.size,
      unknownGroups: model.groups.length,
      unknownCommitted,
      diffCount: count,
      diffs,
      duplicateKeys: duplicates.slice(0, 10),
    };
  } finally {
    await db.close();
  }
}

const clip = (v: string | null | undefined): string => (v === undefined ? '' : JSON.stringify(v && v.length > 80 ? v.slice(0, 80) + '…' : v));

export function formatAdvDiffs(r: AdvCompareResult): string {
  if (r.equal) return 'no differences';
  const lines = r.diffs.map((d) => `  ${d.kind} ${d.key}${d.column ? ` ${d.column}: expected ${clip(d.expected)}, got ${clip(d.actual)}` : ''}${d.note ? ` (${d.note})` : ''}`);
  if (r.duplicateKeys.length) lines.push(`  duplicate keys: ${r.duplicateKeys.join(', ')}`);
  return `${r.diffCount} difference(s) (table ${r.tableRows} rows, model ${r.modelRows} + ${r.unknownGroups} unknown groups), first ${r.diffs.length}:\n${lines.join('\n')}`;
}
