// Every refusal names its cause, and leaves the original exactly as it was with
// nothing else behind.

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import type { Connection } from 'mysql2/promise';
import { createMysqlDatabase, mysqlConnect } from '../support/databases.js';
import { startMariaDb, type RunningServer } from '../support/servers.js';
import { runAlter, type TestAlterOptions } from '../support/alter.js';
import { PreflightError } from '../../src/util/errors.js';

async function fingerprint(conn: Connection, table: string) {
  const [create] = (await conn.query(`SHOW CREATE TABLE \`${table}\``)) as unknown as [Array<Record<string, string>>];
  const [checksum] = (await conn.query(`CHECKSUM TABLE \`${table}\``)) as unknown as [Array<Record<string, string>>];
  const [tables] = (await conn.query('SHOW TABLES')) as unknown as [Array<Record<string, string>>];
  return { create: create[0]!['Create Table'], checksum: checksum[0]!.Checksum, tables: tables.map((r) => Object.values(r)[0]).sort() };
}

async function expectRefusal(conn: Connection, url: string, table: string, alter: string, cause: RegExp, options: TestAlterOptions = {}): Promise<void> {
  const before = await fingerprint(conn, table);
  const err = await runAlter(url, table, alter, options).then(
    () => null,
    (e: unknown) => e,
  );
  expect(err, 'the job should have been refused').toBeInstanceOf(PreflightError);
  expect((err as Error).message).toMatch(cause);
  expect(await fingerprint(conn, table)).toEqual(before);
}

describe('refusals on the shared server', () => {
  let url: string;
  let conn: Connection;
  beforeAll(async () => {
    url = (await createMysqlDatabase('refuse')).url;
    conn = await mysqlConnect(url);
    await conn.query('CREATE TABLE no_key (a INT, b INT)');
    await conn.query('INSERT INTO no_key VALUES (1, 1), (1, 1)');
    await conn.query('CREATE TABLE nullable_unique (a INT NULL, UNIQUE KEY (a))');
    await conn.query('INSERT INTO nullable_unique VALUES (1), (NULL)');
    await conn.query('CREATE TABLE parent (id INT PRIMARY KEY)');
    await conn.query('CREATE TABLE child (id INT PRIMARY KEY, parent_id INT, FOREIGN KEY (parent_id) REFERENCES parent (id))');
    await conn.query('INSERT INTO parent VALUES (1)');
    await conn.query('INSERT INTO child VALUES (1, 1)');
    await conn.query('CREATE TABLE with_trigger (id INT PRIMARY KEY, n INT)');
    await conn.query('CREATE TRIGGER trg_with_trigger BEFORE INSERT ON with_trigger FOR EACH ROW SET NEW.n = 1');
    await conn.query('CREATE TABLE plain (id INT PRIMARY KEY, n INT)');
    await conn.query('INSERT INTO plain VALUES (1, 1), (2, 2)');
  });
  afterAll(async () => {
    await conn?.end();
  });

  it('no primary key and no NOT NULL unique key', async () => {
    await expectRefusal(conn, url, 'no_key', 'ADD COLUMN c INT', /primary key|unique key/i);
    await expectRefusal(conn, url, 'nullable_unique', 'ADD COLUMN c INT', /primary key|unique key/i);
  });
  it('foreign keys a revert could not carry back (--revertible), on either side', async () => {
    await expectRefusal(conn, url, 'child', 'ADD COLUMN c INT', /has foreign keys \(child_ibfk_1\): a revert cannot carry them back yet/, { revertible: true });
    await expectRefusal(conn, url, 'parent', 'ADD COLUMN c INT', /has foreign keys \(child\.child_ibfk_1\): a revert cannot carry them back yet/, { revertible: true });
  });
  it("triggers the user may not re-create: without TRIGGER, or another user's as definer without SET USER", async () => {
    // Triggers themselves move with the table (test/mysql/triggers.test.ts); a user who
    // could not re-create them on the new table is refused before anything is made.
    const user = `trg_${Date.now().toString(36)}`;
    const db = new URL(url).pathname.slice(1);
    await conn.query(`CREATE USER '${user}'@'%' IDENTIFIED BY 'pw'`);
    try {
      await conn.query(`GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, ALTER, INDEX, LOCK TABLES, CREATE TEMPORARY TABLES ON \`${db}\`.* TO '${user}'@'%'`);
      await conn.query(`GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO '${user}'@'%'`);
      const limited = new URL(url);
      limited.username = user;
      limited.password = 'pw';
      await expectRefusal(conn, limited.toString(), 'with_trigger', 'ADD COLUMN c INT', /lacks the TRIGGER privilege[\s\S]*GRANT TRIGGER ON/);
      await conn.query(`GRANT TRIGGER ON \`${db}\`.* TO '${user}'@'%'`);
      await expectRefusal(conn, limited.toString(), 'with_trigger', 'ADD COLUMN c INT', /run as root@[\s\S]*keeping their definer[\s\S]*SET USER/);
    } finally {
      await conn.query(`DROP USER '${user}'@'%'`);
    }
  });
  it('an ALTER that renames the table', async () => {
    await expectRefusal(conn, url, 'plain', 'RENAME TO plain2', /renam/i);
    await expectRefusal(conn, url, 'plain', 'ADD COLUMN c INT, RENAME AS plain3', /renam/i);
  });
  it('an ALTER with a syntax error shows the server message and leaves nothing', async () => {
    const before = await fingerprint(conn, 'plain');
    await expect(runAlter(url, 'plain', 'ADD COLUMN c INTEGR')).rejects.toThrow(/syntax/i);
    expect(await fingerprint(conn, 'plain')).toEqual(before);
  });
  it('missing privileges, listed', async () => {
    const user = `limited_${Date.now().toString(36)}`;
    const db = new URL(url).pathname.slice(1);
    await conn.query(`CREATE USER '${user}'@'%' IDENTIFIED BY 'pw'`);
    await conn.query(`GRANT SELECT ON \`${db}\`.* TO '${user}'@'%'`);
    const limited = new URL(url);
    limited.username = user;
    limited.password = 'pw';
    await expectRefusal(conn, limited.toString(), 'plain', 'ADD COLUMN c INT', /privilege[\s\S]*(INSERT|CREATE|REPLICATION)/i);
    await conn.query(`DROP USER '${user}'@'%'`);
  });
});

