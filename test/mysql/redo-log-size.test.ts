// A redo log smaller than the table fills during the copy, and InnoDB then makes every
// write on the server wait for a synchronous flush (bench/RESULTS.md, eighth session).
// The job cannot size the server's redo log: its preflight passes with a warning that
// names both sizes and the fix, and stops warning once the redo log holds the table.

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import type { Connection } from 'mysql2/promise';
import { startMariaDb, type RunningServer } from '../support/servers.js';
import { mysqlConnect } from '../support/databases.js';
import { newJob } from '../support/alter.js';
import { mysqlSeq } from '../support/db.js';
import { redoLogAdvice, redoLogBytes } from '../../src/dialects/mysql/checks/redo-log-size.js';

describe('preflight: redo-log-size', () => {
  let server: RunningServer;
  let admin: Connection;

  beforeAll(async () => {
    server = await startMariaDb({ extraArgs: ['--innodb-log-file-size=8M', '--innodb-log-buffer-size=2M'] });
    admin = await mysqlConnect(server.adminUrl('mysql'));
    await admin.query('CREATE DATABASE shop');
    await admin.query('CREATE TABLE shop.t (id INT PRIMARY KEY, pad VARCHAR(255) NOT NULL)');
    await admin.query(`INSERT INTO shop.t SELECT seq, REPEAT('x', 250) FROM ${mysqlSeq(1, 80000)}`);
    await admin.query('ANALYZE TABLE shop.t');
  }, 120_000);
  afterAll(async () => {
    await admin?.end();
    await server?.stop();
  });

  it('counts the redo log as each server sizes it', () => {
    // MySQL 8.0.30+: innodb_redo_log_capacity, whatever the deprecated per-file settings say.
    expect(redoLogBytes({ innodb_redo_log_capacity: '104857600', innodb_log_file_size: '50331648', innodb_log_files_in_group: '2' })).toBe(104857600);
    expect(redoLogBytes({ innodb_log_file_size: '50331648', innodb_log_files_in_group: '2' })).toBe(100663296);
    expect(redoLogBytes({ innodb_log_file_size: '100663296' })).toBe(100663296);
    expect(redoLogAdvice(100 * 2 ** 20, 100 * 2 ** 20)).toBeNull();
    expect(redoLogAdvice(101 * 2 ** 20, 100 * 2 ** 20)).toMatch(/^the table holds about 101 MB and InnoDB's redo log 100 MB/);
  });

  it('warns, passing, while the table is larger than the redo log, and not once the redo log is grown online', async () => {
    const check = async () => {
      const job = newJob(server.adminUrl('shop'), 't', 'ADD COLUMN w INT');
      try {
        const report = await job.prepare();
        expect(report.ok, JSON.stringify(report.checks.filter((c) => !c.ok))).toBe(true);
        return report.checks.find((c) => c.check === 'redo-log-size');
      } finally {
        await job.close();
      }
    };
    expect(await check()).toMatchObject({
      ok: true,
      warning: true,
      message: expect.stringMatching(/^the table holds about (1[6-9]|2\d) MB and InnoDB's redo log 8 MB: the copy will fill the redo log[\s\S]*raise innodb_log_file_size/),
    });
    // MariaDB 10.11 resizes the redo log online, as the warning says.
    await admin.query('SET GLOBAL innodb_log_file_size = 64 * 1024 * 1024');
    const after = await check();
    expect(after).toMatchObject({ ok: true, message: expect.stringMatching(/^the redo log \(64 MB\) holds the table's \d+ MB$/) });
    expect(after?.warning).toBeUndefined();
  });
});
