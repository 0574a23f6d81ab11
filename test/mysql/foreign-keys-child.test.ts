// A MySQL/MariaDB table with foreign keys to parents (issue 15): the parents' cascades,
// which the binlog does not show, reach the new table (mysql-cascades.ts), and the new
// table ends with the same keys under their own names (mysql-shadow-keys.ts).
//
// The oracle is InnoDB itself: a control table `ctl` has t's definition and keys, never
// migrated. Every application write to t is made to ctl in the same transaction, so both
// succeed or fail together, and every parent change cascades into both. After the job the
// new t must hold exactly ctl's rows. Writers run from before the job until after it,
// deleting and re-keying parents through the copy, the catch-up and the postponed cut-over.

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Connection, RowDataPacket } from 'mysql2/promise';
import type { MysqlSession } from '../../src/dialects/mysql/mysql-dialect.js';
import { newJob, runAlter, waitUntil } from '../support/alter.js';
import { startCli } from '../support/cli.js';
import { killFixtureAt } from '../support/kill-at.js';
import { mysqlSeq } from '../support/db.js';
import { freshDb } from './helpers.js';

let url: string;
let schema: string;
let admin: Connection;
let session: MysqlSession;

beforeAll(async () => {
  ({ url, name: schema, admin, session } = await freshDb('fkc'));
});
afterAll(async () => {
  await session?.close();
  await admin?.end();
});

async function keysOf(table: string): Promise<Array<Record<string, string>>> {
  const [rows] = await admin.query<RowDataPacket[]>(
    `SELECT r.CONSTRAINT_NAME AS name, r.REFERENCED_TABLE_NAME AS parent, r.UPDATE_RULE AS onUpdate, r.DELETE_RULE AS onDelete,
            GROUP_CONCAT(k.COLUMN_NAME ORDER BY k.ORDINAL_POSITION) AS cols
       FROM information_schema.REFERENTIAL_CONSTRAINTS r
       JOIN information_schema.KEY_COLUMN_USAGE k ON k.CONSTRAINT_SCHEMA = r.CONSTRAINT_SCHEMA AND k.TABLE_NAME = r.TABLE_NAME AND k.CONSTRAINT_NAME = r.CONSTRAINT_NAME
      WHERE r.CONSTRAINT_SCHEMA = ? AND r.TABLE_NAME = ? GROUP BY 1, 2, 3, 4 ORDER BY 1`,
    [schema, table],
  );
  return rows.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, String(v)])));
}

const RETRYABLE = new Set([1452, 1451, 1213, 1205]);

