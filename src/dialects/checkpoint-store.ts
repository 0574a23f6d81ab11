// Checkpoints of resumable jobs (and revert points), as both dialects keep them: one row
// per table in a table of shadowshift's, in the migrated table's schema, created by the
// first save and dropped with the last row, so nothing of shadowshift is left. The JSON
// is stored as text, so it reads back byte for byte. Each dialect supplies only the SQL.

import type { Checkpoint, TableRef } from './dialect.js';

export abstract class SqlCheckpointStore<T extends { table: TableRef } = Checkpoint> {
  /** Creates the checkpoint table of `ref`'s schema if need be. */
  protected abstract createTable(ref: TableRef): Promise<void>;
  /** Inserts or replaces the row of `ref`. */
  protected abstract upsert(ref: TableRef, json: string): Promise<void>;
  protected abstract tableExists(ref: TableRef): Promise<boolean>;
  protected abstract select(ref: TableRef): Promise<string | null>;
  protected abstract delete(ref: TableRef): Promise<void>;
  protected abstract dropTableIfEmpty(ref: TableRef): Promise<void>;
  /** Refuses a checkpoint this dialect cannot resume (checked before anything runs). */
  protected check(_ref: TableRef, _cp: T): void {}

  async save(cp: T): Promise<void> {
    await this.createTable(cp.table);
    await this.upsert(cp.table, JSON.stringify(cp));
  }

  async load(ref: TableRef): Promise<T | null> {
    if (!(await this.tableExists(ref))) return null;
    const json = await this.select(ref);
    if (json === null) return null;
    const cp = JSON.parse(json) as T;
    this.check(ref, cp);
    return cp;
  }

  async remove(ref: TableRef): Promise<void> {
    if (!(await this.tableExists(ref))) return;
    await this.delete(ref);
    await this.dropTableIfEmpty(ref);
  }
}
