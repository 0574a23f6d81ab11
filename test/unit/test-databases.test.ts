import { describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import pg from 'pg';
import mysql from 'mysql2/promise';
import { createMysqlDatabase, createPgDatabase, dropAfterFile, dropCreatedDatabases, pgConnect } from '../support/databases.js';

// per-file.ts calls dropCreatedDatabases after every file: nothing a file creates stays on the shared servers.
describe('test databases', () => {
  it('are dropped after the file, also with a session, an active stream slot and an inactive slot still in them; so are the roles and users it registered', async () => {
    const m = await createMysqlDatabase('drop');
    const p = await createPgDatabase('drop');
    const stay = await pgConnect(p.url);
    await stay.query(`SELECT pg_create_logical_replication_slot('drop_idle', 'pgoutput')`);
    stay.on('error', () => undefined);
    const repl = new pg.Client({ connectionString: p.url, replication: 'database' } as pg.ClientConfig);
    repl.on('error', () => undefined);
    await repl.connect();
    await repl.query(`CREATE_REPLICATION_SLOT drop_active LOGICAL pgoutput`);
    // A role with privileges in the database, and a MySQL user.
    await stay.query(`CREATE ROLE drop_role_t; GRANT CREATE ON SCHEMA public TO drop_role_t`);
    dropAfterFile('postgres', 'drop_role_t');
    const myc = await mysql.createConnection(inject('mysqlAdminUrl'));
    await myc.query(`CREATE USER 'drop_user_t'@'%' IDENTIFIED BY 'pw'`);
    await myc.end();
    dropAfterFile('mysql', `'drop_user_t'@'%'`);
    await dropCreatedDatabases();
    const admin = new pg.Client({ connectionString: inject('pgAdminUrl').replace(/\/?$/, '/postgres') });
    await admin.connect();
    expect((await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [p.name])).rows).toEqual([]);
    expect((await admin.query(`SELECT 1 FROM pg_replication_slots WHERE slot_name LIKE 'drop\\_%'`)).rows).toEqual([]);
    expect((await admin.query(`SELECT 1 FROM pg_roles WHERE rolname = 'drop_role_t'`)).rows).toEqual([]);
    await admin.end();
    const my = await mysql.createConnection(inject('mysqlAdminUrl'));
    const [rows] = await my.query('SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?', [m.name]);
    const [users] = await my.query(`SELECT User FROM mysql.user WHERE User = 'drop_user_t'`);
    await my.end();
    expect(rows).toEqual([]);
    expect(users).toEqual([]);
    await stay.end().catch(() => undefined);
    await repl.end().catch(() => undefined);
  });
});
