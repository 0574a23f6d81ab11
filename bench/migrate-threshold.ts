// How long a blocking, rewriting ALTER holds writes, by table size: the
// measurement behind the default `migrate --online-threshold` (100,000 rows or
// 32 MiB). For each size it seeds the workload table (7 columns, ~300-byte
// rows, an index on user_id) and times an int -> bigint change that copies the
// table while writes wait (MariaDB ALGORITHM=COPY; PostgreSQL ALTER ... TYPE).
//
//   npx tsx bench/migrate-threshold.ts [--dialect mysql|postgres|both] [--sizes 50000,100000,200000,400000] [--budget-ms 500]

import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { openDb, type Dialect } from '../test/support/db.js';
import { createWorkloadTable, seedWorkloadTable } from '../test/support/workload/index.js';
import { startBenchServers } from './lib/servers.js';

const { values } = parseArgs({
  options: {
    dialect: { type: 'string', default: 'both' },
    sizes: { type: 'string', default: '50000,100000,200000,400000' },
    'budget-ms': { type: 'string', default: '500' },
  },
});
const dialects: Dialect[] = values.dialect === 'both' ? ['mysql', 'postgres'] : [values.dialect as Dialect];
const sizes = values.sizes!.split(',').map(Number);
const budget = Number(values['budget-ms']);

const servers = await startBenchServers(dialects);
try {
  console.log('| dialect | rows | table bytes | blocking rewrite | rows/s |');
  console.log('| --- | --- | --- | --- | --- |');
  const rates: Record<string, number[]> = {};
  for (const d of dialects) {
    for (const rows of sizes) {
      const url = await servers.database(d, 'thr');
      await createWorkloadTable(url, 'orders');
      await seedWorkloadTable(url, 'orders', rows);
      const db = await openDb(url);
      try {
        const bytes =
          d === 'mysql'
            ? (await db.exec('ANALYZE TABLE orders'), Number((await db.query<{ b: string }>("SELECT CAST(DATA_LENGTH + INDEX_LENGTH AS CHAR) AS b FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'orders'"))[0]!.b))
            : (await db.exec('ANALYZE orders'), Number((await db.query<{ b: string }>("SELECT pg_table_size('orders')::text AS b"))[0]!.b));
        const t0 = performance.now();
        await db.exec(d === 'mysql' ? 'ALTER TABLE orders MODIFY user_id BIGINT NOT NULL, ALGORITHM=COPY' : 'ALTER TABLE orders ALTER COLUMN user_id TYPE bigint');
        const s = (performance.now() - t0) / 1000;
        (rates[d] ??= []).push(rows / s);
        console.log(`| ${d} | ${rows} | ${(bytes / 1048576).toFixed(1)} MiB | ${s.toFixed(2)} s | ${Math.round(rows / s)} |`);
      } finally {
        await db.close();
      }
    }
  }
  for (const [d, r] of Object.entries(rates)) {
    const median = [...r].sort((a, b) => a - b)[Math.floor(r.length / 2)]!;
    console.log(`${d}: median ${Math.round(median)} rows/s; a ${budget} ms write stall is reached at about ${Math.round((median * budget) / 1000)} rows`);
  }
} finally {
  await servers.stop();
}
