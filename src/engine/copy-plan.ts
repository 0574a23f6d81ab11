// Which columns carry data across, and which key the copy walks. Pure logic over
// what the inspector found in the original and in the (preview of the) shadow.
//
// A unique index of the shadow is enforced by the original only when an original
// unique index has the same columns (after renames) and compares every one of them
// at least as finely: the same equality rule (collation, type family) or a finer one
// (a binary collation of the same character set), a precision
// and an index prefix no narrower. A collation made case-insensitive, a DECIMAL
// scale or a fractional-seconds precision cut, a shorter prefix: each makes values
// the original keeps apart equal in the shadow. Such a key is new (a duplicate on it
// is real data loss, never a row the stream already wrote), and it can never be the
// copy key: the copy and the applier would take two rows of the original for one.

import type { AlterAnalysis, ColumnComparison, ColumnMap, CopyPlan, IndexInfo, TableInfo, WeakenedUniqueIndex } from '../dialects/dialect.js';

export type CopyPlanResult = { plan: CopyPlan } | { plan: null; reason: string };

/** How names compare: MySQL folds column names' case, PostgreSQL does not ("Note" and note are two columns). */
export type NameKey = (name: string) => string;
const foldCase: NameKey = (s) => s.toLowerCase();
const exactCase: NameKey = (s) => s;

/**
 * A column's data follows it to the shadow when the shadow has a non-generated
 * column of the name it ends up with. A column the ALTER drops and adds again
 * under the same name starts empty: its old data is not what the user asked for.
 */
export function mapColumns(original: TableInfo, shadow: TableInfo, alter: AlterAnalysis, k: NameKey = foldCase): ColumnMap[] {
  const shadowColumns = new Map(shadow.columns.map((c) => [k(c.name), c]));
  const maps: ColumnMap[] = [];
  for (const column of original.columns) {
    if (column.generated) continue;
    const name = k(column.name);
    const renamedTo = [...alter.renamedColumns].find(([from]) => k(from) === name)?.[1];
    const dropped = [...alter.droppedColumns].some((d) => k(d) === name);
    if (dropped && !renamedTo) continue;
    const targetName = renamedTo ?? column.name;
    const target = shadowColumns.get(k(targetName));
    if (!target || target.generated) continue;
    maps.push({ source: column.name, target: target.name });
  }
  return maps;
}

function allNotNull(k: NameKey, table: TableInfo, columns: string[]): boolean {
  return columns.every((name) => table.columns.find((c) => k(c.name) === k(name))?.nullable === false);
}

/** Unique indexes of `table` whose columns are all NOT NULL, primary key first. */
function usableUniqueIndexes(k: NameKey, table: TableInfo): IndexInfo[] {
  return table.indexes
    .filter((i) => i.unique && allNotNull(k, table, i.columns))
    .sort((a, b) => Number(b.primary) - Number(a.primary) || a.columns.length - b.columns.length);
}

/** A dialect that does not describe a column's equality gets the conservative answer: any type change is a new rule. */
function comparisonOf(k: NameKey, table: TableInfo, name: string): ColumnComparison {
  const column = table.columns.find((c) => k(c.name) === k(name));
  return column?.comparison ?? { rule: column ? `type ${column.type}` : `expression ${name}` };
}

/** A binary collation replacing another of its character set (utf8mb4_general_ci → utf8mb4_bin) keeps apart all the old one did. */
function sameOrFinerRule(before: ColumnComparison, after: ColumnComparison): boolean {
  return before.rule === after.rule || (before.family !== undefined && (after.finestIn ?? []).includes(before.family));
}

/** Absent precision and a whole-column index part are the finest there is. */
const finest = (n: number | null | undefined): number => n ?? Infinity;

/** `collation a → collation b` reads better as `collation a → b`. */
function ruleChange(before: string, after: string): string {
  const word = /^(\S+) /.exec(before)?.[1];
  return word && after.startsWith(`${word} `) ? `${before} → ${after.slice(word.length + 1)}` : `${before} → ${after}`;
}

