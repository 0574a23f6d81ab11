// MySQL/MariaDB: the shadow's plain keys built after the copy (mysql-deferred-indexes.ts).
// Under a write workload the table must end equal to an independent model, its keys in
// the order a native ALTER leaves them, and every index consistent with the rows. By
// default the build waits for the copy only when no replica reads the binlog: a session
// of another user reading it (a replica, here mariadb-binlog) keeps the keys in place.

import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Connection, RowDataPacket } from 'mysql2/promise';
import { createMysqlDatabase, mysqlConnect } from '../support/databases.js';
import { capturingLogger, newJob, waitUntil } from '../support/alter.js';
import { createWorkloadTable, seedWorkloadTable, startWorkload } from '../support/workload/index.js';
import { compareWithModel, formatDiffs } from '../support/compare.js';
import { formatPlan } from '../../src/cli/alter-command.js';
import { parseConnectionUrl } from '../../src/util/connection-url.js';
import { executeControl } from '../../src/control/control-server.js';
import { AbortLeftBehindError } from '../../src/util/errors.js';
import { silentLogger } from '../../src/util/logger.js';

let url: string;
let conn: Connection;

beforeAll(async () => {
  url = (await createMysqlDatabase('deferidx')).url;
  conn = await mysqlConnect(url);
});
afterAll(async () => {
  await conn?.end();
});

const ALTER = "ADD COLUMN flag TINYINT NOT NULL DEFAULT 0, ADD INDEX status_idx (status), ADD INDEX user_note_idx (user_id, note(10)) COMMENT 'by user'";

async function createTable(name: string): Promise<string> {
  const [r] = await conn.query<RowDataPacket[]>(`SHOW CREATE TABLE \`${name}\``);
  return String(r[0]!['Create Table']);
}

/** What a native ALTER makes of `table`'s definition, with `table`'s name. */
async function nativeResult(table: string): Promise<string> {
  await conn.query(`CREATE TABLE \`${table}_native\` LIKE \`${table}\``);
  await conn.query(`ALTER TABLE \`${table}_native\` ${ALTER}`);
  const create = await createTable(`${table}_native`);
  await conn.query(`DROP TABLE \`${table}_native\``);
  return create.replace(`\`${table}_native\``, `\`${table}\``);
}

const keyLines = (create: string) => create.split('\n').filter((l) => /^\s*KEY /.test(l));

