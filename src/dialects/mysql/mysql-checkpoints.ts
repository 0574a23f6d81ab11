// Checkpoints of resumable jobs: one row per table in `_shadowshift_checkpoints`, in the
// migrated table's database. The JSON is stored as text, so it reads back byte for byte.

import type { RowDataPacket } from 'mysql2/promise';
import type { Checkpoint, CheckpointStore, TableRef } from '../dialect.js';
import type { MyContext } from './mysql-context.js';
import { quoteTable } from './mysql-quote.js';

export const CHECKPOINT_TABLE = '_shadowshift_checkpoints';

export class MysqlCheckpointStore implements CheckpointStore {
  constructor(private readonly ctx: MyContext) {}

  private table(ref: TableRef): string {
    return quoteTable(ref.schema, CHECKPOINT_TABLE);
  }

  async save(cp: Checkpoint): Promise<void> {
    const t = this.table(cp.table);
    await this.ctx.pool.query(
      `CREATE TABLE IF NOT EXISTS ${t} (
         table_schema VARCHAR(64) NOT NULL, table_name VARCHAR(64) NOT NULL, checkpoint LONGTEXT NOT NULL,
         saved_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
         PRIMARY KEY (table_schema, table_name)
       ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin COMMENT='shadowshift checkpoints of resumable jobs'`,
    );
    await this.ctx.pool.query(
      `INSERT INTO ${t} (table_schema, table_name, checkpoint) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE checkpoint = VALUES(checkpoint)`,
      [cp.table.schema, cp.table.name, JSON.stringify(cp)],
    );
  }

  private async exists(ref: TableRef): Promise<boolean> {
    const [r] = await this.ctx.pool.query<RowDataPacket[]>('SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?', [ref.schema, CHECKPOINT_TABLE]);
    return r.length > 0;
  }

  async load(ref: TableRef): Promise<Checkpoint | null> {
    if (!(await this.exists(ref))) return null;
    const [r] = await this.ctx.pool.query<RowDataPacket[]>(`SELECT checkpoint FROM ${this.table(ref)} WHERE table_schema = ? AND table_name = ?`, [ref.schema, ref.name]);
    return r[0] ? (JSON.parse(String(r[0].checkpoint)) as Checkpoint) : null;
  }

  async remove(ref: TableRef): Promise<void> {
    if (!(await this.exists(ref))) return;
    await this.ctx.pool.query(`DELETE FROM ${this.table(ref)} WHERE table_schema = ? AND table_name = ?`, [ref.schema, ref.name]);
    // The last checkpoint gone: drop the table so nothing of shadowshift is left.
    const [n] = await this.ctx.pool.query<RowDataPacket[]>(`SELECT COUNT(*) AS n FROM ${this.table(ref)}`);
    if (Number(n[0]?.n) === 0) await this.ctx.pool.query(`DROP TABLE IF EXISTS ${this.table(ref)}`);
  }
}
