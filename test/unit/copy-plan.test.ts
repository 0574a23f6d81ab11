import { describe, it, expect } from 'vitest';
import { buildCopyPlan, mapColumns } from '../../src/engine/copy-plan.js';
import { mysqlComparison } from '../../src/dialects/mysql/mysql-comparison.js';
import type { AlterAnalysis, ColumnInfo, IndexInfo, TableInfo } from '../../src/dialects/dialect.js';

function col(name: string, opts: Partial<ColumnInfo> = {}): ColumnInfo {
  return { name, type: 'int', nullable: false, generated: false, ...opts };
}
function table(columns: ColumnInfo[], indexes: IndexInfo[]): TableInfo {
  return { ref: { schema: 's', name: 't' }, columns, indexes, estimatedRows: 0, estimatedBytes: 0, foreignKeys: [], referencedBy: [], triggers: [] };
}
const pk = (cols: string[]): IndexInfo => ({ name: 'PRIMARY', columns: cols, unique: true, primary: true });
const uk = (name: string, cols: string[]): IndexInfo => ({ name, columns: cols, unique: true, primary: false });
function analysis(a: Partial<AlterAnalysis> = {}): AlterAnalysis {
  return { renamedColumns: new Map(), droppedColumns: new Set(), addedColumns: new Set(), renamesTable: false, ...a };
}

describe('mapColumns', () => {
  const original = table([col('id'), col('a'), col('b'), col('g', { generated: true })], [pk(['id'])]);
  it('carries shared columns and skips generated ones', () => {
    const shadow = table([col('id'), col('a'), col('b'), col('g', { generated: true }), col('new')], [pk(['id'])]);
    expect(mapColumns(original, shadow, analysis())).toEqual([
      { source: 'id', target: 'id' },
      { source: 'a', target: 'a' },
      { source: 'b', target: 'b' },
    ]);
  });
  it('follows a rename', () => {
    const shadow = table([col('id'), col('alpha'), col('b')], [pk(['id'])]);
    expect(mapColumns(original, shadow, analysis({ renamedColumns: new Map([['a', 'alpha']]) }))).toContainEqual({ source: 'a', target: 'alpha' });
  });
  it('does not carry data of a column dropped and added again under the same name', () => {
    const shadow = table([col('id'), col('a'), col('b')], [pk(['id'])]);
    const maps = mapColumns(original, shadow, analysis({ droppedColumns: new Set(['a']), addedColumns: new Set(['a']) }));
    expect(maps.map((m) => m.source)).toEqual(['id', 'b']);
  });
  it('keeps columns differing only in case apart where names are case-sensitive (PostgreSQL), and folds them on MySQL', () => {
    const cased = table([col('id'), col('Note'), col('note')], [pk(['id'])]);
    const plan = buildCopyPlan(cased, cased, analysis(), { columnNamesIgnoreCase: false }).plan;
    expect(plan?.columns).toEqual([
      { source: 'id', target: 'id' },
      { source: 'Note', target: 'Note' },
      { source: 'note', target: 'note' },
    ]);
    const mysqlShadow = table([col('ID'), col('NOTE')], [pk(['ID'])]);
    expect(mapColumns(table([col('id'), col('note')], [pk(['id'])]), mysqlShadow, analysis())).toEqual([
      { source: 'id', target: 'ID' },
      { source: 'note', target: 'NOTE' },
    ]);
  });
});

