// Baseline numbers for this machine, for the columns of FIELD-NOTES "What the
// peers do": the workload alone, and the raw chunked INSERT ... SELECT copy
// idle and under the workload. Every later benchmark of shadowshift is read
// against these.
//
//   npx tsx bench/lib/run-baseline.ts [--rows 1000000] [--rate 300] [--connections 8]
//                                     [--dialect mysql|postgres|both] [--runs 1] [--load-seconds 5]

import { parseArgs } from 'node:util';
import { openDb, quoteIdent, type Dialect } from '../../test/support/db.js';
import { createWorkloadTable, seedWorkloadTable, type WorkloadModel } from '../../test/support/workload/index.js';
import { startBenchServers } from './servers.js';
import { baselineCopy } from './baseline-copy.js';
import { runWithWorkload, sleep } from './with-workload.js';
import { formatStats, markdownTable, median, ms } from './report.js';
import { performance } from 'node:perf_hooks';

const { values: args } = parseArgs({
  options: {
    rows: { type: 'string', default: '1000000' },
    rate: { type: 'string', default: '300' },
    connections: { type: 'string', default: '8' },
    dialect: { type: 'string', default: 'both' },
    runs: { type: 'string', default: '1' },
    'load-seconds': { type: 'string', default: '5' },
  },
});
const rows = Number(args.rows);
const rate = Number(args.rate);
const connections = Number(args.connections);
const runs = Number(args.runs);
const dialects: Dialect[] = args.dialect === 'both' ? ['mysql', 'postgres'] : [args.dialect as Dialect];

/** The change the peers were measured with: a NOT NULL column with a default, plus an index on status. */
async function createCopyTable(url: string, table: string, copy: string): Promise<void> {
  const db = await openDb(url);
  try {
    const d = db.dialect;
    const [src, dst] = [quoteIdent(d, table), quoteIdent(d, copy)];
    if (d === 'mysql') {
      await db.exec(`CREATE TABLE ${dst} LIKE ${src}`);
      await db.exec(`ALTER TABLE ${dst} ADD COLUMN flag TINYINT NOT NULL DEFAULT 1, ADD INDEX ${quoteIdent(d, copy + '_status_idx')} (status)`);
    } else {
      await db.exec(`CREATE TABLE ${dst} (LIKE ${src} INCLUDING ALL)`);
      await db.exec(`ALTER TABLE ${dst} ADD COLUMN flag smallint NOT NULL DEFAULT 1`);
      await db.exec(`CREATE INDEX ${quoteIdent(d, copy + '_status_idx')} ON ${dst} (status)`);
    }
  } finally {
    await db.close();
  }
}

async function main(): Promise<void> {
  const servers = await startBenchServers(dialects);
  const out: string[][] = [];
  try {
    for (const d of dialects) {
      const idle: number[] = [];
      const loaded: { wall: number[]; p99: number[]; stall: number[]; errors: number[] } = { wall: [], p99: [], stall: [], errors: [] };
      const none: { p99: number[]; stall: number[]; errors: number[] } = { p99: [], stall: [], errors: [] };
      for (let run = 1; run <= runs; run++) {
        const url = await servers.database(d);
        const t0 = performance.now();
        await createWorkloadTable(url, 'orders');
        const model: WorkloadModel = await seedWorkloadTable(url, 'orders', rows);
        console.error(`[${d} run ${run}] seeded ${rows} rows in ${ms(performance.now() - t0)}`);

        await createCopyTable(url, 'orders', 'orders_idle');
        const i = await baselineCopy(url, 'orders', 'orders_idle', { create: false });
        idle.push(i.ms);
        console.error(`[${d} run ${run}] idle chunked copy: ${i.rows} rows, ${ms(i.ms)}, ${Math.round(i.rowsPerSec)} rows/s`);

        const w0 = await runWithWorkload({ url, table: 'orders', model, rate, connections }, () => sleep(Number(args['load-seconds']) * 1000));
        none.p99.push(w0.stats.latency.p99);
        none.stall.push(w0.stats.longestWriteStallMs);
        none.errors.push(w0.stats.errors);
        console.error(`[${d} run ${run}] no migration: ${formatStats(w0.stats)}`);

        await createCopyTable(url, 'orders', 'orders_loaded');
        const l = await runWithWorkload({ url, table: 'orders', model, rate, connections, verify: true }, () =>
          baselineCopy(url, 'orders', 'orders_loaded', { create: false }),
        );
        loaded.wall.push(l.wallMs);
        loaded.p99.push(l.stats.latency.p99);
        loaded.stall.push(l.stats.longestWriteStallMs);
        loaded.errors.push(l.stats.errors);
        console.error(`[${d} run ${run}] loaded chunked copy: ${Math.round(l.result.rowsPerSec)} rows/s; ${formatStats(l.stats)}; model ${l.verify?.equal ? 'equal' : 'DIFFERS'}`);
      }
      out.push([d, 'no migration', '–', '–', ms(median(none.p99)), ms(median(none.stall)), String(median(none.errors))]);
      out.push([d, `chunked INSERT ... SELECT, 10k rows`, ms(median(idle)), ms(median(loaded.wall)), ms(median(loaded.p99)), ms(median(loaded.stall)), String(median(loaded.errors))]);
    }
    console.log(`\n${rows} rows, ${rate} ops/s over ${connections} connections, medians of ${runs} run(s)\n`);
    console.log(markdownTable(['dialect', 'what', 'wall (idle)', 'wall (loaded)', 'workload p99', 'longest write stall', 'app errors'], out));
  } finally {
    await servers.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
