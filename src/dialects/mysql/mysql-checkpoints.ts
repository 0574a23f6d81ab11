// Checkpoints of resumable jobs in `_shadowshift_checkpoints`, and revert points of
// revertible jobs in `_shadowshift_reverts` (../checkpoint-store.ts).

import type { RowDataPacket } from 'mysql2/promise';
import type { Checkpoint, RevertPoint, TableRef } from '../dialect.js';
import { SqlCheckpointStore } from '../checkpoint-store.js';
import type { MyContext } from './mysql-context.js';
import { quoteTable } from './mysql-quote.js';
import { assertSwapOrder } from './mysql-cutover.js';
import { UsageError } from '../../util/errors.js';

export const CHECKPOINT_TABLE = '_shadowshift_checkpoints';
export const REVERT_TABLE = '_shadowshift_reverts';

/** One JSON row per table in `name` (a table of the migrated table's schema). */
class MysqlStateTable<T extends { table: TableRef }> extends SqlCheckpointStore<T> {
  constructor(
    protected readonly ctx: MyContext,
    private readonly name: string,
    private readonly comment: string,
  ) {
    super();
  }

  private table(ref: TableRef): string {
    return quoteTable(ref.schema, this.name);
  }

  protected async createTable(ref: TableRef): Promise<void> {
    await this.ctx.pool.query(
      `CREATE TABLE IF NOT EXISTS ${this.table(ref)} (
         table_schema VARCHAR(64) NOT NULL, table_name VARCHAR(64) NOT NULL, checkpoint LONGTEXT NOT NULL,
         saved_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
         PRIMARY KEY (table_schema, table_name)
       ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin COMMENT='${this.comment}'`,
    );
  }

  protected async upsert(ref: TableRef, json: string): Promise<void> {
    await this.ctx.pool.query(
      `INSERT INTO ${this.table(ref)} (table_schema, table_name, checkpoint) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE checkpoint = VALUES(checkpoint)`,
      [ref.schema, ref.name, json],
    );
  }

  protected async tableExists(ref: TableRef): Promise<boolean> {
    const [r] = await this.ctx.pool.query<RowDataPacket[]>('SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?', [ref.schema, this.name]);
    return r.length > 0;
  }

  protected async select(ref: TableRef): Promise<string | null> {
    const [r] = await this.ctx.pool.query<RowDataPacket[]>(`SELECT checkpoint FROM ${this.table(ref)} WHERE table_schema = ? AND table_name = ?`, [ref.schema, ref.name]);
    return r[0] ? String(r[0].checkpoint) : null;
  }

  protected async delete(ref: TableRef): Promise<void> {
    await this.ctx.pool.query(`DELETE FROM ${this.table(ref)} WHERE table_schema = ? AND table_name = ?`, [ref.schema, ref.name]);
  }

  protected async dropTableIfEmpty(ref: TableRef): Promise<void> {
    const [n] = await this.ctx.pool.query<RowDataPacket[]>(`SELECT COUNT(*) AS n FROM ${this.table(ref)}`);
    if (Number(n[0]?.n) === 0) await this.ctx.pool.query(`DROP TABLE IF EXISTS ${this.table(ref)}`);
  }

}

export class MysqlCheckpointStore extends MysqlStateTable<Checkpoint> {
  constructor(ctx: MyContext) {
    super(ctx, CHECKPOINT_TABLE, 'shadowshift checkpoints of resumable jobs');
  }

  /** Checked here, before anything runs, rather than at the cut-over hours later. */
  protected override check(ref: TableRef, cp: Checkpoint): void {
    try {
      assertSwapOrder(cp.table.name, cp.names);
    } catch (err) {
      throw new UsageError(`cannot resume the job on ${ref.schema}.${ref.name}: ${(err as Error).message}`);
    }
  }
}

export class MysqlRevertPointStore extends MysqlStateTable<RevertPoint> {
  constructor(ctx: MyContext) {
    super(ctx, REVERT_TABLE, 'shadowshift revert points of revertible jobs');
  }
}