describe('a table with foreign keys to its parents', () => {
  it('follows every cascade of its parents through the copy, the catch-up and the postponed cut-over, and ends with its keys under their own names', async () => {
    await admin.query('CREATE TABLE pa (id INT PRIMARY KEY, v INT)');
    await admin.query('CREATE TABLE pb (code VARCHAR(12) PRIMARY KEY)');
    await admin.query('CREATE TABLE pr (id INT PRIMARY KEY)');
    await admin.query(`INSERT INTO pa SELECT seq, seq FROM ${mysqlSeq(1, 3000)}`);
    await admin.query(`INSERT INTO pb SELECT CONCAT('c', seq) FROM ${mysqlSeq(1, 400)}`);
    await admin.query(`INSERT INTO pr SELECT seq FROM ${mysqlSeq(1, 50)}`);
    const body = (prefix: string) =>
      `(id INT PRIMARY KEY, pa_id INT NULL, pb_code VARCHAR(12) NULL, pr_id INT NULL, v INT NOT NULL,
        CONSTRAINT ${prefix}_pa FOREIGN KEY (pa_id) REFERENCES pa (id) ON DELETE CASCADE ON UPDATE CASCADE,
        CONSTRAINT ${prefix}_pb FOREIGN KEY (pb_code) REFERENCES pb (code) ON DELETE SET NULL ON UPDATE CASCADE,
        CONSTRAINT ${prefix}_pr FOREIGN KEY (pr_id) REFERENCES pr (id))`;
    await admin.query(`CREATE TABLE t ${body('t')}`);
    await admin.query(`CREATE TABLE ctl ${body('ctl')}`);
    const seed = `SELECT seq, 1 + seq % 3000, CONCAT('c', 1 + seq % 400), 1 + seq % 50, seq FROM ${mysqlSeq(1, 30_000)}`;
    await admin.query(`INSERT INTO t ${seed}`);
    await admin.query(`INSERT INTO ctl ${seed}`);
    const keysBefore = await keysOf('t');

    let stop = false;
    const done = { childWrites: 0, parentChanges: 0, refused: 0 };
    const writer = async (w: number) => {
      const conn = await session.ctx.pool.getConnection();
      let nextId = 1_000_000 + w;
      let nextKey = 5_000_000 + w;
      const deletedPa: number[] = [];
      const rnd = (n: number) => 1 + Math.floor(Math.random() * n);
      const both = async (sql: (table: string) => string, params: unknown[]) => {
        await conn.query('BEGIN');
        try {
          await conn.query(sql('t'), params);
          await conn.query(sql('ctl'), params);
          await conn.query('COMMIT');
          done.childWrites++;
        } catch (err) {
          await conn.query('ROLLBACK');
          if (!RETRYABLE.has((err as { errno?: number }).errno ?? 0)) throw err;
          done.refused++;
        }
      };
      const parent = async (sql: string, params: unknown[]) => {
        try {
          await conn.query(sql, params);
          done.parentChanges++;
        } catch (err) {
          if (!RETRYABLE.has((err as { errno?: number }).errno ?? 0)) throw err;
          done.refused++;
        }
      };
      try {
        for (let i = 0; !stop; i++) {
          switch (i % 8) {
            case 0:
              await both((tb) => `INSERT INTO ${tb} (id, pa_id, pb_code, pr_id, v) VALUES (?, ?, ?, ?, ?)`, [(nextId += 2), rnd(3000), `c${rnd(400)}`, rnd(50), i]);
              break;
            case 1:
              await both((tb) => `UPDATE ${tb} SET v = ?, pa_id = ? WHERE id = ?`, [-i, rnd(3000), rnd(30_000)]);
              break;
            case 2:
              await both((tb) => `DELETE FROM ${tb} WHERE id = ?`, [rnd(30_000)]);
              break;
            case 3: {
              // Deleted, cascading into t; inserted again later under the same key.
              const id = rnd(3000);
              await parent('DELETE FROM pa WHERE id = ? AND id % 2 = ?', [id, w]);
              deletedPa.push(id);
              break;
            }
            case 4:
              // A key change: ON UPDATE CASCADE moves the children.
              await parent('UPDATE pa SET id = ? WHERE id = ? AND id % 2 = ?', [(nextKey += 2), rnd(3000), w]);
              break;
            case 5:
              if (deletedPa.length > 0) await parent('INSERT IGNORE INTO pa (id, v) VALUES (?, 0)', [deletedPa.shift()]);
              break;
            case 6: {
              const n = rnd(400);
              if (n % 2 === w) {
                // SET NULL, then the code again; or a renamed code (ON UPDATE CASCADE).
                if (i % 16 < 8) await parent('DELETE FROM pb WHERE code = ?', [`c${n}`]);
                else await parent('UPDATE pb SET code = ? WHERE code = ?', [`r${nextKey += 2}`, `c${n}`]);
                await parent('INSERT IGNORE INTO pb (code) VALUES (?)', [`c${n}`]);
              }
              break;
            }
            default:
              await both((tb) => `UPDATE ${tb} SET pb_code = ? WHERE id = ?`, [`c${rnd(400)}`, rnd(30_000)]);
          }
        }
      } finally {
        conn.release();
      }
    };
    const writers = [writer(0), writer(1)];
    const dir = mkdtempSync(join(tmpdir(), 'ss-fkc-'));
    const flag = join(dir, 'postpone');
    writeFileSync(flag, '');
    const job = newJob(url, 't', 'ADD COLUMN extra INT NOT NULL DEFAULT 7, MODIFY v BIGINT NOT NULL', { postponeCutoverFlagFile: flag, chunkSize: 500 });
    let atCopy = 0;
    let atPostponed = 0;
    try {
      const report = await job.prepare();
      expect(report.checks.find((c) => c.check === 'foreign-keys')).toMatchObject({ ok: true, message: expect.stringMatching(/t_pa \(to pa, ON DELETE CASCADE ON UPDATE CASCADE: the parent's changes are replayed/) });
      const running = job.execute(report);
      running.catch(() => undefined);
      await waitUntil(() => job.status().state === 'copying', 'the copy', 30_000);
      atCopy = done.parentChanges;
      await waitUntil(() => job.status().state === 'postponed' || job.status().state === 'failed', 'the postponed cut-over', 180_000);
      atPostponed = done.parentChanges;
      await waitUntil(() => done.parentChanges >= atPostponed + 100, 'parent changes while postponed', 60_000);
      rmSync(flag);
      const result = await running;
      expect(result.repairedChunks).toBe(0);
      const atDone = done.childWrites;
      await waitUntil(() => done.childWrites >= atDone + 50, 'writes after the swap', 60_000);
    } finally {
      stop = true;
      await Promise.allSettled(writers);
      await job.close();
      rmSync(dir, { recursive: true, force: true });
    }
    await Promise.all(writers); // an unexpected error fails the test
    expect(atPostponed).toBeGreaterThan(atCopy); // parents changed during the copy

    // Exactly the control table's rows: every cascade reached the new table, in its place.
    const [diff] = await admin.query<RowDataPacket[]>(
      `SELECT 'missing' AS what, c.id FROM ctl c LEFT JOIN t ON t.id = c.id WHERE t.id IS NULL
       UNION ALL SELECT 'extra', t.id FROM t LEFT JOIN ctl c ON c.id = t.id WHERE c.id IS NULL
       UNION ALL SELECT 'differs', t.id FROM t JOIN ctl c ON c.id = t.id
        WHERE NOT (t.pa_id <=> c.pa_id AND t.pb_code <=> c.pb_code AND t.pr_id <=> c.pr_id AND t.v <=> c.v AND t.extra = 7) LIMIT 10`,
    );
    expect(diff).toEqual([]);
    const [[counts]] = await admin.query<RowDataPacket[]>('SELECT (SELECT COUNT(*) FROM t) AS t, (SELECT COUNT(*) FROM t WHERE pb_code IS NULL) AS nulls, (SELECT COUNT(*) FROM t WHERE pa_id > 5000000) AS moved');
    expect(Number(counts!.nulls)).toBeGreaterThan(0); // SET NULL happened
    expect(Number(counts!.moved)).toBeGreaterThan(0); // ON UPDATE CASCADE happened

    // The same keys under their own names on the new table; none on the old one, none temporary.
    expect(await keysOf('t')).toEqual(keysBefore);
    const [old] = await admin.query<RowDataPacket[]>("SELECT TABLE_NAME AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME LIKE 't\\_ssold%'", [schema]);
    expect(old.length).toBe(1);
    expect(await keysOf(String(old[0]!.n))).toEqual([]);
    // The keys are enforced and cascade on the new table.
    await expect(admin.query('INSERT INTO t (id, pa_id, v) VALUES (-1, -5, 0)')).rejects.toMatchObject({ errno: 1452 });
    const [[some]] = await admin.query<RowDataPacket[]>('SELECT pa_id FROM t WHERE pa_id IS NOT NULL LIMIT 1');
    await admin.query('DELETE FROM pa WHERE id = ?', [some!.pa_id]);
    const [[left]] = await admin.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM t WHERE pa_id = ?', [some!.pa_id]);
    expect(Number(left!.n)).toBe(0);
  });

  it('refuses an ALTER that adds or drops a foreign key, and a key to the table itself, before anything is created', async () => {
    await admin.query('CREATE TABLE sp (id INT PRIMARY KEY)');
    await admin.query('CREATE TABLE sc (id INT PRIMARY KEY, sp_id INT)');
    await expect(runAlter(url, 'sc', 'ADD CONSTRAINT sc_sp FOREIGN KEY (sp_id) REFERENCES sp (id)')).rejects.toThrow(/adds or drops a foreign key \(ADD CONSTRAINT sc_sp FOREIGN KEY[\s\S]*own native ALTER/);
    await admin.query('CREATE TABLE tree (id INT PRIMARY KEY, up INT, CONSTRAINT tree_up FOREIGN KEY (up) REFERENCES tree (id) ON DELETE CASCADE)');
    await expect(runAlter(url, 'tree', 'ADD COLUMN x INT')).rejects.toThrow(/tree references itself \(tree_up\)/);
    const [left] = await admin.query<RowDataPacket[]>("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND (TABLE_NAME LIKE 'sc\\_%' OR TABLE_NAME LIKE 'tree\\_%')", [schema]);
    expect(left).toEqual([]);
  });

  it('refuses a cascade through two levels, and a key the ALTER would break, naming the key', async () => {
    await admin.query('CREATE TABLE g (id INT PRIMARY KEY)');
    await admin.query('CREATE TABLE gp (id INT PRIMARY KEY, g_id INT, CONSTRAINT gp_g FOREIGN KEY (g_id) REFERENCES g (id) ON DELETE CASCADE)');
    await admin.query('CREATE TABLE gc (id INT PRIMARY KEY, gp_id INT, CONSTRAINT gc_gp FOREIGN KEY (gp_id) REFERENCES gp (id) ON DELETE CASCADE)');
    await expect(runAlter(url, 'gc', 'ADD COLUMN x INT')).rejects.toThrow(/gc cascades from gp \(gc_gp\), which itself cascades from g \(gp_g\)/);
    await admin.query('CREATE TABLE kb (id INT PRIMARY KEY, g_id INT, CONSTRAINT kb_g FOREIGN KEY (g_id) REFERENCES g (id))');
    await expect(runAlter(url, 'kb', 'MODIFY g_id BIGINT')).rejects.toThrow(/foreign key kb_g of kb does not fit the new table: the ALTER changes g_id from int\(11\) to bigint\(20\)/);
    const [left] = await admin.query<RowDataPacket[]>("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND (TABLE_NAME LIKE 'gc\\_%' OR TABLE_NAME LIKE 'kb\\_%')", [schema]);
    expect(left).toEqual([]);
  });

  it('replays no cascade for a parent change made with foreign_key_checks=0, which InnoDB does not cascade either, and every cascade of a many-row parent change', async () => {
    await admin.query('CREATE TABLE np (id INT PRIMARY KEY)');
    await admin.query(`INSERT INTO np SELECT seq FROM ${mysqlSeq(1, 20)}`);
    const body = (name: string) => `CREATE TABLE ${name} (id INT PRIMARY KEY, p INT, CONSTRAINT ${name}_p FOREIGN KEY (p) REFERENCES np (id) ON DELETE CASCADE ON UPDATE SET NULL)`;
    await admin.query(body('nc'));
    await admin.query(body('nc_ctl'));
    for (const t of ['nc', 'nc_ctl']) await admin.query(`INSERT INTO ${t} SELECT seq, 1 + seq % 20 FROM ${mysqlSeq(1, 200)}`);
    const result = await runAlter(url, 'nc', 'ADD COLUMN extra INT NOT NULL DEFAULT 7', {
      testHooks: {
        // While the stream is applied: one parent change of each kind without checks, one with.
        catchingUp: async () => {
          const conn = await session.ctx.pool.getConnection();
          try {
            await conn.query('SET SESSION foreign_key_checks = 0');
            await conn.query('DELETE FROM np WHERE id IN (1, 2)');
            await conn.query('UPDATE np SET id = 103 WHERE id = 3');
            await conn.query('SET SESSION foreign_key_checks = 1');
            await conn.query('DELETE FROM np WHERE id = 4');
            await conn.query('UPDATE np SET id = 105 WHERE id = 5');
            // Many parents in one statement: their cascades run as one statement each kind.
            await conn.query('DELETE FROM np WHERE id BETWEEN 6 AND 15');
            await conn.query('UPDATE np SET id = id + 1000 WHERE id BETWEEN 16 AND 18');
          } finally {
            conn.release();
          }
        },
      },
    });
    expect(result.repairedChunks).toBe(0);
    const [diff] = await admin.query<RowDataPacket[]>(
      `SELECT c.id FROM nc_ctl c LEFT JOIN nc t ON t.id = c.id WHERE t.id IS NULL OR NOT (t.p <=> c.p)
       UNION ALL SELECT t.id FROM nc t LEFT JOIN nc_ctl c ON c.id = t.id WHERE c.id IS NULL`,
    );
    expect(diff).toEqual([]);
    const [[orphans]] = await admin.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM nc WHERE p IN (1, 2, 3)');
    expect(Number(orphans!.n)).toBe(30); // the unchecked changes left their children as they were
    const [[cascaded]] = await admin.query<RowDataPacket[]>('SELECT SUM(p BETWEEN 6 AND 15) AS deleted, SUM(p IS NULL) AS nulled, COUNT(*) AS n FROM nc');
    expect({ deleted: Number(cascaded!.deleted), nulled: Number(cascaded!.nulled), n: Number(cascaded!.n) }).toEqual({ deleted: 0, nulled: 40, n: 90 });
  });

  it('replays the cascades of a key that spells its columns in another case than the tables do', async () => {
    await admin.query('CREATE TABLE cp (Id INT PRIMARY KEY)');
    await admin.query(`INSERT INTO cp SELECT seq FROM ${mysqlSeq(1, 10)}`);
    await admin.query('CREATE TABLE cc (id INT PRIMARY KEY, Pid INT, KEY (Pid), CONSTRAINT cc_p FOREIGN KEY (pid) REFERENCES cp (id) ON DELETE CASCADE ON UPDATE CASCADE)');
    await admin.query(`INSERT INTO cc SELECT seq, 1 + seq % 10 FROM ${mysqlSeq(1, 100)}`);
    const result = await runAlter(url, 'cc', 'ADD COLUMN extra INT NOT NULL DEFAULT 7', {
      testHooks: {
        catchingUp: async () => {
          await admin.query('DELETE FROM cp WHERE Id IN (1, 2)');
          await admin.query('UPDATE cp SET Id = 30 WHERE Id = 3');
        },
      },
    });
    expect(result.repairedChunks).toBe(0);
    const [[counts]] = await admin.query<RowDataPacket[]>('SELECT COUNT(*) AS n, SUM(Pid = 30) AS moved, SUM(Pid IN (1, 2, 3)) AS stale FROM cc');
    expect({ n: Number(counts!.n), moved: Number(counts!.moved), stale: Number(counts!.stale) }).toEqual({ n: 80, moved: 10, stale: 0 });
  });

  it('ends the job when a parent change leaves the referenced columns out of its row image (binlog_row_image=MINIMAL), instead of missing its cascade', async () => {
    await admin.query('CREATE TABLE mp (id INT PRIMARY KEY, code VARCHAR(10) NOT NULL, UNIQUE KEY (code))');
    await admin.query(`INSERT INTO mp SELECT seq, CONCAT('m', seq) FROM ${mysqlSeq(1, 10)}`);
    await admin.query('CREATE TABLE mc (id INT PRIMARY KEY, code VARCHAR(10), KEY (code), CONSTRAINT mc_p FOREIGN KEY (code) REFERENCES mp (code) ON DELETE CASCADE)');
    await admin.query(`INSERT INTO mc SELECT seq, CONCAT('m', 1 + seq % 10) FROM ${mysqlSeq(1, 100)}`);
    const run = runAlter(url, 'mc', 'ADD COLUMN extra INT NOT NULL DEFAULT 7', {
      testHooks: {
        catchingUp: async () => {
          const conn = await session.ctx.pool.getConnection();
          try {
            await conn.query("SET SESSION binlog_row_image = 'MINIMAL'");
            await conn.query('DELETE FROM mp WHERE id = 1'); // its row image holds the id only
            await conn.query("SET SESSION binlog_row_image = 'FULL'");
          } finally {
            conn.release();
          }
        },
      },
    });
    await expect(run).rejects.toThrow(/a session wrote [^ ]+\.mp with binlog_row_image=MINIMAL\/NOBLOB: its row event leaves out code[\s\S]*binlog_row_image=FULL/);
    const [[left]] = await admin.query<RowDataPacket[]>("SELECT COUNT(*) AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE 'mc\\_ss%'");
    expect(Number(left!.n)).toBe(0);
  });

  it('a failed cut-over attempt drops the keys it added to the shadow before the stream is applied again', async () => {
    await admin.query('CREATE TABLE fp (id INT PRIMARY KEY)');
    await admin.query(`INSERT INTO fp SELECT seq FROM ${mysqlSeq(1, 100)}`);
    await admin.query('CREATE TABLE fc (id INT PRIMARY KEY, p INT, CONSTRAINT fc_p FOREIGN KEY (p) REFERENCES fp (id) ON DELETE CASCADE, CONSTRAINT fc_r FOREIGN KEY (id) REFERENCES fp (id))');
    await admin.query(`INSERT INTO fc SELECT seq, seq FROM ${mysqlSeq(1, 100)}`);
    const shadowKeys: string[][] = [];
    let attempts = 0;
    const result = await runAlter(url, 'fc', 'ADD COLUMN extra INT NOT NULL DEFAULT 7', {
      cutoverRetries: 3,
      testHooks: {
        // Under the lock after the drain, before the shadow gets its keys: what the last attempt left there.
        afterCutoverDrain: async () => {
          shadowKeys.push((await keysOf('fc_ssnew')).map((k) => k.name));
        },
        beforeSwap: async () => {
          if (++attempts === 1) {
            expect((await keysOf('fc_ssnew')).map((k) => k.name)).toEqual(['fc_p_ssnew', 'fc_r_ssnew']);
            throw new Error('test: this attempt fails once the shadow has its keys');
          }
        },
      },
    });
    expect(attempts).toBe(2);
    expect(shadowKeys).toEqual([[], []]);
    expect(result.repairedChunks).toBe(0);
    expect((await keysOf('fc')).map((k) => `${k.name}:${k.parent}`)).toEqual(['fc_p:fp', 'fc_r:fp']);
  });

  // The fault matrix's "killed between the swap and the key DDL", just before the swap once
  // the shadow has its keys, and inside a chunk of the copy: a SIGKILL there, parents
  // deleted before it and meanwhile, then --resume (which replays from its checkpoint).
  it.each([['copying', 'kp0', 'kc0'], ['shadow-triggers', 'kp1', 'kc1'], ['before-own-names', 'kp2', 'kc2']] as const)('killed at %s: cascades still reach the new table, and --resume gives the keys their names', async (stopAt, parent, table) => {
    await admin.query(`CREATE TABLE ${parent} (id INT PRIMARY KEY)`);
    await admin.query(`INSERT INTO ${parent} SELECT seq FROM ${mysqlSeq(1, 200)}`);
    const body = (prefix: string) =>
      `(id INT PRIMARY KEY, p INT NULL, q INT NULL, CONSTRAINT ${prefix}_c FOREIGN KEY (p) REFERENCES ${parent} (id) ON DELETE CASCADE,
        CONSTRAINT ${prefix}_r FOREIGN KEY (q) REFERENCES ${parent} (id))`;
    await admin.query(`CREATE TABLE ${table} ${body(table)}`);
    await admin.query(`CREATE TABLE ${table}_ctl ${body(`${table}_ctl`)}`);
    for (const t of [table, `${table}_ctl`]) await admin.query(`INSERT INTO ${t} SELECT seq, 1 + seq % 200, IF(seq % 2 = 0, 1, NULL) FROM ${mysqlSeq(1, 4000)}`);
    const keysBefore = await keysOf(table);
    const alter = 'ADD COLUMN extra INT NOT NULL DEFAULT 7';
    const dir = mkdtempSync(join(tmpdir(), 'ss-fkc-kill-'));
    try {
      // Parents deleted (cascading) and children written while the job runs, until it stops.
      let stopWrites = false;
      const writes = (async () => {
        const conn = await session.ctx.pool.getConnection();
        try {
          for (let id = 61; id <= 120 && !stopWrites; id++) {
            await conn.query(`DELETE FROM ${parent} WHERE id = ?`, [id]);
            for (const t of [table, `${table}_ctl`]) await conn.query(`UPDATE ${t} SET p = ? WHERE id = ?`, [id + 80, id]);
          }
        } finally {
          conn.release();
        }
      })();
      await killFixtureAt(
        { url, table, alter, stopAt, flagFile: join(dir, 'stopped'), ...(stopAt === 'copying' ? { copyRows: 1000, chunkSize: 250, checkpointIntervalSeconds: 0.1 } : {}) },
        `the job to stop at ${stopAt}`,
      );
      stopWrites = true;
      await writes;
      // Where the run died: the shadow or the new table holds the keys under temporary names.
      const [temporary] = await admin.query<RowDataPacket[]>('SELECT CONSTRAINT_NAME AS n FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = ? AND CONSTRAINT_NAME LIKE ? ORDER BY 1', [schema, `${table}\\_%\\_ssnew`]);
      expect(temporary.map((r) => String(r.n))).toEqual(stopAt === 'copying' ? [] : [`${table}_c_ssnew`, `${table}_r_ssnew`]);
      // Cascades and writes while nothing runs.
      for (let i = 3; i <= 60; i += 3) await admin.query(`DELETE FROM ${parent} WHERE id = ?`, [i]);
      for (const t of [table, `${table}_ctl`]) await admin.query(`INSERT INTO ${t} (id, p) VALUES (9001, 150), (9002, 151)`);
      const resumed = await startCli(['alter', '--table', table, '--alter', alter, '--execute', '--json', '--resume', '--control-socket', join(dir, 'r.sock')], { SHADOWSHIFT_URL: url }).done;
      expect(resumed.code, resumed.stderr.slice(-3000)).toBe(0);
      expect(JSON.parse(resumed.stdout).result.repairedChunks).toBe(0);
      await admin.query(`DELETE FROM ${parent} WHERE id = 199`);

      expect(await keysOf(table)).toEqual(keysBefore);
      const [left] = await admin.query<RowDataPacket[]>('SELECT CONCAT(TABLE_NAME, \'.\', CONSTRAINT_NAME) AS n FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = ? AND (CONSTRAINT_NAME LIKE \'%\\_ssnew\' OR TABLE_NAME LIKE ?)', [schema, `${table}\\_ss%`]);
      expect(left).toEqual([]);
      const [diff] = await admin.query<RowDataPacket[]>(
        `SELECT c.id FROM ${table}_ctl c LEFT JOIN ${table} t ON t.id = c.id WHERE NOT (t.p <=> c.p AND t.q <=> c.q AND t.extra = 7) OR t.id IS NULL
         UNION ALL SELECT t.id FROM ${table} t LEFT JOIN ${table}_ctl c ON c.id = t.id WHERE c.id IS NULL`,
      );
      expect(diff).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 180_000);
});
