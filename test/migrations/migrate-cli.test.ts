// `shadowshift migrate` as a user runs it, on both dialects: every command,
// --json output and exit codes, the runner's safety rules (lock, checksums,
// out-of-order, failure recording and resume).
//
// Why it is long (~400 lines): one migration directory and database walked through
// every command in order; the cases build on the history the earlier ones wrote.

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { readFileSync, rmSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Db } from '../support/db.js';
import { cli, columnInfo, indexExists, json, newDatabase, startCli, tableExists, tempDir, write, type Dialect } from './helpers.js';
import { waitUntil } from '../support/alter.js';

const sqlFor = (d: Dialect) => ({
  create: `CREATE TABLE orders (id BIGINT NOT NULL PRIMARY KEY, amount DECIMAL(12,2) NOT NULL, note VARCHAR(100));
INSERT INTO orders (id, amount, note) VALUES (1, 1.50, 'a'), (2, 2.50, 'b'), (3, 3.50, NULL);
-- shadowshift:down
DROP TABLE orders;
`,
  status: `ALTER TABLE orders ADD COLUMN status VARCHAR(16) NULL;
-- shadowshift:backfill
UPDATE orders SET status = 'new' WHERE status IS NULL;
-- shadowshift:contract
${d === 'mysql' ? 'ALTER TABLE orders MODIFY status VARCHAR(16) NOT NULL' : 'ALTER TABLE orders ALTER COLUMN status SET NOT NULL'};
-- shadowshift:down
ALTER TABLE orders DROP COLUMN status;
`,
  index: `CREATE INDEX orders_note_idx ON orders (note);
-- shadowshift:down
${d === 'mysql' ? 'DROP INDEX orders_note_idx ON orders' : 'DROP INDEX orders_note_idx'};
`,
  sleep: d === 'mysql' ? 'SELECT SLEEP(3)' : 'SELECT pg_sleep(3)',
});

