// ALTERs end to end through the engine on PostgreSQL, the ALTERs that would
// lose data, and every refusal: each names its cause and leaves nothing behind.

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import type pg from 'pg';
import { createPgDatabase, dropAfterFile, pgConnect } from '../support/databases.js';
import { startPostgres, type RunningServer } from '../support/servers.js';
import { runAlter } from '../support/alter.js';
import { DataLossError, PreflightError } from '../../src/util/errors.js';

let url: string;
let c: pg.Client;

beforeAll(async () => {
  url = (await createPgDatabase('pgvar')).url;
  c = await pgConnect(url);
});
afterAll(async () => {
  await c?.end();
});

async function q(sql: string): Promise<Record<string, unknown>[]> {
  return (await c.query(sql)).rows;
}

/** Definition, contents and every object of ours: what "untouched, nothing left" means. */
async function fingerprint(table: string) {
  const def = await q(`SELECT attname, format_type(atttypid, atttypmod) AS t, attnotnull FROM pg_attribute WHERE attrelid = '${table}'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`);
  const contents = await q(`SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) AS h, count(*) AS n FROM ${table} t`);
  const objects = await q("SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace ORDER BY relname");
  const slots = await q('SELECT slot_name FROM pg_replication_slots WHERE database = current_database()');
  const pubs = await q('SELECT pubname FROM pg_publication');
  return { def, contents, objects, slots, pubs };
}

async function seed(name: string, extra = ''): Promise<void> {
  await c.query(`DROP TABLE IF EXISTS ${name} CASCADE`);
  await c.query(`CREATE TABLE ${name} (id int PRIMARY KEY, a int NOT NULL, b varchar(40), c text${extra})`);
  await c.query(`INSERT INTO ${name} SELECT g, g * 3, 'b-' || g, repeat('x', g % 50) FROM generate_series(1, 3000) g`);
}

describe('ALTERs the engine carries data through (PostgreSQL)', () => {
  it('adds a column with a default and an index', async () => {
    await seed('p_add');
    const r = await runAlter(url, 'p_add', "ADD COLUMN d varchar(10) NOT NULL DEFAULT 'dflt'");
    expect(r.rowsCopied).toBe(3000);
    expect(await q("SELECT count(*) AS n FROM p_add WHERE d = 'dflt' AND b = 'b-' || id AND a = id * 3")).toEqual([{ n: '3000' }]);
  });

  it('changes a type, drops and renames columns', async () => {
    await seed('p_mod');
    await runAlter(url, 'p_mod', 'ALTER COLUMN a TYPE bigint, DROP COLUMN c, RENAME COLUMN b TO bee');
    expect(await q("SELECT format_type(atttypid, atttypmod) AS t FROM pg_attribute WHERE attrelid = 'p_mod'::regclass AND attname = 'a'")).toEqual([{ t: 'bigint' }]);
    expect(await q("SELECT count(*) AS n FROM p_mod WHERE a = id * 3 AND bee = 'b-' || id")).toEqual([{ n: '3000' }]);
  });

  it('works with a composite primary key', async () => {
    await c.query('CREATE TABLE p_comp (tenant int, id int, v text, PRIMARY KEY (tenant, id))');
    await c.query("INSERT INTO p_comp SELECT g % 7, g, 'v' || g FROM generate_series(1, 5000) g");
    await runAlter(url, 'p_comp', 'ADD COLUMN w int DEFAULT 5', { chunkSize: 333 });
    expect(await q("SELECT count(*) AS n, sum(w) AS s FROM p_comp WHERE v = 'v' || id")).toEqual([{ n: '5000', s: '25000' }]);
  });
});

