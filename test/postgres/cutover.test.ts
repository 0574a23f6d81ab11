import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import type { PostgresSession } from '../../src/dialects/postgres/postgres-dialect.js';
import type { ChangeStream, CopyPlan, ArtefactNames } from '../../src/dialects/dialect.js';
import { CutoverAttemptError } from '../../src/util/errors.js';
import { silentLogger } from '../../src/util/logger.js';
import { drain, freshDb, makePlan, syncTo } from './helpers.js';
import { dropAfterFile, pgConnect } from '../support/databases.js';
import { waitUntil } from '../support/alter.js';
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';

let admin: pg.Client;
let session: PostgresSession;
let url: string;
const reader = `reader_${randomBytes(3).toString('hex')}`;

beforeAll(async () => {
  ({ admin, session, url } = await freshDb('pgcut'));
});
afterAll(async () => {
  await session?.close();
  await admin?.query(`DROP OWNED BY ${reader}`).catch(() => undefined);
  await admin?.end();
});

function capture() {
  const lines: Array<Record<string, unknown>> = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  return { log, lines };
}

async function prepare(table: string, alter: string, job: string, deferIndexes = false): Promise<{ plan: CopyPlan; names: ArtefactNames; stream: ChangeStream }> {
  const original = (await session.inspectTable({ schema: 'public', name: table }))!;
  const names = session.artefactNames(original.ref, job);
  const shadow = await session.createShadow(original, alter, names, { deferIndexes });
  if (deferIndexes) expect((await session.inspectTable(shadow.ref))!.indexes.map((i) => i.name)).toEqual([`${names.shadow}_pkey`.slice(0, 63)]);
  const plan = makePlan(original, shadow, session.analyzeAlter(alter));
  const stream = session.openChangeStream(plan, names, job);
  await stream.start();
  const b = (await session.copier.keyBounds(plan))!;
  await session.copier.copyChunk(plan, { after: null, upTo: b.max });
  await drain(session, stream, plan);
  return { plan, names, stream };
}