describe('refusals that need a differently configured server', () => {
  let server: RunningServer;
  let noBinlog: RunningServer;
  let conn: Connection;
  let url: string;
  beforeAll(async () => {
    [server, noBinlog] = await Promise.all([startMariaDb(), startMariaDb({ extraArgs: ['--skip-log-bin'] })]);
    for (const s of [server, noBinlog]) {
      const c = await mysqlConnect(s.adminUrl('mysql'));
      await c.query('CREATE DATABASE app');
      await c.query('CREATE TABLE app.t (id INT PRIMARY KEY, v INT)');
      await c.query('INSERT INTO app.t VALUES (1, 1), (2, 2)');
      await c.end();
    }
    url = server.adminUrl('app');
    conn = await mysqlConnect(url);
  }, 60_000);
  afterAll(async () => {
    await conn?.end();
    await Promise.all([server?.stop(), noBinlog?.stop()]);
  });

  it('binary log off', async () => {
    const c = await mysqlConnect(noBinlog.adminUrl('app'));
    await expectRefusal(c, noBinlog.adminUrl('app'), 't', 'ADD COLUMN c INT', /log.bin|binary log/i);
    await c.end();
  });
  it('binlog_format not ROW', async () => {
    await conn.query("SET GLOBAL binlog_format = 'STATEMENT'");
    await expectRefusal(conn, url, 't', 'ADD COLUMN c INT', /binlog_format/i);
    await conn.query("SET GLOBAL binlog_format = 'ROW'");
  });
  it('binlog_row_image not FULL', async () => {
    await conn.query("SET GLOBAL binlog_row_image = 'MINIMAL'");
    await expectRefusal(conn, url, 't', 'ADD COLUMN c INT', /binlog_row_image/i);
    await conn.query("SET GLOBAL binlog_row_image = 'FULL'");
  });
  it('binlog_row_metadata not FULL', async () => {
    await conn.query("SET GLOBAL binlog_row_metadata = 'NO_LOG'");
    await expectRefusal(conn, url, 't', 'ADD COLUMN c INT', /binlog_row_metadata/i);
    await conn.query("SET GLOBAL binlog_row_metadata = 'FULL'");
  });
});