/** How the shadow's index compares its i-th column less finely than the original's, or null when it does not. */
function weakeningAt(k: NameKey, original: TableInfo, shadow: TableInfo, from: IndexInfo, to: IndexInfo, i: number): string | null {
  const column = from.columns[i]!;
  const before = comparisonOf(k, original, column);
  const after = comparisonOf(k, shadow, to.columns[i]!);
  if (!sameOrFinerRule(before, after)) return `how ${column} compares (${ruleChange(before.rule, after.rule)})`;
  if (finest(after.precision) < finest(before.precision)) {
    return `how precisely ${column} compares (${before.rule}, precision ${before.precision ?? 'full'} → ${after.precision})`;
  }
  const prefixBefore = from.prefixLengths?.[i] ?? null;
  const prefixAfter = to.prefixLengths?.[i] ?? null;
  if (finest(prefixAfter) < finest(prefixBefore)) {
    return `how much of ${column} the key compares (index prefix ${prefixBefore ?? 'whole column'} → ${prefixAfter})`;
  }
  return null;
}

/**
 * null when `to` is not over the columns `from` covers (after renames); otherwise
 * what makes `to` weaker than `from`, or `weakenedBy: null` when `from` enforces it.
 */
function compareUnique(
  k: NameKey,
  original: TableInfo,
  shadow: TableInfo,
  from: IndexInfo,
  to: IndexInfo,
  targetOf: Map<string, string>,
): { weakenedBy: string | null } | null {
  const targets = from.columns.map((c) => targetOf.get(k(c)));
  if (targets.length !== to.columns.length || targets.some((t, i) => t === undefined || k(t) !== k(to.columns[i]!))) return null;
  const changes = from.columns.map((_, i) => weakeningAt(k, original, shadow, from, to, i)).filter((c): c is string => c !== null);
  return { weakenedBy: changes.length > 0 ? changes.join(' and ') : null };
}

function targetsOf(k: NameKey, columns: ColumnMap[]): Map<string, string> {
  return new Map(columns.map((c) => [k(c.source), c.target]));
}

export interface PlanOptions {
  /** The dialect can match rows on a key the shadow enforces only inside a wider unique index (CopyPlan.keyWithin). */
  containedKeys?: boolean;
  /** Column names differ only when they differ in case too (MySQL); false on PostgreSQL. Default true. */
  columnNamesIgnoreCase?: boolean;
}

const nameKey = (options: PlanOptions): NameKey => (options.columnNamesIgnoreCase === false ? exactCase : foldCase);

export type SharedKeyChoice =
  | { key: ColumnMap[]; within?: string }
  | { key: null; weakened: Array<{ index: string; change: string }> };

/** How the shadow compares `column` (as `target`) less finely than the original, or null. */
function columnWeakening(k: NameKey, original: TableInfo, shadow: TableInfo, column: string, target: string, prefixBefore: number | null, prefixAfter: number | null): string | null {
  const before = comparisonOf(k, original, column);
  const after = comparisonOf(k, shadow, target);
  if (!sameOrFinerRule(before, after)) return `how ${column} compares (${ruleChange(before.rule, after.rule)})`;
  if (finest(after.precision) < finest(before.precision)) return `how precisely ${column} compares`;
  if (finest(prefixAfter) < finest(prefixBefore)) return `how much of ${column} the key compares`;
  return null;
}

/**
 * True when `to` (a unique index of the shadow) contains every column of `from` (a unique,
 * NOT NULL index of the original), each compared at least as finely: a superset of a key
 * is unique wherever the key is, so the original enforces `to` too.
 */
function containsKey(k: NameKey, original: TableInfo, shadow: TableInfo, from: IndexInfo, to: IndexInfo, targetOf: Map<string, string>): boolean {
  if (!allNotNull(k, original, from.columns)) return false;
  return from.columns.every((c, i) => {
    const target = targetOf.get(k(c));
    const at = target === undefined ? -1 : to.columns.findIndex((t) => k(t) === k(target));
    return at >= 0 && columnWeakening(k, original, shadow, c, target!, from.prefixLengths?.[i] ?? null, to.prefixLengths?.[at] ?? null) === null;
  });
}

/**
 * The key must identify a row the same way in both tables: unique and NOT NULL in
 * the original, and (after renames) unique and NOT NULL in the shadow, comparing
 * every column at least as finely. A key the ALTER weakens is reported, not used.
 */
