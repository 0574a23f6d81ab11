// Checkpoints of resumable jobs: one row per table in `_ss_checkpoints`, a table in the
// migrated table's schema. The JSON is stored as text, so it reads back byte for byte.

import type { Checkpoint, CheckpointStore, TableRef } from '../dialect.js';
import type { PgContext } from './postgres-context.js';
import { quoteQualified } from './postgres-quote.js';

export const CHECKPOINT_TABLE = '_ss_checkpoints';

export class PostgresCheckpointStore implements CheckpointStore {
  constructor(private readonly ctx: PgContext) {}

  private table(ref: TableRef): string {
    return quoteQualified(ref.schema, CHECKPOINT_TABLE);
  }

  async save(cp: Checkpoint): Promise<void> {
    const t = this.table(cp.table);
    await this.ctx.pool.query(
      `CREATE TABLE IF NOT EXISTS ${t} (table_schema text NOT NULL, table_name text NOT NULL, checkpoint text NOT NULL, saved_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (table_schema, table_name))`,
    );
    await this.ctx.pool.query(
      `INSERT INTO ${t} (table_schema, table_name, checkpoint) VALUES ($1, $2, $3)
       ON CONFLICT (table_schema, table_name) DO UPDATE SET checkpoint = EXCLUDED.checkpoint, saved_at = now()`,
      [cp.table.schema, cp.table.name, JSON.stringify(cp)],
    );
  }

  async load(ref: TableRef): Promise<Checkpoint | null> {
    const exists = await this.ctx.pool.query(`SELECT (to_regclass($1) IS NOT NULL)::text AS e`, [this.table(ref)]);
    if (String(exists.rows[0]?.e) !== 'true') return null;
    const r = await this.ctx.pool.query<{ checkpoint: string }>(
      `SELECT checkpoint FROM ${this.table(ref)} WHERE table_schema = $1 AND table_name = $2`,
      [ref.schema, ref.name],
    );
    return r.rows[0] ? (JSON.parse(r.rows[0].checkpoint) as Checkpoint) : null;
  }

  async remove(ref: TableRef): Promise<void> {
    const exists = await this.ctx.pool.query(`SELECT (to_regclass($1) IS NOT NULL)::text AS e`, [this.table(ref)]);
    if (String(exists.rows[0]?.e) !== 'true') return;
    await this.ctx.pool.query(`DELETE FROM ${this.table(ref)} WHERE table_schema = $1 AND table_name = $2`, [ref.schema, ref.name]);
    // The last checkpoint gone: drop the table so nothing of shadowshift is left.
    await this.ctx.pool.query(`DO $$BEGIN IF NOT EXISTS (SELECT 1 FROM ${this.table(ref)}) THEN DROP TABLE ${this.table(ref)}; END IF; END$$`).catch(() => undefined);
  }
}
