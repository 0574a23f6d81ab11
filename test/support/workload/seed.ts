// Seeding: the server computes the rows that seedRow (model.ts) computes in JS.

import { mysqlSeq, quoteIdent, withDb, type Db } from '../db.js';
import { WorkloadModel } from './model.js';
import { WORKLOAD_COLUMNS } from './schema.js';

export interface SeedOptions {
  /** Rows per INSERT ... SELECT statement (default 50,000). */
  chunkRows?: number;
}

/**
 * Inserts ids 1..rows (seedRow(id)) with server-side generation: mysqlSeq (db.ts)
 * on MariaDB and MySQL, generate_series on PostgreSQL. Returns the model of the seeded table. The table must be empty.
 */
export async function seedWorkloadTable(target: string | Db, table: string, rows: number, options: SeedOptions = {}): Promise<WorkloadModel> {
  const chunk = options.chunkRows ?? 50_000;
  await withDb(target, async (db) => {
    const t = quoteIdent(db.dialect, table);
    const cols = WORKLOAD_COLUMNS.join(', ');
    for (let lo = 1; lo <= rows; lo += chunk) {
      const hi = Math.min(rows, lo + chunk - 1);
      if (db.dialect === 'mysql') {
        const select = `SELECT n, (n * 7919) % 1000000 + 1, ((n * 37) % 100000000) / 100,
            ELT(1 + n % 5, 'new', 'paid', 'shipped', 'cancelled', 'refunded'),
            CASE WHEN n % 10 = 0 THEN NULL ELSE CONCAT('seed ', n, ' ünïcødé €') END,
            TIMESTAMP'2024-01-01 00:00:00' + INTERVAL (n * 1000000 + (n * 7919) % 1000000) MICROSECOND,
            UNHEX(CONCAT(REPEAT(SHA2(CONCAT('p', n), 256), 6), LEFT(SHA2(CONCAT('q', n), 256), 16)))`;
        await db.exec(`INSERT INTO ${t} (${cols}) ${select} FROM (SELECT seq AS n FROM ${mysqlSeq(lo, hi)}) s`);
      } else {
        await db.exec(
          `INSERT INTO ${t} (${cols})
           SELECT n, ((n * 7919) % 1000000 + 1)::int, ((n * 37) % 100000000)::numeric / 100,
             (ARRAY['new', 'paid', 'shipped', 'cancelled', 'refunded'])[1 + n % 5],
             CASE WHEN n % 10 = 0 THEN NULL ELSE 'seed ' || n || ' ünïcødé €' END,
             timestamp '2024-01-01 00:00:00' + (n * 1000000 + (n * 7919) % 1000000) * interval '1 microsecond',
             decode(repeat(encode(sha256(('p' || n)::bytea), 'hex'), 6) || left(encode(sha256(('q' || n)::bytea), 'hex'), 16), 'hex')
           FROM generate_series(${lo}::bigint, ${hi}::bigint) AS n`,
        );
      }
    }
    if (db.dialect === 'postgres') await db.exec(`ANALYZE ${t}`);
  });
  return new WorkloadModel(rows);
}