export function chooseSharedKey(original: TableInfo, shadow: TableInfo, columns: ColumnMap[], options: PlanOptions = {}): SharedKeyChoice {
  const k = nameKey(options);
  const targetOf = targetsOf(k, columns);
  const shadowUnique = usableUniqueIndexes(k, shadow);
  const weakened: Array<{ index: string; change: string }> = [];
  const keyOf = (index: IndexInfo) => index.columns.map((source) => ({ source, target: targetOf.get(k(source))! }));
  for (const index of usableUniqueIndexes(k, original)) {
    for (const candidate of shadowUnique) {
      const match = compareUnique(k, original, shadow, index, candidate, targetOf);
      if (!match) continue;
      if (match.weakenedBy === null) return { key: keyOf(index) };
      if (!weakened.some((w) => w.index === index.name)) weakened.push({ index: index.name, change: match.weakenedBy });
    }
  }
  // `DROP PRIMARY KEY, ADD PRIMARY KEY (id, tenant)`: the original's key (id) is unique in
  // the shadow too, inside the wider index; rows match on it where the dialect can.
  if (options.containedKeys) {
    for (const index of usableUniqueIndexes(k, original)) {
      const within = shadowUnique.find((candidate) => containsKey(k, original, shadow, index, candidate, targetOf));
      if (within) return { key: keyOf(index), within: within.name };
    }
  }
  return { key: null, weakened };
}

/** Unique indexes of the shadow that nothing unique in the original guarantees, and which of them the ALTER weakened. */
export function newUniqueIndexes(original: TableInfo, shadow: TableInfo, columns: ColumnMap[], options: PlanOptions = {}): { names: string[]; weakened: WeakenedUniqueIndex[] } {
  const k = nameKey(options);
  const targetOf = targetsOf(k, columns);
  const originalUnique = original.indexes.filter((i) => i.unique);
  const names: string[] = [];
  const weakened: WeakenedUniqueIndex[] = [];
  for (const index of shadow.indexes.filter((i) => i.unique)) {
    let weakenedFrom: WeakenedUniqueIndex | null = null;
    let enforced = false;
    for (const from of originalUnique) {
      if (containsKey(k, original, shadow, from, index, targetOf)) {
        enforced = true; // the same key or a superset of it, compared as finely
        break;
      }
      const match = compareUnique(k, original, shadow, from, index, targetOf);
      if (!match) continue;
      if (match.weakenedBy === null) {
        enforced = true;
        break;
      }
      weakenedFrom ??= { name: index.name, originalName: from.name, change: match.weakenedBy };
    }
    if (enforced) continue;
    names.push(index.name);
    if (weakenedFrom) weakened.push(weakenedFrom);
  }
  return { names, weakened };
}

function noSharedKeyReason(weakened: Array<{ index: string; change: string }>): string {
  if (weakened.length === 0) {
    return (
      'the original and the altered table share no primary key or NOT NULL unique key, so rows cannot be matched between them; ' +
      'keep the primary key (or a NOT NULL unique key) in the ALTER, or add one to the table first'
    );
  }
  const why = weakened.map((w) => `the ALTER changes ${w.change}, so ${w.index} is a new unique key and cannot be the copy key`).join('; ');
  return (
    `${why}: values the original keeps apart may be equal in the altered table, and rows could not be matched between them. ` +
    'Keep another primary key or NOT NULL unique key that compares as before (add one to the table first if there is none), ' +
    'or run this change as a plain (blocking) ALTER TABLE, which checks the new key itself.'
  );
}

export function buildCopyPlan(original: TableInfo, shadow: TableInfo, alter: AlterAnalysis, options: PlanOptions = {}): CopyPlanResult {
  const columns = mapColumns(original, shadow, alter, nameKey(options));
  const choice = chooseSharedKey(original, shadow, columns, options);
  if (!choice.key) return { plan: null, reason: noSharedKeyReason(choice.weakened) };
  const unique = newUniqueIndexes(original, shadow, columns, options);
  return {
    plan: {
      original,
      shadow,
      key: choice.key,
      ...(choice.within ? { keyWithin: choice.within } : {}),
      columns,
      newUniqueIndexes: unique.names,
      ...(unique.weakened.length > 0 ? { weakenedUniqueIndexes: unique.weakened } : {}),
    },
  };
}

/**
 * A revert's plan: the old table may hold columns the live table has no column for (the
 * ALTER dropped them). Their values as of the swap are what a revert can give back, so
 * the writers must keep them (CopyPlan.keepsOtherColumns). Names compare as `options` say.
 */
export function keepingOtherColumns(plan: CopyPlan, options: PlanOptions = {}): CopyPlan {
  const k = nameKey(options);
  const filled = new Set(plan.columns.map((c) => k(c.target)));
  const others = plan.shadow.columns.filter((c) => !c.generated && !filled.has(k(c.name)));
  return others.length > 0 ? { ...plan, keepsOtherColumns: true } : plan;
}