describe('buildCopyPlan', () => {
  it('uses the primary key when both tables have it', () => {
    const t = table([col('id'), col('a')], [pk(['id'])]);
    const r = buildCopyPlan(t, t, analysis());
    expect(r.plan?.key).toEqual([{ source: 'id', target: 'id' }]);
    expect(r.plan?.newUniqueIndexes).toEqual([]);
  });
  it('falls back to a shared NOT NULL unique key when the primary key changes', () => {
    const original = table([col('id'), col('uuid')], [pk(['id']), uk('u_uuid', ['uuid'])]);
    const shadow = table([col('id'), col('uuid')], [pk(['uuid']), uk('u_id', ['id'])]);
    expect(buildCopyPlan(original, shadow, analysis()).plan?.key).toEqual([{ source: 'id', target: 'id' }]);
    const shadow2 = table([col('id'), col('uuid')], [pk(['uuid'])]);
    expect(buildCopyPlan(original, shadow2, analysis()).plan?.key).toEqual([{ source: 'uuid', target: 'uuid' }]);
  });
  it('refuses a nullable unique key and explains why', () => {
    const original = table([col('id'), col('email', { nullable: true })], [uk('u_email', ['email'])]);
    const r = buildCopyPlan(original, original, analysis());
    expect(r.plan).toBeNull();
    expect(r.plan === null && r.reason).toMatch(/no primary key or NOT NULL unique key/);
  });
  it('lists unique indexes only the shadow enforces', () => {
    const original = table([col('id'), col('email')], [pk(['id'])]);
    const shadow = table([col('id'), col('email')], [pk(['id']), uk('u_email', ['email'])]);
    expect(buildCopyPlan(original, shadow, analysis()).plan?.newUniqueIndexes).toEqual(['u_email']);
  });
  it('a renamed key column still matches', () => {
    const original = table([col('id'), col('a')], [pk(['id'])]);
    const shadow = table([col('ident'), col('a')], [pk(['ident'])]);
    const r = buildCopyPlan(original, shadow, analysis({ renamedColumns: new Map([['id', 'ident']]) }));
    expect(r.plan?.key).toEqual([{ source: 'id', target: 'ident' }]);
  });
});

