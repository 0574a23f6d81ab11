// What the planner's rewrites do on a real server: PostgreSQL NOT VALID +
// VALIDATE, concurrent unique index + USING INDEX, SET NOT NULL through a
// validated CHECK, CONCURRENTLY; MySQL INSTANT first, INPLACE, then as written;
// and DDL under a short lock timeout, retried while another session holds a lock.

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { rmSync } from 'node:fs';
import type { Db } from '../support/db.js';
import { openDb, mysqlSeq } from '../support/db.js';
import { cli, columnInfo, indexExists, json, newDatabase, startCli, stderrShows, tempDir, write } from './helpers.js';

/** Holds a lock in another session until release() (or until `ms`, as a safety net). */
async function holdLock(url: string, sql: string[], ms = 30_000): Promise<{ release: () => Promise<void> }> {
  const other = await openDb(url);
  for (const s of sql) await other.exec(s);
  let done = false;
  const release = async () => {
    if (done) return;
    done = true;
    await other.exec(url.startsWith('mysql') ? 'UNLOCK TABLES' : 'COMMIT').catch(() => undefined);
    await other.close();
  };
  setTimeout(() => void release(), ms).unref();
  return { release };
}

describe('planner on postgres', () => {
  let url: string;
  let db: Db;
  let dir: string;
  const migrate = (...args: string[]) => cli(['migrate', ...args, '--dir', dir], { SHADOWSHIFT_URL: url });

  beforeAll(async () => {
    ({ url, db } = await newDatabase('postgres', 'mplpg'));
    dir = tempDir();
    await db.exec('CREATE TABLE p_users (id bigint PRIMARY KEY)');
    await db.exec('INSERT INTO p_users SELECT g FROM generate_series(1, 100) g');
    await db.exec('CREATE TABLE p_orders (id bigint PRIMARY KEY, user_id bigint, code text, status text)');
    await db.exec("INSERT INTO p_orders SELECT g, g % 100 + 1, 'c' || g, 'new' FROM generate_series(1, 3000) g");
    await db.exec('ANALYZE p_orders');
  });
  afterAll(async () => {
    await db?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('turns FK/CHECK, UNIQUE, SET NOT NULL and CREATE INDEX into their online forms', async () => {
    write(
      dir,
      '100_constraints.sql',
      `ALTER TABLE p_orders ADD CONSTRAINT p_orders_user_fk FOREIGN KEY (user_id) REFERENCES p_users (id);
ALTER TABLE p_orders ADD CONSTRAINT p_orders_code_key UNIQUE (code);
ALTER TABLE p_orders ALTER COLUMN status SET NOT NULL;
CREATE INDEX p_orders_status_idx ON p_orders (status);
`,
    );
    const plan = json(await migrate('plan', '--json', '--online-threshold', '1000'));
    const classes = plan.up[0].phases[0].statements.map((s: any) => [s.class, s.how]);
    expect(classes[0]).toEqual(['online', expect.stringMatching(/NOT VALID.*VALIDATE/)]);
    expect(classes[1]).toEqual(['online', expect.stringMatching(/CREATE UNIQUE INDEX CONCURRENTLY.*USING INDEX/)]);
    expect(classes[2]).toEqual(['online', expect.stringMatching(/CHECK .* NOT VALID, VALIDATE, then SET NOT NULL/)]);
    expect(classes[3]).toEqual(['online', expect.stringMatching(/CONCURRENTLY/)]);
    expect(plan.up[0].phases[0].statements[0].lint.map((l: any) => l.rule)).toContain('constraint-not-valid');

    const r = await migrate('up', '--execute', '--json', '--online-threshold', '1000');
    expect(r.code, r.stderr).toBe(0);
    const ran = json(r).ran[0].statements.map((s: any) => s.ran);
    expect(ran[0]).toMatch(/NOT VALID.*VALIDATE CONSTRAINT/);
    const fk = await db.query<{ convalidated: boolean | string }>("SELECT convalidated::text AS convalidated FROM pg_constraint WHERE conname = 'p_orders_user_fk'");
    expect(fk[0]!.convalidated).toBe('true');
    const uq = await db.query<{ contype: string; idx: string }>("SELECT contype, conindid::regclass::text AS idx FROM pg_constraint WHERE conname = 'p_orders_code_key'");
    expect(uq[0]).toEqual({ contype: 'u', idx: 'p_orders_code_key' });
    expect((await columnInfo(db, 'p_orders', 'status'))!.nullable).toBe(false);
    const leftover = await db.query("SELECT conname FROM pg_constraint WHERE conname LIKE '%not_null_ss'");
    expect(leftover).toEqual([]);
    const valid = await db.query<{ v: string }>("SELECT indisvalid::text AS v FROM pg_index WHERE indexrelid = 'p_orders_status_idx'::regclass");
    expect(valid[0]!.v).toBe('true');
  });

  it('an engine refusal is recorded and keeps the engine\'s exit code (3)', async () => {
    // A database of its own: this history must not mix with the other tests' files.
    const { url, db } = await newDatabase('postgres', 'mplref');
    await db.exec('CREATE TABLE p_nokey (a int, b text)');
    await db.exec("INSERT INTO p_nokey SELECT g, 'x' FROM generate_series(1, 3000) g");
    await db.exec('ANALYZE p_nokey');
    const d2 = tempDir();
    try {
      write(d2, '100_retype.sql', 'ALTER TABLE p_nokey ALTER COLUMN a TYPE bigint;\n');
      const r = await cli(['migrate', 'up', '--execute', '--dir', d2, '--online-threshold', '1000'], { SHADOWSHIFT_URL: url });
      expect(r.code, r.stderr).toBe(3);
      expect(r.stderr).toMatch(/100_retype\.sql: expand failed at statement 1 \(line 1\): preflight refused the job/);
      const st = json(await cli(['migrate', 'status', '--json', '--dir', d2], { SHADOWSHIFT_URL: url }));
      expect(st.migrations[0].state).toBe('failed');
      expect((await columnInfo(db, 'p_nokey', 'a'))!.type).toBe('integer');
    } finally {
      await db.close();
      rmSync(d2, { recursive: true, force: true });
    }
  });

  it('retries DDL whose lock is not granted within the lock timeout, then fails clearly when it never is', async () => {
    write(dir, '200_add_extra.sql', 'ALTER TABLE p_orders ADD COLUMN extra int;\n');
    const held = await holdLock(url, ['BEGIN', 'LOCK TABLE p_orders IN ACCESS SHARE MODE']);
    const run = startCli(['migrate', 'up', '--execute', '--dir', dir, '--lock-timeout', '200'], { SHADOWSHIFT_URL: url });
    await stderrShows(run, /retry 2\/8/);
    expect(await columnInfo(db, 'p_orders', 'extra')).toBeNull();
    await held.release();
    const r = await run.done;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/lock not granted \(.*lock timeout.*\); retry 1\/8/);
    expect(await columnInfo(db, 'p_orders', 'extra')).not.toBeNull();

    write(dir, '300_add_more.sql', 'ALTER TABLE p_orders ADD COLUMN more int;\n');
    const held2 = await holdLock(url, ['BEGIN', 'LOCK TABLE p_orders IN ACCESS SHARE MODE']);
    const failed = await cli(['migrate', 'up', '--execute', '--dir', dir, '--lock-timeout', '200', '--ddl-retries', '1'], { SHADOWSHIFT_URL: url });
    await held2.release();
    expect(failed.code).toBe(7);
    expect(failed.stderr).toMatch(/300_add_more\.sql: expand failed at statement 1 \(line 1\): .*lock timeout.*\(55P03\)/);
  });
});

describe('planner on mysql', () => {
  let url: string;
  let db: Db;
  let dir: string;

  beforeAll(async () => {
    ({ url, db } = await newDatabase('mysql', 'mplmy'));
    dir = tempDir();
    await db.exec('CREATE TABLE m_orders (id BIGINT PRIMARY KEY, amount DECIMAL(12,2) NOT NULL, note VARCHAR(100))');
    await db.exec(`INSERT INTO m_orders SELECT seq, seq / 100, CONCAT('n', seq) FROM ${mysqlSeq(1, 3000)}`);
  });
  afterAll(async () => {
    await db?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('tries ALGORITHM=INSTANT first, INPLACE for indexes, and runs a small copy as written', async () => {
    write(
      dir,
      '100_changes.sql',
      'ALTER TABLE m_orders ADD COLUMN extra INT NULL;\nCREATE INDEX m_orders_note_idx ON m_orders (note);\nALTER TABLE m_orders MODIFY amount DECIMAL(14,2) NOT NULL;\n',
    );
    const plan = json(await cli(['migrate', 'plan', '--json', '--dir', dir], { SHADOWSHIFT_URL: url }));
    expect(plan.up[0].phases[0].statements.map((s: any) => s.class)).toEqual(['instant', 'online', 'blocking']);
    const r = await cli(['migrate', 'up', '--execute', '--json', '--dir', dir], { SHADOWSHIFT_URL: url });
    expect(r.code, r.stderr).toBe(0);
    const ran = json(r).ran[0].statements.map((s: any) => s.ran);
    expect(ran[0]).toBe('ALGORITHM=INSTANT');
    expect(ran[1]).toBe('ALGORITHM=INPLACE, LOCK=NONE');
    expect(ran[2]).toMatch(/INSTANT refused, INPLACE refused; ran as written/);
    expect(await indexExists(db, 'm_orders', 'm_orders_note_idx')).toBe(true);
    expect((await columnInfo(db, 'm_orders', 'amount'))!.type).toBe('decimal(14,2)');
  });

  it('retries DDL while another session holds the table lock', async () => {
    write(dir, '200_add_more.sql', 'ALTER TABLE m_orders ADD COLUMN more INT NULL;\n');
    const held = await holdLock(url, ['LOCK TABLES m_orders READ']);
    const run = startCli(['migrate', 'up', '--execute', '--dir', dir, '--lock-timeout', '1000'], { SHADOWSHIFT_URL: url });
    await stderrShows(run, /retry 1\/8/);
    expect(await columnInfo(db, 'm_orders', 'more')).toBeNull();
    await held.release();
    const r = await run.done;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/lock not granted \(Lock wait timeout exceeded.*\); retry 1\/8/);
    expect(await columnInfo(db, 'm_orders', 'more')).not.toBeNull();
  });
});

describe('lint with --url', () => {
  it('knows which tables are big and fires mysql-non-instant-alter only for them', async () => {
    const { url, db } = await newDatabase('mysql', 'mlint');
    const dir = tempDir();
    try {
      await db.exec('CREATE TABLE big_t (id INT PRIMARY KEY, a INT)');
      await db.exec(`INSERT INTO big_t SELECT seq, seq FROM ${mysqlSeq(1, 2000)}`);
      await db.exec('CREATE TABLE small_t (id INT PRIMARY KEY, a INT)');
      await db.exec('ANALYZE TABLE big_t, small_t');
      write(dir, '001_a.sql', 'SET SESSION lock_wait_timeout = 5;\nALTER TABLE big_t ADD PRIMARY KEY (id, a), DROP PRIMARY KEY;\nALTER TABLE small_t ADD PRIMARY KEY (id, a), DROP PRIMARY KEY;\n');
      const r = await cli(['lint', dir, '--dialect', 'mysql', '--url', url, '--online-threshold', '1000', '--format', 'json']);
      expect(r.code).toBe(1);
      const f = json(r).files[0].findings.filter((x: any) => x.rule === 'mysql-non-instant-alter');
      expect(f.map((x: any) => [x.line, x.severity])).toEqual([[2, 'error']]);
    } finally {
      await db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