describe.each(['mysql', 'postgres'] as const)('migrate on %s', (dialect) => {
  let url: string;
  let db: Db;
  let dir: string;
  const env = () => ({ SHADOWSHIFT_URL: url });
  const migrate = (...args: string[]) => cli(['migrate', ...args, '--dir', dir], env());
  const sql = sqlFor(dialect);

  beforeAll(async () => {
    ({ url, db } = await newDatabase(dialect, 'mcli'));
    dir = tempDir();
    write(dir, '100_create_orders.sql', sql.create);
    write(dir, '200_add_status.sql', sql.status);
    write(dir, '300_note_index.sql', sql.index);
  });
  afterAll(async () => {
    await db?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('plan classifies every statement (human and --json) and changes nothing', async () => {
    const human = await migrate('plan');
    expect(human.code, human.stderr).toBe(0);
    // node-postgres warns when two queries run at once on one client (pg 9 makes it an error).
    expect(human.stderr).not.toMatch(/DeprecationWarning|already executing a query/);
    expect(human.stdout).toMatch(/migrate up would run:/);
    expect(human.stdout).toMatch(/100_create_orders\.sql[\s\S]*expand[\s\S]*instant\s+CREATE TABLE orders/);
    expect(human.stdout).toMatch(/300_note_index\.sql[\s\S]*online\s+CREATE INDEX orders_note_idx/);
    expect(human.stdout).toMatch(/how:\s+/);
    expect(human.stdout).toMatch(/lock:\s+/);
    const r = await migrate('plan', '--json');
    expect(r.code, r.stderr).toBe(0);
    const p = json(r);
    expect(p.dialect).toBe(dialect);
    expect(p.up.map((m: any) => m.version)).toEqual(['100', '200', '300']);
    const idx = p.up[2].phases[0].statements[0];
    expect(idx.class).toBe('online');
    expect(idx.how).toMatch(dialect === 'postgres' ? /CONCURRENTLY/ : /INPLACE, LOCK=NONE/);
    const backfill = p.up[1].phases.find((x: any) => x.phase === 'backfill').statements[0];
    expect(backfill.class).toBe('data');
    expect(await tableExists(db, 'orders')).toBe(false);
    expect(await tableExists(db, 'shadowshift_migrations')).toBe(false);
  });

  it('up without --execute prints what it would do and changes nothing', async () => {
    const r = await migrate('up');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/Nothing was changed\. Run again with --execute/);
    const j = json(await migrate('up', '--json'));
    expect(j.execute).toBe(false);
    expect(j.migrations).toHaveLength(3);
    expect(j.ran).toEqual([]);
    expect(await tableExists(db, 'orders')).toBe(false);
  });

  it('up --execute runs expand and backfill of every pending migration', async () => {
    const r = await migrate('up', '--execute', '--json');
    expect(r.code, r.stderr).toBe(0);
    const j = json(r);
    expect(j.ran.map((m: any) => [m.version, m.phases])).toEqual([
      ['100', ['expand', 'backfill']],
      ['200', ['expand', 'backfill']],
      ['300', ['expand', 'backfill']],
    ]);
    const statusRows = await db.query<{ status: string | null }>('SELECT status FROM orders ORDER BY id');
    expect(statusRows.map((x) => x.status)).toEqual(['new', 'new', 'new']);
    expect(await indexExists(db, 'orders', 'orders_note_idx')).toBe(true);
    expect((await columnInfo(db, 'orders', 'status'))!.nullable).toBe(true);
    const again = await migrate('up', '--execute');
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/Nothing pending/);
  });

  it('status shows each migration with its phase, checksum and who applied it', async () => {
    const r = await migrate('status');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/100\s+backfilled\s+ok\s+100_create_orders\.sql/);
    const j = json(await migrate('status', '--json'));
    expect(j.migrations.map((m: any) => m.state)).toEqual(['backfilled', 'backfilled', 'backfilled']);
    expect(j.migrations[0].checksum).toBe('ok');
    expect(j.migrations[0].appliedBy).toBeTruthy();
    expect(j.migrations[0].host).toBeTruthy();
    expect(j.migrations[0].finishedAt).toMatch(/^\d{4}-\d\d-\d\dT/);
    const hist = await db.query<{ version: string; checksum: string; reached: string }>('SELECT version, checksum, reached FROM shadowshift_migrations ORDER BY version');
    expect(hist.map((h) => h.reached)).toEqual(['backfilled', 'backfilled', 'backfilled']);
    expect(hist[0]!.checksum).toBe(j.migrations[0].fileChecksum);
  });

  it('down rolls back the latest expanded migration; up re-applies it', async () => {
    const dry = await migrate('down');
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(/300_note_index\.sql[\s\S]*down/);
    expect(await indexExists(db, 'orders', 'orders_note_idx')).toBe(true);
    const r = await migrate('down', '--execute', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(json(r).ran.map((m: any) => m.version)).toEqual(['300']);
    expect(await indexExists(db, 'orders', 'orders_note_idx')).toBe(false);
    const st = json(await migrate('status', '--json'));
    expect(st.migrations[2].state).toBe('rolled back');
    const up = await migrate('up', '--execute', '--json');
    expect(up.code, up.stderr).toBe(0);
    expect(json(up).ran.map((m: any) => m.version)).toEqual(['300']);
    expect(await indexExists(db, 'orders', 'orders_note_idx')).toBe(true);
  });

  it('down --to V rolls back every expanded version above V, newest first', async () => {
    const r = await migrate('down', '--to', '100', '--execute', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(json(r).ran.map((m: any) => m.version)).toEqual(['300', '200']);
    expect(await columnInfo(db, 'orders', 'status')).toBeNull();
    expect(await tableExists(db, 'orders')).toBe(true);
    const up = await migrate('up', '--execute');
    expect(up.code, up.stderr).toBe(0);
  });

  it('contract runs the contract phases; contracted migrations cannot be rolled back', async () => {
    const dry = json(await migrate('contract', '--json'));
    expect(dry.execute).toBe(false);
    expect(dry.migrations.map((m: any) => m.version)).toEqual(['100', '200', '300']);
    const r = await migrate('contract', '--to', '200', '--execute', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(json(r).ran.map((m: any) => m.version)).toEqual(['100', '200']);
    expect((await columnInfo(db, 'orders', 'status'))!.nullable).toBe(false);
    const refused = await migrate('down', '--to', '100', '--execute');
    expect(refused.code).toBe(5);
    expect(refused.stderr).toMatch(/cannot roll back to below 200: it is contracted.*--to 200/);
    const rest = await migrate('contract', '--execute');
    expect(rest.code, rest.stderr).toBe(0);
    const st = json(await migrate('status', '--json'));
    expect(st.migrations.map((m: any) => m.state)).toEqual(['contracted', 'contracted', 'contracted']);
    const nothing = await migrate('down', '--execute');
    expect(nothing.code).toBe(0);
    expect(nothing.stdout).toMatch(/Nothing to roll back/);
  });

  it('refuses an applied file that was edited, naming the file and both checksums', async () => {
    const path = join(dir, '200_add_status.sql');
    const original = readFileSync(path, 'utf8');
    const appliedSum = json(await migrate('status', '--json')).migrations[1].appliedChecksum;
    writeFileSync(path, original.replace("'new'", "'fresh'"));
    try {
      const r = await migrate('up', '--execute');
      expect(r.code).toBe(5);
      expect(r.stderr).toContain('200_add_status.sql was changed after it was applied');
      expect(r.stderr).toContain(`applied checksum ${appliedSum}`);
      expect(r.stderr).toMatch(/file checksum [0-9a-f]{64}/);
      const j = json(await migrate('up', '--execute', '--json'));
      expect(j.error.exitCode).toBe(5);
      expect(j.error.message).toContain('200_add_status.sql');
      const st = json(await migrate('status', '--json'));
      expect(st.migrations[1].checksum).toBe('changed');
      // CRLF line endings are not an edit.
      writeFileSync(path, original.replace(/\n/g, '\r\n'));
      const ok = await migrate('up', '--execute');
      expect(ok.code, ok.stderr).toBe(0);
    } finally {
      writeFileSync(path, original);
    }
  });

  it('refuses a pending version older than an applied one unless --out-of-order', async () => {
    write(dir, '150_late_table.sql', 'CREATE TABLE late_one (id INT PRIMARY KEY);\n-- shadowshift:down\nDROP TABLE late_one;\n');
    const r = await migrate('up', '--execute');
    expect(r.code).toBe(5);
    expect(r.stderr).toMatch(/pending 150_late_table\.sql is older than the applied version 300.*--out-of-order/);
    expect(await tableExists(db, 'late_one')).toBe(false);
    const plan = await migrate('plan');
    expect(plan.code).toBe(5);
    const ok = await migrate('up', '--execute', '--out-of-order', '--json');
    expect(ok.code, ok.stderr).toBe(0);
    expect(json(ok).ran.map((m: any) => m.version)).toEqual(['150']);
    expect(await tableExists(db, 'late_one')).toBe(true);
  });

  it('records a failed statement, says where it stopped, and resumes there after a fix', async () => {
    const path = write(
      dir,
      '400_broken.sql',
      'CREATE TABLE t400 (id INT PRIMARY KEY);\nINSERT INTO no_such_table VALUES (1);\nINSERT INTO t400 VALUES (1);\n',
    );
    const r = await migrate('up', '--execute');
    expect(r.code).toBe(7);
    expect(r.stderr).toMatch(/400_broken\.sql: expand failed at statement 2 \(line 2\):/);
    expect(r.stderr).toMatch(/no_such_table/);
    expect(r.stderr).toMatch(/resumes at this statement/);
    const hist = await db.query<{ status: string; error: string; failed_statement: string; statements_done: string | number }>(
      "SELECT status, error, failed_statement, statements_done FROM shadowshift_migrations WHERE version = '400'",
    );
    expect(hist[0]!.status).toBe('failed');
    expect(hist[0]!.failed_statement).toBe('INSERT INTO no_such_table VALUES (1)');
    expect(hist[0]!.error).toMatch(/no_such_table/);
    expect(Number(hist[0]!.statements_done)).toBe(1);
    const st = await migrate('status');
    expect(st.stdout).toMatch(/400\s+failed[\s\S]*stopped in expand at statement 2: .*no_such_table/);
    const stj = json(await migrate('status', '--json'));
    expect(stj.migrations.find((m: any) => m.version === '400').stoppedAt).toMatchObject({ phase: 'expand', statement: 2, failedStatement: 'INSERT INTO no_such_table VALUES (1)' });
    const plan = await migrate('plan');
    expect(plan.stdout).toMatch(/failed in expand at statement 2.*resuming there/);

    // Editing a statement that already ran is refused.
    writeFileSync(path, 'CREATE TABLE t400 (id BIGINT PRIMARY KEY);\nINSERT INTO t400 VALUES (2);\nINSERT INTO t400 VALUES (1);\n');
    const refused = await migrate('up', '--execute');
    expect(refused.code).toBe(5);
    expect(refused.stderr).toMatch(/400_broken\.sql: the 1 expand statement\(s\) that already ran were changed/);
    // Fixing the failed statement resumes at it: CREATE TABLE does not run again (it would fail).
    writeFileSync(path, 'CREATE TABLE t400 (id INT PRIMARY KEY);\nINSERT INTO t400 VALUES (2);\nINSERT INTO t400 VALUES (1);\n');
    const fixed = await migrate('up', '--execute', '--json');
    expect(fixed.code, fixed.stderr).toBe(0);
    expect(json(fixed).ran[0].statements.map((s: any) => s.index)).toEqual([1, 2]);
    expect((await db.query<{ id: number | string }>('SELECT id FROM t400 ORDER BY id')).map((x) => Number(x.id))).toEqual([1, 2]);
    const after = json(await migrate('status', '--json')).migrations.find((m: any) => m.version === '400');
    expect(after.state).toBe('backfilled');
    expect(after.stoppedAt).toBeNull();
  });

  it('a failing TS migration records the last statement it ran', async () => {
    const { url: url2, db: db2 } = await newDatabase(dialect, 'mts');
    const d2 = tempDir();
    try {
      write(
        d2,
        '100_ts_fails.ts',
        `export default {\n  async expand(db) {\n    await db.exec('CREATE TABLE ts_ok (id INT PRIMARY KEY)');\n    await db.exec('INSERT INTO ts_missing VALUES (1)');\n  },\n};\n`,
      );
      const r = await cli(['migrate', 'up', '--execute', '--json', '--dir', d2], { SHADOWSHIFT_URL: url2 });
      expect(r.code).toBe(7);
      const j = json(r);
      expect(j.error.details).toMatchObject({ version: '100', phase: 'expand', statement: 'INSERT INTO ts_missing VALUES (1)' });
      expect(r.stderr).toMatch(/100_ts_fails\.ts: expand failed at its code: .*ts_missing/);
      expect(r.stderr).toMatch(/runs again from its start/);
    } finally {
      await db2.close();
      rmSync(d2, { recursive: true, force: true });
    }
  });

  it('two runners started at once: exactly one applies, the other finds nothing pending', async () => {
    write(dir, '500_slow.sql', `${sql.sleep};\nCREATE TABLE t500 (id INT PRIMARY KEY);\n`);
    const a = startCli(['migrate', 'up', '--execute', '--json', '--dir', dir], env());
    const b = startCli(['migrate', 'up', '--execute', '--json', '--dir', dir], env());
    const [ra, rb] = await Promise.all([a.done, b.done]);
    expect(ra.code, ra.stderr).toBe(0);
    expect(rb.code, rb.stderr).toBe(0);
    const ran = [json(ra), json(rb)].map((j) => j.ran.map((m: any) => m.version));
    expect(ran.filter((v) => v.length === 1 && v[0] === '500')).toHaveLength(1);
    expect(ran.filter((v) => v.length === 0)).toHaveLength(1);
    expect([json(ra), json(rb)].filter((j) => j.nothingToDo)).toHaveLength(1);
  });

  it('a second runner that cannot get the lock within --lock-wait fails clearly', async () => {
    // The first runner holds the migration lock while its migration waits at a gate
    // the test holds (a lock of its own), however long the CLI takes to start.
    const gate = `ss_gate_${Date.now().toString(36)}`;
    const key = 4_200_000 + Math.floor(Math.random() * 1e6);
    const wait = dialect === 'mysql' ? `SELECT GET_LOCK('${gate}', 120)` : `SELECT pg_advisory_lock(${key})`;
    await db.query(dialect === 'mysql' ? `SELECT GET_LOCK('${gate}', 0)` : `SELECT pg_advisory_lock(${key})`);
    write(dir, '600_slow.sql', `${wait};\nCREATE TABLE t600 (id INT PRIMARY KEY);\n`);
    const a = startCli(['migrate', 'up', '--execute', '--dir', dir], env());
    let released = false;
    const release = async () => {
      if (released) return;
      released = true;
      await db.query(dialect === 'mysql' ? `SELECT RELEASE_LOCK('${gate}')` : `SELECT pg_advisory_unlock(${key})`);
    };
    try {
      await waitUntil(
        async () =>
          (
            await db.query(
              dialect === 'mysql'
                ? `SELECT 1 FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() AND INFO LIKE 'SELECT GET_LOCK(''${gate}''%'`
                : `SELECT 1 FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND query LIKE 'SELECT pg_advisory_lock(${key})%' AND wait_event_type = 'Lock'`,
            )
          ).length > 0,
        'the first runner to wait at the gate, holding the migration lock',
        60_000,
      );
      const b = await migrate('up', '--execute', '--lock-wait', '0.5');
      expect(b.code).toBe(6);
      expect(b.stderr).toMatch(/another shadowshift migrate run holds the migration lock.*--lock-wait/);
    } finally {
      await release();
    }
    const ra = await a.done;
    expect(ra.code, ra.stderr).toBe(0);
    expect(await tableExists(db, 't600')).toBe(true);
  });

  it('status warns about an applied migration whose file is missing', async () => {
    const path = join(dir, '600_slow.sql');
    const text = readFileSync(path, 'utf8');
    rmSync(path);
    try {
      const j = json(await migrate('status', '--json'));
      const m = j.migrations.find((x: any) => x.version === '600');
      expect(m).toMatchObject({ file: null, checksum: 'missing', state: 'backfilled' });
      expect(j.warnings.join('\n')).toMatch(/600_slow is recorded as backfilled but its file is missing.*restore it/);
      const human = await migrate('status');
      expect(human.stdout).toMatch(/warning: 600_slow is recorded as backfilled but its file is missing/);
    } finally {
      writeFileSync(path, text);
    }
  });

  it('baseline marks an existing schema as applied', async () => {
    const { url: url2, db: db2 } = await newDatabase(dialect, 'mbase');
    const dir2 = tempDir();
    try {
      await db2.exec('CREATE TABLE orders (id BIGINT NOT NULL PRIMARY KEY, amount DECIMAL(12,2) NOT NULL, note VARCHAR(100))');
      write(dir2, '100_create_orders.sql', sql.create);
      write(dir2, '200_add_status.sql', sql.status);
      const run = (...args: string[]) => cli(['migrate', ...args, '--dir', dir2], { SHADOWSHIFT_URL: url2 });
      const b = await run('baseline', '100', '--json');
      expect(b.code, b.stderr).toBe(0);
      const st = json(await run('status', '--json'));
      expect(st.migrations.map((m: any) => [m.version, m.state])).toEqual([
        ['100', 'baseline'],
        ['200', 'pending'],
      ]);
      const up = await run('up', '--execute', '--json');
      expect(up.code, up.stderr).toBe(0);
      expect(json(up).ran.map((m: any) => m.version)).toEqual(['200']);
      const again = await run('baseline', '100');
      expect(again.code).toBe(5);
      expect(again.stderr).toMatch(/already has applied migrations/);
    } finally {
      await db2.close();
      rmSync(dir2, { recursive: true, force: true });
    }
  });

  it('bad input fails with exit 2 and names the cause and the fix', async () => {
    const to = await migrate('up', '--to', 'latest');
    expect(to.code).toBe(2);
    expect(to.stderr).toMatch(/--to "latest" must be a version/);
    const nodir = await cli(['migrate', 'status', '--dir', '/nonexistent/migs'], env());
    expect(nodir.code).toBe(2);
    expect(nodir.stderr).toMatch(/does not exist; create it, pass --dir/);
    const nourl = await cli(['migrate', 'status', '--dir', dir], { SHADOWSHIFT_URL: '' });
    expect(nourl.code).toBe(2);
    expect(nourl.stderr).toMatch(/no database given/);
    const thr = await migrate('plan', '--online-threshold', 'huge');
    expect(thr.code).toBe(2);
    expect(thr.stderr).toMatch(/--online-threshold "huge" is not a size/);
  });
});

describe('migrate new', () => {
  it('writes SQL and TS templates that the runner accepts', async () => {
    const dir = tempDir();
    try {
      const a = await cli(['migrate', 'new', 'add_order_status', '--dir', dir]);
      expect(a.code, a.stderr).toBe(0);
      expect(a.stdout).toMatch(/created .*\d{14}_add_order_status\.sql/);
      const b = await cli(['migrate', 'new', 'rename_note', '--ts', '--dir', dir, '--json']);
      expect(b.code, b.stderr).toBe(0);
      expect(json(b).created).toMatch(/\d{14}_rename_note\.ts$/);
      const files = readdirSync(dir).sort();
      expect(files).toHaveLength(2);
      const sqlText = readFileSync(join(dir, files.find((f) => f.endsWith('.sql'))!), 'utf8');
      for (const p of ['expand', 'backfill', 'contract', 'down']) expect(sqlText).toContain(`-- shadowshift:${p}`);
      expect(readFileSync(join(dir, files.find((f) => f.endsWith('.ts'))!), 'utf8')).toContain('defineMigration');
      const bad = await cli(['migrate', 'new', 'bad name!', '--dir', dir]);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toMatch(/may only hold letters, digits/);
      expect(existsSync(dir)).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