describe('unique keys the ALTER weakens', () => {
  const as = (rule: string, precision?: number): Partial<ColumnInfo> => ({ comparison: { rule, ...(precision === undefined ? {} : { precision }) } });
  const bin = as('collation utf8mb4_bin');
  const ci = as('collation utf8mb4_general_ci');
  const prefixed = (name: string, cols: string[], prefixLengths: Array<number | null>): IndexInfo => ({ ...uk(name, cols), prefixLengths });
  /** Original and shadow: id PK, `u` unique over `code`, with the given descriptions of code. */
  function codeTables(before: Partial<ColumnInfo>, after: Partial<ColumnInfo>, indexes: [IndexInfo, IndexInfo] = [uk('u', ['code']), uk('u', ['code'])]) {
    const original = table([col('id', as('integer')), col('code', before)], [pk(['id']), indexes[0]]);
    const shadow = table([col('id', as('integer')), col('code', after)], [pk(['id']), indexes[1]]);
    return buildCopyPlan(original, shadow, analysis()).plan!;
  }

  it('widening keeps a key enforced: one integer rule, same collation, more scale, more fractional seconds, a longer or no prefix', () => {
    expect(codeTables(as('integer'), as('integer')).newUniqueIndexes).toEqual([]);
    expect(codeTables(bin, bin).newUniqueIndexes).toEqual([]);
    expect(codeTables(as('decimal', 2), as('decimal', 4)).newUniqueIndexes).toEqual([]);
    expect(codeTables(as('datetime', 0), as('datetime', 6)).newUniqueIndexes).toEqual([]);
    expect(codeTables(as('numeric', 2), as('numeric')).newUniqueIndexes).toEqual([]);
    expect(codeTables(bin, bin, [prefixed('u', ['code'], [10]), prefixed('u', ['code'], [20])]).newUniqueIndexes).toEqual([]);
    expect(codeTables(bin, bin, [prefixed('u', ['code'], [10]), prefixed('u', ['code'], [null])]).newUniqueIndexes).toEqual([]);
  });

  it('a collation change makes the key new, and says how', () => {
    const plan = codeTables(bin, ci);
    expect(plan.key).toEqual([{ source: 'id', target: 'id' }]);
    expect(plan.newUniqueIndexes).toEqual(['u']);
    expect(plan.weakenedUniqueIndexes).toEqual([{ name: 'u', originalName: 'u', change: 'how code compares (collation utf8mb4_bin → utf8mb4_general_ci)' }]);
  });

  it('a binary collation of the same character set keeps the key (finer), not across pad attributes or character sets', () => {
    const mysql = (collation: string): Partial<ColumnInfo> => ({ comparison: mysqlComparison('varchar(16)', collation) });
    const finer = codeTables(mysql('utf8mb4_general_ci'), mysql('utf8mb4_bin'));
    expect(finer.newUniqueIndexes).toEqual([]);
    expect(codeTables(mysql('utf8mb4_nopad_general_ci'), mysql('utf8mb4_nopad_bin')).newUniqueIndexes).toEqual([]);
    expect(codeTables(mysql('utf8mb4_general_ci'), mysql('utf8mb4_nopad_bin')).newUniqueIndexes).toEqual([]);
    // 'a' and 'a ' are two values under NO PAD, one under utf8mb4_bin.
    expect(codeTables(mysql('utf8mb4_nopad_general_ci'), mysql('utf8mb4_bin')).weakenedUniqueIndexes?.[0]?.change).toBe(
      'how code compares (collation utf8mb4_nopad_general_ci → utf8mb4_bin)',
    );
    expect(codeTables(mysql('latin1_swedish_ci'), mysql('utf8mb4_bin')).newUniqueIndexes).toEqual(['u']);
    expect(codeTables(mysql('utf8mb4_bin'), mysql('utf8mb4_general_ci')).newUniqueIndexes).toEqual(['u']);
  });

  it('narrowing makes the key new: less scale, fewer fractional seconds, a shorter prefix, another type family', () => {
    expect(codeTables(as('decimal', 4), as('decimal', 2)).weakenedUniqueIndexes?.[0]?.change).toBe('how precisely code compares (decimal, precision 4 → 2)');
    expect(codeTables(as('datetime', 6), as('datetime', 0)).newUniqueIndexes).toEqual(['u']);
    expect(codeTables(as('numeric'), as('numeric', 2)).weakenedUniqueIndexes?.[0]?.change).toBe('how precisely code compares (numeric, precision full → 2)');
    expect(codeTables(bin, bin, [prefixed('u', ['code'], [20]), prefixed('u', ['code'], [10])]).weakenedUniqueIndexes?.[0]?.change).toBe(
      'how much of code the key compares (index prefix 20 → 10)',
    );
    expect(codeTables(bin, bin, [uk('u', ['code']), prefixed('u', ['code'], [10])]).newUniqueIndexes).toEqual(['u']);
    expect(codeTables(as('datetime', 0), as('timestamp', 0)).newUniqueIndexes).toEqual(['u']);
  });

  it('without a description from the dialect, any change of the type text is a new rule', () => {
    expect(codeTables({ type: 'varchar(10)' }, { type: 'varchar(10)' }).newUniqueIndexes).toEqual([]);
    expect(codeTables({ type: 'varchar(10)' }, { type: 'varchar(20)' }).newUniqueIndexes).toEqual(['u']);
  });

  it('an integer primary key widened to BIGINT stays the copy key', () => {
    const original = table([col('id', as('integer')), col('v')], [pk(['id'])]);
    const shadow = table([col('id', { type: 'bigint', ...as('integer') }), col('v')], [pk(['id'])]);
    const plan = buildCopyPlan(original, shadow, analysis()).plan!;
    expect(plan.key).toEqual([{ source: 'id', target: 'id' }]);
    expect(plan.newUniqueIndexes).toEqual([]);
  });

  it('a weakened primary key is never the copy key: another shared key is used, and PRIMARY becomes a new key', () => {
    const original = table([col('code', bin), col('id', as('integer'))], [pk(['code']), uk('u_id', ['id'])]);
    const shadow = table([col('code', ci), col('id', as('integer'))], [pk(['code']), uk('u_id', ['id'])]);
    const plan = buildCopyPlan(original, shadow, analysis()).plan!;
    expect(plan.key).toEqual([{ source: 'id', target: 'id' }]);
    expect(plan.newUniqueIndexes).toEqual(['PRIMARY']);
  });

  it('refuses when the only shared key is weakened, naming the key and the change', () => {
    const original = table([col('code', bin), col('v')], [pk(['code'])]);
    const shadow = table([col('code', ci), col('v')], [pk(['code'])]);
    const r = buildCopyPlan(original, shadow, analysis());
    expect(r.plan).toBeNull();
    expect(r.plan === null && r.reason).toMatch(
      /^the ALTER changes how code compares \(collation utf8mb4_bin → utf8mb4_general_ci\), so PRIMARY is a new unique key and cannot be the copy key: .*keep another primary key or NOT NULL unique key/i,
    );
  });

  it('follows renames when it compares the rules', () => {
    const original = table([col('id', as('integer')), col('code', bin)], [pk(['id']), uk('u', ['code'])]);
    const shadow = table([col('id', as('integer')), col('ref', ci)], [pk(['id']), uk('u', ['ref'])]);
    const plan = buildCopyPlan(original, shadow, analysis({ renamedColumns: new Map([['code', 'ref']]) })).plan!;
    expect(plan.weakenedUniqueIndexes).toEqual([{ name: 'u', originalName: 'u', change: 'how code compares (collation utf8mb4_bin → utf8mb4_general_ci)' }]);
  });
});
