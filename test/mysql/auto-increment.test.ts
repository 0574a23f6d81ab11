// AUTO_INCREMENT across the swap (issue 18): an explicit `AUTO_INCREMENT=N` in the ALTER
// is honoured as a native ALTER honours it (raised to the largest id + 1), and without
// one the new table's counter is at least the original's, ids freed at the top included.

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Connection } from 'mysql2/promise';
import { createMysqlDatabase, mysqlConnect } from '../support/databases.js';
import { newJob, runAlter, waitUntil } from '../support/alter.js';

let url: string;
let conn: Connection;

beforeAll(async () => {
  url = (await createMysqlDatabase('autoinc')).url;
  conn = await mysqlConnect(url);
});
afterAll(async () => {
  await conn?.end();
});

async function counter(table: string): Promise<number> {
  const [rows] = (await conn.query('SELECT AUTO_INCREMENT AS ai FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?', [table])) as unknown as [
    Array<{ ai: number }>,
  ];
  return Number(rows[0]!.ai);
}

async function seed(table: string): Promise<void> {
  await conn.query(`CREATE TABLE ${table} (id INT AUTO_INCREMENT PRIMARY KEY, i INT NOT NULL)`);
  await conn.query(`INSERT INTO ${table} (i) VALUES (11), (13), (17), (23), (29), (31), (37)`);
  await conn.query(`DELETE FROM ${table} WHERE id >= 5`); // counter 8, largest id 4
}

describe('AUTO_INCREMENT across the swap', () => {
  it('honours AUTO_INCREMENT=N in the ALTER, as a native ALTER does', async () => {
    await seed('ai_explicit');
    await runAlter(url, 'ai_explicit', 'AUTO_INCREMENT=7');
    expect(await counter('ai_explicit')).toBe(7);
    await seed('ai_below');
    await runAlter(url, 'ai_below', 'AUTO_INCREMENT=2'); // below the largest id: the server makes it 5
    expect(await counter('ai_below')).toBe(5);
  });

  it('keeps the counter at least the original one without it, ids freed during the job included', async () => {
    await seed('ai_kept');
    const dir = mkdtempSync(join(tmpdir(), 'ss-autoinc-'));
    const flag = join(dir, 'postpone');
    writeFileSync(flag, '');
    const job = newJob(url, 'ai_kept', 'ADD COLUMN note VARCHAR(10)', { postponeCutoverFlagFile: flag });
    try {
      const running = job.execute(await job.prepare());
      await waitUntil(() => job.status().state === 'postponed' || job.status().state === 'failed', 'the job to postpone');
      await conn.query('INSERT INTO ai_kept (i) VALUES (41), (43), (47)'); // ids 8..10
      await conn.query('DELETE FROM ai_kept WHERE id >= 8');
      await waitUntil(() => job.status().eventsApplied >= 6 || job.status().state === 'failed', 'the stream to apply the writes');
      rmSync(flag);
      await running;
    } finally {
      await job.close();
      rmSync(dir, { recursive: true, force: true });
    }
    expect(await counter('ai_kept')).toBeGreaterThanOrEqual(await counter(job.status().backupTable!));
    await conn.query('INSERT INTO ai_kept (i) VALUES (53)');
    const [[row]] = (await conn.query('SELECT MAX(id) AS id FROM ai_kept')) as unknown as [Array<{ id: number }>];
    expect(row!.id).toBe(11);
  });
});
