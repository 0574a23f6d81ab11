// The column swap both built-in operations are made of (rename-column.ts,
// change-column-type.ts), on both dialects:
//
// expand    adds the new column (nullable, no default), and BEFORE INSERT/UPDATE
//           triggers that keep old and new in sync both ways: a write of the old
//           column (old application) sets the new one, a write of the new column
//           (new application) sets the old one.
// backfill  fills the new column of existing rows in key-range batches (the
//           triggers ignore the backfill session's own writes).
// contract  drops the triggers and the old column in one atomic step (PostgreSQL
//           transaction; MySQL LOCK TABLES ... WRITE), then gives the new column
//           the old column's NOT NULL (PostgreSQL: through a validated CHECK) and,
//           for a rename, its default.
// down      drops the triggers and the new column.
//
// Between expand and contract both application versions read and write correctly.
// Not carried over: indexes, foreign keys and CHECK constraints on the old column
// (create them on the new column in the migration's own expand phase).

import { UsageError } from '../../util/errors.js';
import type { MigrationDb, Operation } from '../define-migration.js';
import type { ColumnDetail } from '../migration-store.js';
import { syntaxOf } from '../../dialects/registry.js';

export interface ColumnSwap {
  kind: 'rename' | 'type';
  table: string;
  oldColumn: string;
  newColumn: string;
  /** New column type; null = the old column's type. */
  type: string | null;
  toNew: string | null;
  toOld: string | null;
}

function triggerBase(s: ColumnSwap): string {
  // Short enough for both dialects' 63/64-character name limits.
  const raw = `ss_sync_${s.table}_${s.newColumn}`.replace(/[^A-Za-z0-9_]/g, '_');
  return raw.length <= 50 ? raw : raw.slice(0, 41) + '_' + hash(raw);
}

function hash(s: string): string {
  let h = 5381;
  for (let i = 0; i < s.length; i++) h = ((h * 33) ^ s.charCodeAt(i)) >>> 0;
  return h.toString(36);
}

async function columnOf(db: MigrationDb, table: string, name: string): Promise<ColumnDetail | null> {
  const stats = await db.table(table);
  if (!stats) throw new UsageError(`table ${table} does not exist; check the table name in the operation`);
  return stats.columns.find((c) => c.name === name) ?? null;
}

function qualified(db: MigrationDb, table: string): string {
  const dot = table.indexOf('.');
  return dot > 0 ? `${db.quote(table.slice(0, dot))}.${db.quote(table.slice(dot + 1))}` : db.quote(table);
}

function convert(expr: string | null, db: MigrationDb, column: string): string {
  return expr ? expr.split('{{value}}').join(db.quote(column)) : db.quote(column);
}

export function swapOperation(s: ColumnSwap): Operation {
  const description =
    s.kind === 'rename' ? `rename column ${s.table}.${s.oldColumn} to ${s.newColumn}` : `change type of ${s.table}.${s.oldColumn} into ${s.newColumn} ${s.type}`;
  const spec = (db: MigrationDb, oldType: string | null) => ({
    table: s.table,
    name: triggerBase(s),
    oldColumn: s.oldColumn,
    newColumn: s.newColumn,
    toNew: s.toNew ?? (s.kind === 'type' && syntaxOf(db.dialect).assignmentNeedsCast && s.type ? `CAST({{value}} AS ${s.type})` : null),
    toOld: s.toOld ?? (s.kind === 'type' && syntaxOf(db.dialect).assignmentNeedsCast && oldType ? `CAST({{value}} AS ${oldType})` : null),
  });
  return {
    description,
    async expand(db) {
      const old = await columnOf(db, s.table, s.oldColumn);
      const existing = await columnOf(db, s.table, s.newColumn);
      if (!old) {
        if (existing) throw new UsageError(`${description}: column ${s.oldColumn} is gone but ${s.newColumn} exists; was this migration already contracted?`);
        throw new UsageError(`${description}: ${s.table} has no column ${s.oldColumn}`);
      }
      const t = qualified(db, s.table);
      if (!existing) await db.ddl(`ALTER TABLE ${t} ADD COLUMN ${db.quote(s.newColumn)} ${s.type ?? old.type} NULL`);
      const triggers = db.syncTriggers(spec(db, old.type));
      for (const d of triggers.drop) await db.exec(d);
      for (const c of triggers.create) await db.exec(c);
    },
    async backfill(db) {
      const old = await columnOf(db, s.table, s.oldColumn);
      if (!old) return;
      const sp = spec(db, old.type);
      await db.backfill({
        table: s.table,
        set: `${db.quote(s.newColumn)} = ${convert(sp.toNew, db, s.oldColumn)}`,
        where: `${db.quote(s.newColumn)} IS NULL AND ${db.quote(s.oldColumn)} IS NOT NULL`,
        id: `${s.table}.${s.newColumn}`,
        silenceSyncTriggers: true,
      });
    },
    async contract(db) {
      const old = await columnOf(db, s.table, s.oldColumn);
      const t = qualified(db, s.table);
      const triggers = db.syncTriggers(spec(db, old?.type ?? null));
      if (old) {
        // Triggers and the old column go together: no moment where a trigger names a missing column.
        await db.atomically(s.table, [...triggers.drop, `ALTER TABLE ${t} DROP COLUMN ${db.quote(s.oldColumn)}`]);
      } else {
        for (const d of triggers.drop) await db.exec(d);
      }
      const now = await columnOf(db, s.table, s.newColumn);
      if (!now) throw new UsageError(`${description}: column ${s.newColumn} is missing; was it dropped by hand?`);
      if (old && !old.nullable && now.nullable) await db.ddl(syntaxOf(db.dialect).setNotNull(t, db.quote(s.newColumn), now.type));
      if (old && old.defaultExpr !== null && s.kind === 'rename') {
        await db.ddl(`ALTER TABLE ${t} ALTER COLUMN ${db.quote(s.newColumn)} SET DEFAULT ${syntaxOf(db.dialect).defaultSql(old.defaultExpr)}`);
      }
    },
    async down(db) {
      const triggers = db.syncTriggers(spec(db, null));
      const existing = await columnOf(db, s.table, s.newColumn);
      const old = await columnOf(db, s.table, s.oldColumn);
      if (!old) throw new UsageError(`${description}: cannot roll back, column ${s.oldColumn} was already dropped by contract`);
      const t = qualified(db, s.table);
      await db.atomically(s.table, [...triggers.drop, ...(existing ? [`ALTER TABLE ${t} DROP COLUMN ${db.quote(s.newColumn)}`] : [])]);
    },
  };
}

export function requireName(v: unknown, what: string, op: string): string {
  if (typeof v !== 'string' || !v.trim()) throw new UsageError(`${op}: ${what} is required (a name)`);
  return v;
}
