import { describe, it, expect } from 'vitest';
import { buildCopyPlan, mapColumns } from '../../src/engine/copy-plan.js';
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
