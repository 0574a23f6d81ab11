// The engine's own cut-over of a parent table (issue 15, option C; mysql-child-repoint.ts):
// how long the swap holds the table when two children are repointed under its lock,
// against the same table without children. bench/fk-spike.ts measures the repoint's
// statements alone; this runs the whole job (AlterJob, in-process, the way the CLI does)
// and reads what its cut-over logs: `lockedMs` (from the lock request to the release),
// `blockedMs` (from the grant) and `repointMs`. No workload: the lock window itself.
// A third case is a child table instead (two keys of the table to two parents, CASCADE):
// its keys are added to the shadow under the lock (mysql-shadow-keys.ts), and renamed
// after the swap (`renameMs`, outside the lock).
//
//   npx tsx bench/fk-parent-cutover.ts [--rows 100000] [--runs 3]

import { parseArgs } from 'node:util';
import mysql from 'mysql2/promise';
import { pino } from 'pino';
import { AlterJob } from '../src/engine/job.js';
import { parseConnectionUrl } from '../src/util/connection-url.js';
import { startBenchServers } from './lib/servers.js';

const { values: args } = parseArgs({ options: { rows: { type: 'string', default: '100000' }, runs: { type: 'string', default: '3' } } });
const rows = Number(args.rows);
const runs = Number(args.runs);

async function main() {
  const servers = await startBenchServers(['mysql']);
  try {
    const url = await servers.database('mysql', 'fkparent');
    const conn = await mysql.createConnection({ uri: url });
    const [[version]] = await conn.query<mysql.RowDataPacket[]>('SELECT VERSION() AS v');
    console.log(`server: ${version!.v}; ${rows} rows in the parent and in each child; ${runs} runs per case`);
    const results: Array<Record<string, unknown>> = [];
    for (const [children, parents] of [[0, 0], [2, 0], [0, 2]] as const) {
      for (let run = 1; run <= runs; run++) {
        await conn.query('SET foreign_key_checks = 0');
        for (const t of ['c1', 'c2', 'p', 'q1', 'q2']) await conn.query(`DROP TABLE IF EXISTS ${t}`);
        const [old] = await conn.query<mysql.RowDataPacket[]>("SELECT TABLE_NAME AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE 'p\\_ss%'");
        for (const o of old) await conn.query(`DROP TABLE \`${String(o.n)}\``);
        await conn.query('SET foreign_key_checks = 1');
        for (let q = 1; q <= parents; q++) {
          await conn.query(`CREATE TABLE q${q} (id INT PRIMARY KEY)`);
          await conn.query(`INSERT INTO q${q} SELECT seq FROM seq_1_to_1000`);
        }
        const keys = Array.from({ length: parents }, (_, i) => `, q${i + 1}_id INT NOT NULL, KEY (q${i + 1}_id), CONSTRAINT p_q${i + 1} FOREIGN KEY (q${i + 1}_id) REFERENCES q${i + 1} (id) ON DELETE CASCADE`).join('');
        await conn.query(`CREATE TABLE p (id INT PRIMARY KEY, v INT NOT NULL${keys})`);
        await conn.query(`INSERT INTO p SELECT seq, seq${Array.from({ length: parents }, () => ', 1 + seq % 1000').join('')} FROM seq_1_to_${rows}`);
        for (let c = 1; c <= children; c++) {
          await conn.query(`CREATE TABLE c${c} (id INT PRIMARY KEY, pid INT NOT NULL, KEY (pid), CONSTRAINT c${c}_fk FOREIGN KEY (pid) REFERENCES p (id) ON DELETE CASCADE)`);
          await conn.query(`INSERT INTO c${c} SELECT seq, 1 + (seq * 7) % ${rows} FROM seq_1_to_${rows}`);
        }
        const lines: Array<Record<string, unknown>> = [];
        const log = pino({ level: 'info', base: undefined }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
        const job = new AlterJob({
          connection: parseConnectionUrl(url),
          table: 'p',
          alter: 'ADD COLUMN extra INT NOT NULL DEFAULT 7',
          chunkTimeMs: 500,
          cutoverLockTimeoutMs: 3000,
          cutoverRetries: 3,
          dropOldTable: true,
          checksum: false,
          log,
        });
        try {
          const report = await job.prepare();
          if (!report.ok) throw new Error(`preflight: ${JSON.stringify(report.checks.filter((c) => !c.ok))}`);
          await job.execute(report);
        } finally {
          await job.close();
        }
        const swapped = lines.find((l) => l.msg === 'tables swapped') ?? {};
        const failed = lines.filter((l) => l.msg === 'cut-over attempt failed; the original is as it was').length;
        const renamed = lines.find((l) => l.msg === 'the foreign keys have their names back on the new table');
        const row = { children, parents, run, lockedMs: swapped.lockedMs, blockedMs: swapped.blockedMs, repointMs: swapped.repointMs ?? null, renameMs: renamed?.ms ?? null, failedAttempts: failed };
        console.log(JSON.stringify(row));
        results.push(row);
      }
    }
    await conn.end();
    console.log(JSON.stringify(results));
  } finally {
    await servers.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
