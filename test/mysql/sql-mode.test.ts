// The shadow's DDL runs under the server's sql_mode (issue 18): an ALTER the server
// would refuse is refused with the server's message, before anything is created. The
// relaxation shadowshift's own sessions keep (zero dates allowed) is for copying rows
// only: a table that already holds zero dates is still copied exactly.

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import type { Connection } from 'mysql2/promise';
import { startMariaDb, type RunningServer } from '../support/servers.js';
import { mysqlConnect } from '../support/databases.js';
import { newJob, runAlter } from '../support/alter.js';

const STRICT = 'STRICT_TRANS_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION';

describe("the server's sql_mode", () => {
  let server: RunningServer;
  let admin: Connection;
  let url: string;

  beforeAll(async () => {
    server = await startMariaDb({ extraArgs: [`--sql-mode=${STRICT}`] });
    admin = await mysqlConnect(server.adminUrl('mysql'));
    await admin.query('CREATE DATABASE app');
    url = server.adminUrl('app');
  }, 60_000);
  afterAll(async () => {
    await admin?.end();
    await server?.stop();
  });

  it('refuses an ALTER the server refuses, with its message, leaving nothing behind', async () => {
    await admin.query('CREATE TABLE app.ev (id INT PRIMARY KEY, dt DATETIME)');
    await admin.query("INSERT INTO app.ev VALUES (1, '2024-01-02 03:04:05')");
    const job = newJob(url, 'ev', "CHANGE COLUMN dt dt DATETIME NOT NULL DEFAULT '1970-00-00 00:00:00'");
    try {
      const report = await job.prepare();
      expect(report.ok).toBe(false);
      expect(report.checks.filter((c) => !c.ok).map((c) => c.message).join('\n')).toContain("Invalid default value for 'dt'");
    } catch (err) {
      expect((err as Error).message).toContain("Invalid default value for 'dt'");
    } finally {
      await job.close();
    }
    const [tables] = await admin.query("SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'app' AND TABLE_NAME LIKE '%ev%'");
    expect(tables).toEqual([{ t: 'ev' }]);
    const [rows] = await admin.query('SELECT id, CAST(dt AS CHAR) AS dt FROM app.ev');
    expect(rows).toEqual([{ id: 1, dt: '2024-01-02 03:04:05' }]);
  });

  it("refuses a table whose own definition the server's mode refuses, as a native ALTER would", async () => {
    const legacy = await mysqlConnect(url);
    try {
      await legacy.query("SET SESSION sql_mode = ''");
      await legacy.query("CREATE TABLE zdef (id INT PRIMARY KEY, dt DATETIME NOT NULL DEFAULT '1970-00-00 00:00:00')");
    } finally {
      await legacy.end();
    }
    const job = newJob(url, 'zdef', 'ENGINE=InnoDB');
    const message = await job.prepare().then(
      (r) => r.checks.filter((c) => !c.ok).map((c) => c.message).join('\n'),
      (err: Error) => err.message,
    );
    await job.close();
    expect(message).toContain("Invalid default value for 'dt'");
    expect(message).toContain('current definition');
  });

  it('still copies rows the mode would not accept as new values (zero dates already stored)', async () => {
    const legacy = await mysqlConnect(url);
    try {
      await legacy.query("SET SESSION sql_mode = ''");
      await legacy.query('CREATE TABLE zd (id INT PRIMARY KEY, dt DATETIME NULL, d DATE NULL)');
      await legacy.query("INSERT INTO zd VALUES (1, '0000-00-00 00:00:00', '2024-00-10'), (2, '2024-05-06 07:08:09', '0000-00-00')");
    } finally {
      await legacy.end();
    }
    await runAlter(url, 'zd', 'ADD COLUMN note VARCHAR(10) NULL');
    const [rows] = await admin.query('SELECT id, CAST(dt AS CHAR) AS dt, CAST(d AS CHAR) AS d, note FROM app.zd ORDER BY id');
    expect(rows).toEqual([
      { id: 1, dt: '0000-00-00 00:00:00', d: '2024-00-10', note: null },
      { id: 2, dt: '2024-05-06 07:08:09', d: '0000-00-00', note: null },
    ]);
  });
});
