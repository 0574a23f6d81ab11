// Checkpoints of resumable jobs in `_ss_checkpoints`, and revert points of revertible
// jobs in `_ss_reverts` (../checkpoint-store.ts).

import type { Checkpoint, RevertPoint, TableRef } from '../dialect.js';
import { SqlCheckpointStore } from '../checkpoint-store.js';
import type { PgContext } from './postgres-context.js';
import { quoteQualified } from './postgres-quote.js';

export const CHECKPOINT_TABLE = '_ss_checkpoints';
export const REVERT_TABLE = '_ss_reverts';

/** One JSON row per table in `name` (a table of the migrated table's schema). */
class PostgresStateTable<T extends { table: TableRef }> extends SqlCheckpointStore<T> {
  constructor(
    private readonly ctx: PgContext,
    private readonly name: string,
  ) {
    super();
  }

  private table(ref: TableRef): string {
    return quoteQualified(ref.schema, this.name);
  }

  protected async createTable(ref: TableRef): Promise<void> {
    await this.ctx.pool.query(
      `CREATE TABLE IF NOT EXISTS ${this.table(ref)} (table_schema text NOT NULL, table_name text NOT NULL, checkpoint text NOT NULL, saved_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (table_schema, table_name))`,
    );
  }

  protected async upsert(ref: TableRef, json: string): Promise<void> {
    await this.ctx.pool.query(
      `INSERT INTO ${this.table(ref)} (table_schema, table_name, checkpoint) VALUES ($1, $2, $3)
       ON CONFLICT (table_schema, table_name) DO UPDATE SET checkpoint = EXCLUDED.checkpoint, saved_at = now()`,
      [ref.schema, ref.name, json],
    );
  }

  protected async tableExists(ref: TableRef): Promise<boolean> {
    const exists = await this.ctx.pool.query(`SELECT (to_regclass($1) IS NOT NULL)::text AS e`, [this.table(ref)]);
    return String(exists.rows[0]?.e) === 'true';
  }

  protected async select(ref: TableRef): Promise<string | null> {
    const r = await this.ctx.pool.query<{ checkpoint: string }>(`SELECT checkpoint FROM ${this.table(ref)} WHERE table_schema = $1 AND table_name = $2`, [ref.schema, ref.name]);
    return r.rows[0]?.checkpoint ?? null;
  }

  protected async delete(ref: TableRef): Promise<void> {
    await this.ctx.pool.query(`DELETE FROM ${this.table(ref)} WHERE table_schema = $1 AND table_name = $2`, [ref.schema, ref.name]);
  }

  protected async dropTableIfEmpty(ref: TableRef): Promise<void> {
    await this.ctx.pool.query(`DO $$BEGIN IF NOT EXISTS (SELECT 1 FROM ${this.table(ref)}) THEN DROP TABLE ${this.table(ref)}; END IF; END$$`).catch(() => undefined);
  }
}

export class PostgresCheckpointStore extends PostgresStateTable<Checkpoint> {
  constructor(ctx: PgContext) {
    super(ctx, CHECKPOINT_TABLE);
  }
}

export class PostgresRevertPointStore extends PostgresStateTable<RevertPoint> {
  constructor(ctx: PgContext) {
    super(ctx, REVERT_TABLE);
  }
}
