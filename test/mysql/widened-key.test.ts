// The ALTER widens the primary key (issue 18): `DROP PRIMARY KEY, ADD PRIMARY KEY (id, i)`,
// as before partitioning by i. The original's key (id) is unique in the new table too,
// inside the wider one, so rows are matched on it. The stream must follow a change of i
// (a change of the new table's key) without leaving the old row behind.

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Connection } from 'mysql2/promise';
import { createMysqlDatabase, mysqlConnect } from '../support/databases.js';
import { newJob, waitUntil } from '../support/alter.js';
import { mysqlSeq } from '../support/db.js';

let url: string;
let conn: Connection;

beforeAll(async () => {
  url = (await createMysqlDatabase('widened')).url;
  conn = await mysqlConnect(url);
});
afterAll(async () => {
  await conn?.end();
});

const rows = async (table: string) => (await conn.query(`SELECT id, i, c FROM \`${table}\` ORDER BY id`))[0];

describe('primary key widened to a superset', () => {
  it('matches rows on the original key while copy and stream run', async () => {
    await conn.query('CREATE TABLE wk (id INT AUTO_INCREMENT PRIMARY KEY, i INT NOT NULL, c VARCHAR(20))');
    await conn.query(`INSERT INTO wk (i, c) SELECT seq % 7, CONCAT('r', seq) FROM ${mysqlSeq(1, 300)}`);

    const dir = mkdtempSync(join(tmpdir(), 'ss-widened-'));
    const flag = join(dir, 'postpone');
    writeFileSync(flag, '');
    const job = newJob(url, 'wk', 'DROP PRIMARY KEY, ADD PRIMARY KEY (id, i)', { postponeCutoverFlagFile: flag, chunkSize: 50 });
    try {
      const report = await job.prepare();
      expect(report.checks.filter((c) => !c.ok)).toEqual([]);
      const running = job.execute(report);
      await waitUntil(() => job.status().state === 'postponed' || job.status().state === 'failed', 'the job to postpone');
      expect(job.status().error).toBeNull();

      await conn.query('UPDATE wk SET i = i + 100 WHERE id IN (1, 2, 3)'); // the new key's other column
      await conn.query("UPDATE wk SET c = 'changed' WHERE id = 4");
      await conn.query('UPDATE wk SET i = 1000, c = NULL WHERE id = 5');
      await conn.query('UPDATE wk SET i = 2000 WHERE id = 5');
      await conn.query('DELETE FROM wk WHERE id = 6');
      await conn.query("INSERT INTO wk (i, c) VALUES (1, 'new'), (1, 'new2')");
      await waitUntil(() => job.status().eventsApplied >= 9 || job.status().state === 'failed', 'the stream to apply the writes');
      await waitUntil(() => job.status().backlog === 0, 'the backlog to drain');
      expect(job.status().error).toBeNull();
      expect(await rows(job.status().shadowTable!)).toEqual(await rows('wk'));

      rmSync(flag);
      const result = await running;
      expect(result.repairedChunks).toBe(0);
      expect(await rows('wk')).toEqual(await rows(job.status().backupTable!));
    } finally {
      await job.close();
      rmSync(dir, { recursive: true, force: true });
    }
    const [[pk]] = (await conn.query("SELECT GROUP_CONCAT(COLUMN_NAME ORDER BY SEQ_IN_INDEX) AS k FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'wk' AND INDEX_NAME = 'PRIMARY'")) as unknown as [
      Array<{ k: string }>,
    ];
    expect(pk!.k).toBe('id,i');
  });
});