describe('MySQL: secondary indexes built after the copy', () => {
  it('builds them once the copy is done, while writes go on; the table ends as a native ALTER leaves it', async () => {
    await createWorkloadTable(url, 'orders');
    const model = await seedWorkloadTable(url, 'orders', 20_000);
    const native = await nativeResult('orders');
    const workload = await startWorkload({ url, table: 'orders', model, rate: 200, connections: 2, seed: 41 });
    const { log, lines } = capturingLogger();
    const during: { shadowKeys?: string[]; recorded?: string[] } = {};
    const job = newJob(url, 'orders', ALTER, {
      chunkSize: 1000,
      log,
      testHooks: {
        beforeChunkCommit: async () => {
          if (during.shadowKeys) return;
          during.shadowKeys = keyLines(await createTable('orders_ssnew'));
          const [r] = await conn.query<RowDataPacket[]>("SELECT value FROM orders_sslog WHERE kind = 'deferred-index' ORDER BY id");
          during.recorded = r.map((x) => String(x.value));
        },
      },
    });
    try {
      const report = await job.prepare();
      expect(report).toMatchObject({ deferredIndexes: 'on', deferredIndexesConcern: null });
      expect(formatPlan(report, true)).toContain('indexes:          built after the copy\n');
      const result = await job.execute(report);
      expect(result.repairedChunks).toBe(0);
    } finally {
      await job.close();
    }
    const stats = await workload.stop();
    expect(stats.errors, JSON.stringify(stats.errorSamples.slice(0, 5))).toBe(0);

    // While the copy ran the shadow had no plain key; its changelog held all three, in order.
    expect(during.shadowKeys).toEqual([]);
    expect(during.recorded).toEqual(['KEY `orders_user_id_idx` (`user_id`)', 'KEY `status_idx` (`status`)', "KEY `user_note_idx` (`user_id`,`note`(10)) COMMENT 'by user'"]);
    const messages = lines.map((l) => String(l.msg));
    expect(messages.indexOf("built the new table's secondary indexes")).toBeGreaterThan(messages.indexOf('copy complete'));

    const final = await compareWithModel(url, 'orders', model);
    expect(final.equal, formatDiffs(final)).toBe(true);
    expect((await createTable('orders')).replace(/ AUTO_INCREMENT=\d+/, '')).toBe(native.replace(/ AUTO_INCREMENT=\d+/, ''));
    // Every index holds exactly the table's rows (the build met writes applied meanwhile).
    const [check] = await conn.query<RowDataPacket[]>('CHECK TABLE orders EXTENDED');
    expect(check.map((r) => `${r.Msg_type}: ${r.Msg_text}`)).toEqual(['status: OK']);
    for (const index of ['orders_user_id_idx', 'status_idx', 'user_note_idx']) {
      const [viaIndex] = await conn.query<RowDataPacket[]>(`SELECT COUNT(*) AS n, SUM(id) AS s FROM orders FORCE INDEX (${index}) WHERE user_id >= -2147483648 AND status >= ''`);
      const [viaRows] = await conn.query<RowDataPacket[]>('SELECT COUNT(*) AS n, SUM(id) AS s FROM orders IGNORE INDEX (orders_user_id_idx, status_idx, user_note_idx)');
      expect(viaIndex, index).toEqual(viaRows);
    }
  });

  it('--no-defer-indexes builds them with the table', async () => {
    await createWorkloadTable(url, 'kept');
    await seedWorkloadTable(url, 'kept', 3000);
    let shadowKeys: string[] | null = null;
    const job = newJob(url, 'kept', ALTER, {
      chunkSize: 1000,
      deferIndexes: false,
      testHooks: { beforeChunkCommit: async () => void (shadowKeys ??= keyLines(await createTable('kept_ssnew'))) },
    });
    try {
      const report = await job.prepare();
      expect(report).toMatchObject({ deferredIndexes: 'off', deferredIndexesConcern: null });
      await job.execute(report);
    } finally {
      await job.close();
    }
    expect(shadowKeys).toHaveLength(3);
  });

  it('an abort while the build waits for the new table ends the build and the job at once', async () => {
    await createWorkloadTable(url, 'stopped');
    await seedWorkloadTable(url, 'stopped', 3000);
    const before = await conn.query<RowDataPacket[]>('CHECKSUM TABLE stopped');
    // An open transaction that read the new table: the build's ALTER waits for its metadata lock.
    const reader = await mysqlConnect(url);
    let holding = false;
    const job = newJob(url, 'stopped', ALTER, {
      chunkSize: 1000,
      testHooks: {
        beforeChunkCommit: async () => {
          if (holding) return;
          holding = true;
          await reader.query('BEGIN');
          await reader.query('SELECT id FROM stopped_ssnew LIMIT 1');
        },
      },
    });
    const building = () =>
      conn.query<RowDataPacket[]>("SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE 'ALTER TABLE `%`.`stopped_ssnew` ADD KEY%'").then(([r]) => r.length);
    try {
      const running = job.execute(await job.prepare());
      running.catch(() => undefined);
      await waitUntil(() => job.status().phase === 'building-indexes' && job.status().waitingFor?.what === 'lock', 'the build to wait for the lock');
      expect(await building()).toBe(1);
      expect((await executeControl(job, { command: 'abort' }, silentLogger())).ok).toBe(true);
      // The reader stays: the job must not wait for the build it started. It cannot drop the
      // table the reader holds either, and says so (exit 5, the table and the fix named).
      const stopped = await running.then(() => null, (e: unknown) => e);
      expect(stopped).toBeInstanceOf(AbortLeftBehindError);
      expect(String((stopped as Error).message)).toMatch(/stopped_ssnew[\s\S]*cleanup --execute/);
      expect(await building()).toBe(0);
    } finally {
      await reader.query('ROLLBACK');
      await reader.end();
      await job.close();
    }
    // What the reader kept, once it has let go.
    await conn.query('DROP TABLE IF EXISTS stopped_ssnew, stopped_sslog');
    expect(await conn.query<RowDataPacket[]>('CHECKSUM TABLE stopped').then(([r]) => r)).toEqual(before[0]);
  });

  it('a replica reading the binlog keeps them in place unless --defer-indexes says otherwise', async () => {
    await createWorkloadTable(url, 'replicated');
    await seedWorkloadTable(url, 'replicated', 1000);
    const user = `ss_replica_${process.pid}`;
    await conn.query(`CREATE USER '${user}'@'%' IDENTIFIED BY 'r'`);
    let reader: ChildProcess | null = null;
    try {
      await conn.query(`GRANT REPLICATION SLAVE ON *.* TO '${user}'@'%'`);
      const [logs] = await conn.query<RowDataPacket[]>('SHOW BINARY LOGS');
      const { port } = parseConnectionUrl(url);
      reader = spawn('mariadb-binlog', ['--no-defaults', '--read-from-remote-server', '--stop-never', '-h127.0.0.1', `-P${port}`, `-u${user}`, '-pr', String(logs.at(-1)!.Log_name)], { stdio: 'ignore' });
      await waitUntil(async () => {
        const [r] = await conn.query<RowDataPacket[]>("SELECT 1 FROM information_schema.PROCESSLIST WHERE USER = ? AND COMMAND = 'Binlog Dump'", [user]);
        return r.length > 0;
      }, 'the replica to read the binlog');

      for (const deferIndexes of [undefined, true]) {
        const job = newJob(url, 'replicated', ALTER, { deferIndexes });
        try {
          const report = await job.prepare();
          expect(report).toMatchObject({ deferredIndexes: deferIndexes ? 'on' : 'off', deferredIndexesConcern: '1 session of another user reads the binlog (a replica)' });
          expect(formatPlan(report, false)).toContain(
            deferIndexes
              ? 'built after the copy (--defer-indexes), although 1 session of another user reads the binlog (a replica): its replication stalls while it applies the build'
              : 'built before the copy, as 1 session of another user reads the binlog (a replica): a replica applies a build after it as one statement',
          );
        } finally {
          await job.close();
        }
      }
    } finally {
      reader?.kill('SIGKILL');
      // Its dump thread would outlive the client until the next event: no other job should see it.
      const [dumps] = await conn.query<RowDataPacket[]>('SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ?', [user]);
      for (const d of dumps) await conn.query(`KILL ${Number(d.ID)}`).catch(() => undefined);
      await conn.query(`DROP USER '${user}'@'%'`);
    }
  });
});
