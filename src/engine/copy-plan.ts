// Which columns carry data across, and which key the copy walks. Pure logic over
// what the inspector found in the original and in the (preview of the) shadow.

import type { AlterAnalysis, ColumnMap, CopyPlan, IndexInfo, TableInfo } from '../dialects/dialect.js';

export type CopyPlanResult = { plan: CopyPlan } | { plan: null; reason: string };

/**
 * A column's data follows it to the shadow when the shadow has a non-generated
 * column of the name it ends up with. A column the ALTER drops and adds again
 * under the same name starts empty: its old data is not what the user asked for.
 */
export function mapColumns(original: TableInfo, shadow: TableInfo, alter: AlterAnalysis): ColumnMap[] {
  const shadowColumns = new Map(shadow.columns.map((c) => [c.name.toLowerCase(), c]));
  const maps: ColumnMap[] = [];
  for (const column of original.columns) {
    if (column.generated) continue;
    const lower = column.name.toLowerCase();
    const renamedTo = [...alter.renamedColumns].find(([from]) => from.toLowerCase() === lower)?.[1];
    const dropped = [...alter.droppedColumns].some((d) => d.toLowerCase() === lower);
    if (dropped && !renamedTo) continue;
    const targetName = renamedTo ?? column.name;
    const target = shadowColumns.get(targetName.toLowerCase());
    if (!target || target.generated) continue;
    maps.push({ source: column.name, target: target.name });
  }
  return maps;
}

function sameColumns(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((c, i) => c.toLowerCase() === b[i]!.toLowerCase());
}

function allNotNull(table: TableInfo, columns: string[]): boolean {
  return columns.every((name) => table.columns.find((c) => c.name.toLowerCase() === name.toLowerCase())?.nullable === false);
}

/** Unique indexes of `table` whose columns are all NOT NULL, primary key first. */
function usableUniqueIndexes(table: TableInfo): IndexInfo[] {
  return table.indexes
    .filter((i) => i.unique && allNotNull(table, i.columns))
    .sort((a, b) => Number(b.primary) - Number(a.primary) || a.columns.length - b.columns.length);
}

/**
 * The key must identify a row the same way in both tables: unique and NOT NULL in
 * the original, and (after renames) unique and NOT NULL in the shadow, with every
 * column carried across unchanged in name mapping.
 */
export function chooseSharedKey(original: TableInfo, shadow: TableInfo, columns: ColumnMap[]): ColumnMap[] | null {
  const targetOf = new Map(columns.map((c) => [c.source.toLowerCase(), c.target]));
  const shadowUnique = usableUniqueIndexes(shadow);
  for (const index of usableUniqueIndexes(original)) {
    const targets = index.columns.map((c) => targetOf.get(c.toLowerCase()));
    if (targets.some((t) => t === undefined)) continue;
    if (shadowUnique.some((s) => sameColumns(s.columns, targets as string[]))) {
      return index.columns.map((source, i) => ({ source, target: targets[i]! }));
    }
  }
  return null;
}

/** Unique indexes of the shadow that nothing unique in the original guarantees. */
export function newUniqueIndexes(original: TableInfo, shadow: TableInfo, columns: ColumnMap[]): string[] {
  const targetOf = new Map(columns.map((c) => [c.source.toLowerCase(), c.target]));
  const originalUnique = original.indexes
    .filter((i) => i.unique)
    .map((i) => i.columns.map((c) => targetOf.get(c.toLowerCase()) ?? `\u0000${c}`));
  return shadow.indexes
    .filter((s) => s.unique && !originalUnique.some((cols) => sameColumns(cols, s.columns)))
    .map((s) => s.name);
}

export function buildCopyPlan(original: TableInfo, shadow: TableInfo, alter: AlterAnalysis): CopyPlanResult {
  const columns = mapColumns(original, shadow, alter);
  const key = chooseSharedKey(original, shadow, columns);
  if (!key) {
    return {
      plan: null,
      reason:
        'the original and the altered table share no primary key or NOT NULL unique key, so rows cannot be matched between them; ' +
        'keep the primary key (or a NOT NULL unique key) in the ALTER, or add one to the table first',
    };
  }
  return { plan: { original, shadow, key, columns, newUniqueIndexes: newUniqueIndexes(original, shadow, columns) } };
}