describe('cut-over', () => {
  it('a failed attempt (lock not available) leaves everything as it was', async () => {
    await admin.query(`CREATE TABLE blk (id int PRIMARY KEY, v text)`);
    await admin.query(`INSERT INTO blk SELECT g, 'x' FROM generate_series(1, 10) g`);
    const { plan, names, stream } = await prepare('blk', 'ADD COLUMN w int', 'blk-job');
    const before = await admin.query(`SELECT oid::text, relname FROM pg_class WHERE relname IN ('blk', $1) OR relname LIKE 'blk%' ORDER BY 2`, [names.shadow]);
    const blocker = await pgConnect(url);
    let drained = 0;
    try {
      await blocker.query(`BEGIN; SELECT count(*) FROM blk`);
      const started = Date.now();
      const err = await session.cutover
        .swap(plan, names, { lockTimeoutMs: 300, drainUnderLock: async () => { drained++; }, log: silentLogger() })
        .catch((e) => e);
      expect(err).toBeInstanceOf(CutoverAttemptError);
      expect(Date.now() - started).toBeLessThan(3000);
      expect(drained).toBe(0);
      const after = await admin.query(`SELECT oid::text, relname FROM pg_class WHERE relname IN ('blk', $1) OR relname LIKE 'blk%' ORDER BY 2`, [names.shadow]);
      expect(after.rows).toEqual(before.rows);
      // The blocker's transaction was never disturbed.
      await blocker.query(`SELECT count(*) FROM blk`);
      await blocker.query('COMMIT');
      // Retrying now works.
      await session.cutover.swap(plan, names, { lockTimeoutMs: 300, drainUnderLock: async () => { await syncTo(session, stream, plan, 'blk-m'); }, log: silentLogger() });
      const cols = await admin.query(`SELECT attname FROM pg_attribute WHERE attrelid = 'blk'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`);
      expect(cols.rows.map((r) => r.attname)).toEqual(['id', 'v', 'w']);
    } finally {
      await blocker.end();
      await stream.stop();
      await session.dropArtefacts(names, { keepBackup: false });
    }
  });

  it('carries exactly the original grants, not the default privileges the shadow picked up', async () => {
    const extra = `extra_${randomBytes(3).toString('hex')}`;
    await admin.query(`CREATE ROLE ${extra}`);
    try {
      await admin.query(`CREATE TABLE dp (id int PRIMARY KEY)`); // NULL ACL: owner only
      await admin.query(`INSERT INTO dp VALUES (1)`);
      await admin.query(`CREATE ROLE ${extra}_own`);
      await admin.query(`ALTER TABLE dp OWNER TO ${extra}_own`);
      await admin.query(`ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO ${extra}`);
      const { plan, names, stream } = await prepare('dp', 'ADD COLUMN w int', 'dp-job');
      try {
        await session.cutover.swap(plan, names, { lockTimeoutMs: 1000, drainUnderLock: async () => { await syncTo(session, stream, plan, 'dp-m'); }, log: silentLogger() });
      } finally {
        await stream.stop();
        await admin.query(`ALTER DEFAULT PRIVILEGES REVOKE SELECT ON TABLES FROM ${extra}`);
      }
      const acl = await admin.query(`SELECT has_table_privilege($1, 'dp', 'SELECT') AS extra, has_table_privilege($2, 'dp', 'SELECT,INSERT,UPDATE,DELETE') AS owner`, [extra, `${extra}_own`]);
      expect(acl.rows[0]).toEqual({ extra: false, owner: true });
      await session.dropArtefacts(names, { keepBackup: false });
    } finally {
      await admin.query(`DROP OWNED BY ${extra}, ${extra}_own`);
      await admin.query(`DROP ROLE ${extra}`);
      await admin.query(`DROP ROLE IF EXISTS ${extra}_own`);
    }
  });

  it('keeps index names across column renames and names new indexes and constraints after the table', async () => {
    await admin.query(`CREATE TABLE ren (id int PRIMARY KEY, a int, b text)`);
    await admin.query(`CREATE INDEX ren_a_idx ON ren (a)`);
    await admin.query(`CREATE INDEX "Odd Index" ON ren (b) WHERE b IS NOT NULL`);
    await admin.query(`INSERT INTO ren SELECT g, g, 'b' || g FROM generate_series(1, 20) g`);
    const alter = 'RENAME COLUMN a TO a2, ADD CHECK (a2 >= 0), ADD UNIQUE (b)';
    const { plan, names, stream } = await prepare('ren', alter, 'ren-job');
    try {
      await session.cutover.swap(plan, names, { lockTimeoutMs: 1000, drainUnderLock: async () => { await syncTo(session, stream, plan, 'ren-m'); }, log: silentLogger() });
    } finally {
      await stream.stop();
    }
    const idx = await admin.query(`SELECT indexrelid::regclass::text AS n FROM pg_index WHERE indrelid = 'ren'::regclass ORDER BY 1`);
    expect(idx.rows.map((r) => r.n)).toEqual(['"Odd Index"', 'ren_a_idx', 'ren_b_key', 'ren_pkey']);
    const cons = await admin.query(`SELECT conname FROM pg_constraint WHERE conrelid = 'ren'::regclass AND contype <> 'n' ORDER BY 1`);
    expect(cons.rows.map((r) => r.conname)).toEqual(['ren_a2_check', 'ren_b_key', 'ren_pkey']);
    // PostgreSQL 18+ also lists NOT NULL constraints: named after the table, as before the swap, never after the shadow.
    const notNull = await admin.query(`SELECT conname FROM pg_constraint WHERE conrelid = 'ren'::regclass AND contype = 'n' ORDER BY 1`);
    const major = Math.floor(Number((await admin.query(`SELECT current_setting('server_version_num') AS n`)).rows[0].n) / 10000);
    expect(notNull.rows.map((r) => r.conname)).toEqual(major >= 18 ? ['ren_id_not_null'] : []);
    await session.dropArtefacts(names, { keepBackup: false });
  });

  it('builds the swap before the lock; a grant made while it waits for the lock is still carried', async () => {
    const late = `late_${randomBytes(3).toString('hex')}`;
    await admin.query(`CREATE ROLE ${late}`);
    try {
      await admin.query(`CREATE TABLE lg (id int PRIMARY KEY, v text)`);
      await admin.query(`INSERT INTO lg SELECT g, 'x' FROM generate_series(1, 20) g`);
      const { plan, names, stream } = await prepare('lg', 'ADD COLUMN w int', 'lg-job');
      const blocker = await pgConnect(url);
      const { log, lines } = capture();
      let grantedBeforeLock = false;
      try {
        await blocker.query(`BEGIN; SELECT count(*) FROM lg`);
        const swapping = session.cutover.swap(plan, names, { lockTimeoutMs: 10_000, drainUnderLock: async () => { await syncTo(session, stream, plan, 'lg-m'); }, log });
        swapping.catch(() => undefined);
        // The cut-over has read the catalog and queues for its lock; a GRANT takes no lock on the table.
        for (let i = 0; ; i++) {
          const w = await admin.query(`SELECT 1 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE a.application_name = 'shadowshift cut-over' AND NOT l.granted`);
          if (w.rows.length) break;
          if (i > 200) throw new Error('the cut-over never waited for its lock');
          await new Promise((r) => setTimeout(r, 25));
        }
        // Up to 17 a GRANT takes no lock on the table; 18 locks it (in-place catalog updates),
        // so there it queues behind the cut-over and lands on the new table after the swap.
        const granter = await pgConnect(url);
        let granted = false;
        const grant = granter.query(`GRANT SELECT ON lg TO ${late}`).then(() => void (granted = true));
        try {
          await waitUntil(async () => granted || (await admin.query(`SELECT 1 FROM pg_locks WHERE pid = $1 AND NOT granted`, [(granter as unknown as { processID: number }).processID])).rows.length > 0, 'the GRANT to finish or wait for a lock', 20_000, 25);
          grantedBeforeLock = granted;
          await blocker.query('COMMIT');
          await swapping;
          await grant;
        } finally {
          await granter.end();
        }
      } finally {
        await blocker.end();
        await stream.stop();
      }
      const acl = await admin.query(`SELECT has_table_privilege($1, 'lg', 'SELECT') AS sel, (SELECT count(*)::int FROM pg_attribute WHERE attrelid = 'lg'::regclass AND attname = 'w') AS w`, [late]);
      expect(acl.rows[0]).toEqual({ sel: true, w: 1 });
      const done = lines.find((l) => l.msg === 'cut-over committed')!;
      // The catalog changed between the cut-over's read and its lock only when the GRANT went through first.
      expect(done.catalogChanged).toBe(grantedBeforeLock);
      expect(lines.some((l) => String(l.msg).includes('catalog changed'))).toBe(grantedBeforeLock);
      await session.dropArtefacts(names, { keepBackup: false });
    } finally {
      await admin.query(`DROP OWNED BY ${late}`);
      await admin.query(`DROP ROLE ${late}`);
    }
  });

  it('gives a new index a name the original freed, and leaves it its own when the name stays taken', async () => {
    await admin.query(`CREATE TABLE fr (id int PRIMARY KEY, v int, u int)`);
    await admin.query(`CREATE INDEX fr_w_key ON fr (v)`);
    await admin.query(`CREATE INDEX fr_u_key ON fr (u)`);
    await admin.query(`INSERT INTO fr SELECT g, g, g FROM generate_series(1, 20) g`);
    await admin.query(`CREATE VIEW fr_v AS SELECT id, u FROM fr WHERE u > length('x;y') - 1000000`);
    const { plan, names, stream } = await prepare('fr', 'DROP COLUMN v, ADD COLUMN w int UNIQUE, ADD UNIQUE (u)', 'fr-job');
    const { log, lines } = capture();
    try {
      await session.cutover.swap(plan, names, { lockTimeoutMs: 1000, drainUnderLock: async () => { await syncTo(session, stream, plan, 'fr-m'); }, log });
    } finally {
      await stream.stop();
    }
    const idx = await admin.query(`SELECT ic.relname AS n, i.indisunique AS u FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid WHERE i.indrelid = 'fr'::regclass ORDER BY 1`);
    expect(idx.rows).toEqual(
      [
        { n: 'fr_pkey', u: true },
        { n: 'fr_u_key', u: false },
        { n: 'fr_w_key', u: true },
        { n: `${names.shadow}_u_key`, u: true },
      ].sort((a, b) => (a.n < b.n ? -1 : 1)),
    );
    // Nothing changed between the pre-read and the lock: the prepared statements ran without another catalog read.
    const done = lines.find((l) => l.msg === 'cut-over committed')!;
    expect(done.catalogChanged).toBe(false);
    expect(Object.keys(done.steps as object)).toEqual(['vacuumWait', 'lockWait', 'drain', 'swapAndCommit']);
    // The view (its text holds a semicolon in a literal) was replaced in place and reads the new table.
    const dep = await admin.query(`SELECT count(*)::int AS n FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid WHERE r.ev_class = 'fr_v'::regclass AND d.refobjid = 'fr'::regclass`);
    expect(dep.rows[0].n).toBeGreaterThan(0);
    expect((await admin.query(`SELECT count(*)::int AS n FROM fr_v`)).rows[0].n).toBe(20);
    await session.dropArtefacts(names, { keepBackup: false });
  });

  it('swaps under a concurrent writer; view, FKs, trigger, grant, RLS, names and sequences carried', async () => {
    await admin.query(`CREATE ROLE ${reader}`);
    dropAfterFile('postgres', reader);
    await admin.query(`CREATE TABLE region (code text PRIMARY KEY)`);
    await admin.query(`INSERT INTO region VALUES ('eu'), ('us')`);
    await admin.query(`CREATE TABLE acct (
      id serial PRIMARY KEY,
      name text NOT NULL CHECK (name <> ''),
      region text REFERENCES region(code),
      amount numeric(12,2) DEFAULT 0,
      email text UNIQUE,
      tick int GENERATED BY DEFAULT AS IDENTITY
    )`);
    await admin.query(`CREATE INDEX acct_name_idx ON acct (name)`);
    await admin.query(`COMMENT ON TABLE acct IS 'accounts'`);
    await admin.query(`INSERT INTO acct (name, region, amount, email) SELECT 'n' || g, 'eu', g, 'e' || g || '@x' FROM generate_series(1, 500) g`);
    await admin.query(`CREATE TABLE orders (id serial PRIMARY KEY, acct_id int NOT NULL REFERENCES acct(id) ON DELETE CASCADE)`);
    await admin.query(`INSERT INTO orders (acct_id) SELECT g FROM generate_series(1, 50) g`);
    await admin.query(`CREATE VIEW rich AS SELECT id, name, amount FROM acct WHERE amount > 100`);
    await admin.query(`CREATE TABLE audit (acct_id int, at timestamptz DEFAULT now())`);
    await admin.query(`CREATE FUNCTION audit_fn() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN INSERT INTO audit (acct_id) VALUES (NEW.id); RETURN NEW; END$$`);
    await admin.query(`CREATE TRIGGER acct_audit AFTER INSERT ON acct FOR EACH ROW EXECUTE FUNCTION audit_fn()`);
    await admin.query(`GRANT SELECT, INSERT ON acct TO ${reader}`);
    await admin.query(`GRANT SELECT ON rich TO ${reader}`);
    await admin.query(`CREATE POLICY eu_only ON acct FOR SELECT TO ${reader} USING (region = 'eu')`);
    await admin.query(`ALTER TABLE acct ENABLE ROW LEVEL SECURITY`);
    await admin.query(`CREATE PUBLICATION userpub FOR TABLE acct (id, name, region) WHERE (id > 0)`);
    const origIndexes = await admin.query(`SELECT indexrelid::regclass::text AS n FROM pg_index WHERE indrelid = 'acct'::regclass ORDER BY 1`);
    const origConstraints = await admin.query(`SELECT conname FROM pg_constraint WHERE conrelid = 'acct'::regclass AND contype <> 'n' ORDER BY 1`);
    const origSeqs = await admin.query(`SELECT pg_get_serial_sequence('acct', 'id') AS s1, pg_get_serial_sequence('acct', 'tick') AS s2`);

    const alter = `ADD COLUMN note text NOT NULL DEFAULT '', ALTER COLUMN amount TYPE numeric(14,2)`;
    // Secondary indexes deferred: the cut-over builds them before it locks anything.
    const { plan, names, stream } = await prepare('acct', alter, 'acct-job', true);

    // A writer and a reader hammer the table through the whole cut-over.
    const writer = await pgConnect(url);
    const readerConn = await pgConnect(url);
    const acked: number[] = [];
    const errors: string[] = [];
    let stop = false;
    let maxStallMs = 0;
    const writeLoop = (async () => {
      let i = 0;
      while (!stop) {
        const t0 = Date.now();
        try {
          const r = await writer.query(`INSERT INTO acct (name, region, amount, email) VALUES ($1, 'eu', 200, $2) RETURNING id`, [`w${i}`, `w${i}@x`]);
          acked.push(r.rows[0].id);
          await writer.query(`UPDATE acct SET amount = amount + 1 WHERE id = $1`, [1 + (i % 500)]);
        } catch (err) {
          errors.push((err as Error).message);
        }
        maxStallMs = Math.max(maxStallMs, Date.now() - t0);
        i++;
      }
    })();
    const readLoop = (async () => {
      while (!stop) {
        try {
          await readerConn.query(`SELECT count(*) FROM acct`);
          await readerConn.query(`SELECT count(*) FROM rich`);
        } catch (err) {
          errors.push('read: ' + (err as Error).message);
        }
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    try {
      await new Promise((r) => setTimeout(r, 200));
      await drain(session, stream, plan);
      let drainCalls = 0;
      await session.cutover.swap(plan, names, {
        lockTimeoutMs: 2000,
        drainUnderLock: async () => {
          drainCalls++;
          await syncTo(session, stream, plan, 'cut');
          // Hold the lock a little so writers really queue behind it.
          await new Promise((r) => setTimeout(r, 150));
        },
        log: silentLogger(),
      });
      expect(drainCalls).toBe(1);
      await new Promise((r) => setTimeout(r, 200));
    } finally {
      stop = true;
      await writeLoop;
      await readLoop;
      await writer.end();
      await readerConn.end();
      await stream.stop();
    }
    expect(errors).toEqual([]);
    expect(acked.length).toBeGreaterThan(10);
    expect(maxStallMs).toBeLessThan(2000);

    // The name now points at the new table (it has the new column) and holds every acknowledged write.
    const cols = await admin.query(`SELECT attname FROM pg_attribute WHERE attrelid = 'acct'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`);
    expect(cols.rows.map((r) => r.attname)).toEqual(['id', 'name', 'region', 'amount', 'email', 'tick', 'note']);
    const ids = new Set((await admin.query(`SELECT id FROM acct`)).rows.map((r) => r.id));
    for (const id of acked) expect(ids.has(id)).toBe(true);
    // Same rows as the backup had at the swap, plus what was written after.
    const missing = await admin.query(`SELECT count(*)::int AS n FROM ${names.backup} b WHERE NOT EXISTS (SELECT 1 FROM acct a WHERE a.id = b.id AND a.amount >= b.amount AND a.email = b.email)`);
    expect(missing.rows[0].n).toBe(0);

    // Index and constraint names as before; sequences continue.
    expect((await admin.query(`SELECT indexrelid::regclass::text AS n FROM pg_index WHERE indrelid = 'acct'::regclass ORDER BY 1`)).rows).toEqual(origIndexes.rows);
    expect((await admin.query(`SELECT conname FROM pg_constraint WHERE conrelid = 'acct'::regclass AND contype <> 'n' ORDER BY 1`)).rows).toEqual(origConstraints.rows);
    expect((await admin.query(`SELECT pg_get_serial_sequence('acct', 'id') AS s1, pg_get_serial_sequence('acct', 'tick') AS s2`)).rows).toEqual(origSeqs.rows);
    const ins = await admin.query(`INSERT INTO acct (name, region, email) VALUES ('after', 'eu', 'after@x') RETURNING id, tick`);
    const max = await admin.query(`SELECT max(id) AS id, max(tick) AS tick FROM acct WHERE email <> 'after@x'`);
    expect(ins.rows[0].id).toBeGreaterThan(max.rows[0].id);
    expect(ins.rows[0].tick).toBeGreaterThan(max.rows[0].tick);

    // The trigger fires on the new table.
    const audit = await admin.query(`SELECT count(*)::int AS n FROM audit WHERE acct_id = $1`, [ins.rows[0].id]);
    expect(audit.rows[0].n).toBe(1);
    // The view reads the new table.
    const deps = await admin.query(`SELECT count(*)::int AS n FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid WHERE r.ev_class = 'rich'::regclass AND d.refobjid = 'acct'::regclass`);
    expect(deps.rows[0].n).toBeGreaterThan(0);
    expect((await admin.query(`SELECT count(*)::int AS n FROM rich WHERE name = 'w0'`)).rows[0].n).toBe(1);
    // The FK from orders points at the new table, validated, and cascades.
    const fk = await admin.query(`SELECT confrelid::regclass::text AS t, convalidated FROM pg_constraint WHERE conname = 'orders_acct_id_fkey'`);
    expect(fk.rows).toEqual([{ t: 'acct', convalidated: true }]);
    await admin.query(`INSERT INTO orders (acct_id) VALUES ($1)`, [ins.rows[0].id]);
    await expect(admin.query(`INSERT INTO orders (acct_id) VALUES (-1)`)).rejects.toThrow(/orders_acct_id_fkey/);
    await admin.query(`DELETE FROM acct WHERE id = 1`);
    expect((await admin.query(`SELECT count(*)::int AS n FROM orders WHERE acct_id = 1`)).rows[0].n).toBe(0);
    // The new table's own FK (to region) exists and is validated.
    const fk2 = await admin.query(`SELECT convalidated FROM pg_constraint WHERE conrelid = 'acct'::regclass AND contype = 'f'`);
    expect(fk2.rows).toEqual([{ convalidated: true }]);
    await expect(admin.query(`INSERT INTO acct (name, region) VALUES ('bad', 'xx')`)).rejects.toThrow(/foreign key/);
    // Grants, RLS and the comment carried.
    await admin.query(`INSERT INTO acct (name, region, email) VALUES ('us-row', 'us', 'us@x')`);
    await admin.query(`SET ROLE ${reader}`);
    try {
      const seen = await admin.query(`SELECT count(*)::int AS n FROM acct WHERE region = 'us'`);
      expect(seen.rows[0].n).toBe(0); // policy eu_only
      expect((await admin.query(`SELECT count(*)::int AS n FROM acct`)).rows[0].n).toBeGreaterThan(0);
      // The view was recreated (a column type under it changed) with its grant.
      await admin.query(`SELECT count(*) FROM rich`);
      // No INSERT policy: RLS refuses the insert the grant allows.
      await expect(admin.query(`INSERT INTO acct (id, name, region, email) VALUES (-5, 'by-reader', 'eu', 'r@x')`)).rejects.toThrow(/row-level security/);
      await expect(admin.query(`UPDATE acct SET name = 'no' WHERE id = 2`)).rejects.toThrow(/permission denied/);
    } finally {
      await admin.query(`RESET ROLE`);
    }
    const pubt = await admin.query(`SELECT tablename, attnames::text AS cols, rowfilter FROM pg_publication_tables WHERE pubname = 'userpub'`);
    expect(pubt.rows).toEqual([{ tablename: 'acct', cols: '{id,name,region}', rowfilter: '(id > 0)' }]);
    const meta = await admin.query(`SELECT obj_description('acct'::regclass, 'pg_class') AS d, relrowsecurity FROM pg_class WHERE oid = 'acct'::regclass`);
    expect(meta.rows[0]).toEqual({ d: 'accounts', relrowsecurity: true });
    // The backup is still there until dropped; dropping it leaves the new table whole.
    await session.dropArtefacts(names, { keepBackup: false });
    expect((await admin.query(`SELECT count(*)::int AS n FROM pg_class WHERE relname IN ($1, $2)`, [names.backup, names.shadow])).rows[0].n).toBe(0);
    expect((await admin.query(`INSERT INTO acct (name, region, email) VALUES ('x2', 'eu', 'x2@x') RETURNING id`)).rows.length).toBe(1);
  });
});
