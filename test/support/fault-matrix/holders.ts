// Sessions of "another application" that hold a phase of the job open: each takes a
// lock (or a snapshot) in an open transaction and keeps it until released. A holder
// may be gone already when released (a server restart ended it).

import { openDb, quoteIdent, type Db } from '../db.js';
import { END_VACUUM_GUARD } from '../pg-vacuum-guard.js';

export interface Holder {
  release(): Promise<void>;
}

async function hold(url: string, statements: (db: Db) => string[]): Promise<Holder> {
  const db = await openDb(url);
  for (const sql of statements(db)) await db.exec(sql);
  return {
    async release() {
      if (!db.broken) await db.exec('ROLLBACK').catch(() => undefined);
      await db.close().catch(() => undefined);
    },
  };
}

/**
 * Keeps writers' locks on `table` in an open transaction: the checksum's snapshot lock
 * (MySQL LOCK TABLES READ, PostgreSQL SHARE) and the cut-over's lock wait for it, and
 * application writes queue behind their request. Changes no row. PostgreSQL: READ
 * COMMITTED and idle, so it holds no snapshot (the cut-over's snapshot wait ignores it).
 */
export function holdWriteLock(url: string, table: string): Promise<Holder> {
  return hold(url, (db) => {
    const t = quoteIdent(db.dialect, table);
    return db.dialect === 'mysql'
      ? ['START TRANSACTION', `UPDATE ${t} SET id = id WHERE id = -1`]
      : ['BEGIN', `LOCK TABLE ${t} IN ROW EXCLUSIVE MODE`];
  });
}

/** Keeps every writer out of `table` (the job's applier among them); readers go on. */
export function holdReadOnly(url: string, table: string): Promise<Holder> {
  return hold(url, (db) => {
    const t = quoteIdent(db.dialect, table);
    // PostgreSQL: the job's vacuum guard on the shadow would keep SHARE waiting (test/support/pg-vacuum-guard.ts).
    return db.dialect === 'mysql' ? [`LOCK TABLES ${t} READ`] : [END_VACUUM_GUARD, 'BEGIN', `LOCK TABLE ${t} IN SHARE MODE`];
  });
}

/**
 * Lets writers and readers of `table` go on, but keeps a rename of it waiting (the
 * PostgreSQL cut-over's ALTER TABLE ... RENAME of the shadow, under its lock on the original).
 */
export function holdAgainstRename(url: string, table: string): Promise<Holder> {
  return hold(url, (db) => {
    const t = quoteIdent(db.dialect, table);
    return db.dialect === 'mysql' ? ['START TRANSACTION', `SELECT 1 FROM ${t} LIMIT 1`] : ['BEGIN', `LOCK TABLE ${t} IN ACCESS SHARE MODE`];
  });
}

/** PostgreSQL: a REPEATABLE READ snapshot that CREATE INDEX CONCURRENTLY must wait out. */
export function holdSnapshot(url: string): Promise<Holder> {
  return hold(url, () => ['BEGIN ISOLATION LEVEL REPEATABLE READ', 'SELECT 1']);
}