describe('ALTERs that would lose data fail, original untouched (PostgreSQL)', () => {
  async function expectDataLoss(table: string, alter: string, message: RegExp) {
    const before = await fingerprint(table);
    const err = await runAlter(url, table, alter).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(DataLossError);
    expect((err as Error).message).toMatch(message);
    expect(await fingerprint(table)).toEqual(before);
  }
  it('a new UNIQUE constraint over duplicates', async () => {
    await seed('p_dup');
    await c.query("UPDATE p_dup SET b = 'same' WHERE id IN (1500, 2500)");
    await expectDataLoss('p_dup', 'ADD CONSTRAINT u_b UNIQUE (b)', /u_b|duplicate|unique/i);
  });
  it('NOT NULL over NULLs', async () => {
    await seed('p_nn');
    await c.query('UPDATE p_nn SET b = NULL WHERE id = 1234');
    await expectDataLoss('p_nn', 'ALTER COLUMN b SET NOT NULL', /\bb\b|null/i);
  });
  it('a narrowing type', async () => {
    await seed('p_narrow');
    await c.query("UPDATE p_narrow SET b = 'longer than five' WHERE id = 2999");
    await expectDataLoss('p_narrow', 'ALTER COLUMN b TYPE varchar(5)', /\bb\b|too long|truncat/i);
  });
});

describe('refusals (PostgreSQL)', () => {
  async function expectRefusal(u: string, client: pg.Client, table: string, alter: string, cause: RegExp) {
    const before = await (async () => {
      const saved = c;
      c = client;
      try {
        return await fingerprint(table);
      } finally {
        c = saved;
      }
    })();
    const err = await runAlter(u, table, alter).then(() => null, (e: unknown) => e);
    expect(err, 'the job should have been refused').toBeInstanceOf(PreflightError);
    expect((err as Error).message).toMatch(cause);
    const saved = c;
    c = client;
    try {
      expect(await fingerprint(table)).toEqual(before);
    } finally {
      c = saved;
    }
  }

  it('no primary key', async () => {
    await c.query('CREATE TABLE p_nokey (a int, b int)');
    await c.query('INSERT INTO p_nokey VALUES (1, 1), (1, 1)');
    await expectRefusal(url, c, 'p_nokey', 'ADD COLUMN x int', /primary key/i);
  });
  it('partitioned tables', async () => {
    await c.query('CREATE TABLE p_part (id int, d date, PRIMARY KEY (id, d)) PARTITION BY RANGE (d)');
    await c.query("CREATE TABLE p_part_2026 PARTITION OF p_part FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')");
    await expectRefusal(url, c, 'p_part', 'ADD COLUMN x int', /partition/i);
  });
  it('an ALTER that renames the table', async () => {
    await seed('p_ren');
    await expectRefusal(url, c, 'p_ren', 'RENAME TO p_ren2', /renam/i);
  });
  it('missing privileges, listed', async () => {
    await seed('p_priv');
    const role = `limited_${Date.now().toString(36)}`;
    await c.query(`CREATE ROLE ${role} LOGIN PASSWORD 'pw'`);
    dropAfterFile('postgres', role);
    await c.query(`GRANT SELECT ON p_priv TO ${role}`);
    const u = new URL(url);
    u.username = role;
    u.password = 'pw';
    await expectRefusal(u.toString(), c, 'p_priv', 'ADD COLUMN x int', /replication|owner|privilege/i);
  });

  describe('server settings', () => {
    let replicaLevel: RunningServer;
    let noSlots: RunningServer;
    beforeAll(async () => {
      [replicaLevel, noSlots] = await Promise.all([
        startPostgres({ extraArgs: ['-c', 'wal_level=replica'] }),
        startPostgres({ extraArgs: ['-c', 'max_replication_slots=1'] }),
      ]);
    }, 60_000);
    afterAll(async () => {
      await Promise.all([replicaLevel?.stop(), noSlots?.stop()]);
    });

    async function prepared(server: RunningServer) {
      const u = server.adminUrl('postgres');
      const client = await pgConnect(u);
      await client.query('CREATE TABLE IF NOT EXISTS t (id int PRIMARY KEY, v int)');
      await client.query('INSERT INTO t VALUES (1, 1) ON CONFLICT DO NOTHING');
      return { u, client };
    }

    it('wal_level not logical', async () => {
      const { u, client } = await prepared(replicaLevel);
      await expectRefusal(u, client, 't', 'ADD COLUMN x int', /wal_level/i);
      await client.end();
    });
    it('no free replication slot', async () => {
      const { u, client } = await prepared(noSlots);
      await client.query("SELECT pg_create_logical_replication_slot('someone_elses', 'pgoutput')");
      await expectRefusal(u, client, 't', 'ADD COLUMN x int', /slot/i);
      await client.query("SELECT pg_drop_replication_slot('someone_elses')");
      await client.end();
    });
  });
});
