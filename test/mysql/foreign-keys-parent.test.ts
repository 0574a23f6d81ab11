// A MySQL/MariaDB parent table (other tables' foreign keys reference it) is migrated
// atomically (issue 15, option C; mysql-child-repoint.ts): the children's keys are
// repointed at the shadow under the cut-over's lock, after the drain, and the RENAME
// carries them to the table's name. The oracle is the application's own model of the
// parent's rows, and the server's keys: after the job every child key references the new
// table, none the old one, and no child row is an orphan.
//
// The writers own the parent ids of their parity (each id's story is one writer's, in
// order). A child insert that references the writer's own live parent must succeed, at
// every moment of the job (a key checked against a lagging or the old table would fail
// it); one that references the other writer's ids may legally fail (1452), as may a
// delete of a parent a RESTRICT child still references (1451). Those are counted.

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Connection, ResultSetHeader, RowDataPacket } from 'mysql2/promise';
import type { MysqlSession } from '../../src/dialects/mysql/mysql-dialect.js';
import { CutoverAttemptError } from '../../src/util/errors.js';
import { capturingLogger, newJob, runAlter, waitUntil } from '../support/alter.js';
import { startCli } from '../support/cli.js';
import { killFixtureAt } from '../support/kill-at.js';
import { mysqlSeq } from '../support/db.js';
import { freshDb } from './helpers.js';

let url: string;
let schema: string;
let admin: Connection;
let session: MysqlSession;

beforeAll(async () => {
  ({ url, name: schema, admin, session } = await freshDb('fkp'));
});
afterAll(async () => {
  await session?.close();
  await admin?.end();
});

const ALTER = 'ADD COLUMN extra INT NOT NULL DEFAULT 7';

/** The parent and its two children: c1 cascades, c2 restricts deletes and follows key changes. */
async function createFamily(p: string, parents: number, children: number): Promise<void> {
  await admin.query(`CREATE TABLE ${p} (id INT PRIMARY KEY, v INT NOT NULL)`);
  await admin.query(`INSERT INTO ${p} SELECT seq, seq FROM ${mysqlSeq(1, parents)}`);
  await admin.query(
    `CREATE TABLE ${p}_c1 (id INT AUTO_INCREMENT PRIMARY KEY, pid INT NOT NULL, w INT NOT NULL DEFAULT 0, KEY (pid),
       CONSTRAINT ${p}_c1_fk FOREIGN KEY (pid) REFERENCES ${p} (id) ON DELETE CASCADE ON UPDATE CASCADE)`,
  );
  await admin.query(
    `CREATE TABLE ${p}_c2 (id INT AUTO_INCREMENT PRIMARY KEY, pid INT NOT NULL, w INT NOT NULL DEFAULT 0, KEY (pid),
       CONSTRAINT ${p}_c2_fk FOREIGN KEY (pid) REFERENCES ${p} (id) ON DELETE RESTRICT ON UPDATE CASCADE)`,
  );
  await admin.query(`INSERT INTO ${p}_c1 (pid) SELECT 1 + (seq * 7) % ${parents} FROM ${mysqlSeq(1, children)}`);
  // c2 references the low ids only, so most parents can be deleted.
  await admin.query(`INSERT INTO ${p}_c2 (pid) SELECT 1 + seq % 1000 FROM ${mysqlSeq(1, Math.ceil(children / 2))}`);
}

/** `child.key -> parent` for every key that references one of the tables named `p...`. */
async function keysOf(p: string): Promise<string[]> {
  const [rows] = await admin.query<RowDataPacket[]>(
    `SELECT CONCAT(TABLE_NAME, '.', CONSTRAINT_NAME, ' -> ', REFERENCED_TABLE_NAME) AS k FROM information_schema.REFERENTIAL_CONSTRAINTS
      WHERE CONSTRAINT_SCHEMA = ? AND (TABLE_NAME LIKE ? OR REFERENCED_TABLE_NAME LIKE ?) ORDER BY 1`,
    [schema, `${p}\\_c%`, `${p}%`],
  );
  return rows.map((r) => String(r.k));
}

async function orphans(p: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const c of [`${p}_c1`, `${p}_c2`]) {
    const [[n]] = await admin.query<RowDataPacket[]>(`SELECT COUNT(*) AS n FROM ${c} LEFT JOIN ${p} ON ${p}.id = ${c}.pid WHERE ${p}.id IS NULL`);
    out[c] = Number(n!.n);
  }
  return out;
}

/** After the job: the keys reference the new table, which cascades and restricts as before. */
async function expectKeysOnNewTable(p: string): Promise<void> {
  expect(await keysOf(p)).toEqual([`${p}_c1.${p}_c1_fk -> ${p}`, `${p}_c2.${p}_c2_fk -> ${p}`]);
  expect(await orphans(p)).toEqual({ [`${p}_c1`]: 0, [`${p}_c2`]: 0 });
  const [[cols]] = await admin.query<RowDataPacket[]>("SELECT COUNT(*) AS n FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND COLUMN_NAME = 'extra'", [schema, p]);
  expect(Number(cols!.n)).toBe(1);
  // The server enforces them on the new table: a parent-less child is refused, a delete cascades, a referenced row is kept.
  await expect(admin.query(`INSERT INTO ${p}_c1 (pid) VALUES (-5)`)).rejects.toMatchObject({ errno: 1452 });
  const [[withChild]] = await admin.query<RowDataPacket[]>(`SELECT MAX(pid) AS id FROM ${p}_c1 WHERE pid NOT IN (SELECT pid FROM ${p}_c2)`);
  await admin.query(`DELETE FROM ${p} WHERE id = ?`, [withChild!.id]);
  const [[gone]] = await admin.query<RowDataPacket[]>(`SELECT COUNT(*) AS n FROM ${p}_c1 WHERE pid = ?`, [withChild!.id]);
  expect(Number(gone!.n)).toBe(0);
  const [[restricted]] = await admin.query<RowDataPacket[]>(`SELECT MIN(pid) AS id FROM ${p}_c2`);
  await expect(admin.query(`DELETE FROM ${p} WHERE id = ?`, [restricted!.id])).rejects.toMatchObject({ errno: 1451 });
}

describe('a parent table with two children', () => {
  it('under writes to all three through the copy, the postponed cut-over and the swap: the keys end on the new table, no orphan, the parent equals the model', async () => {
    const PARENTS = 30_000;
    await createFamily('p', PARENTS, 30_000);
    const model = new Map<number, number>();
    for (let id = 1; id <= PARENTS; id++) model.set(id, id);
    const counts = { parentInserts: 0, parentDeletes: 0, keyMoves: 0, ownChildInserts: 0, crossChildInserts: 0, childUpdates: 0, refused1452: 0, refused1451: 0, goneRefused: 0 };
    /** The ids each writer inserted lately (the other writer references and deletes them meanwhile). */
    const recent: number[][] = [[], []];
    /** Ids a writer deleted or moved away from lately: never used again, so a child of one must be refused, whenever. */
    const gone: number[][] = [[], []];
    const forget = (w: number, id: number) => {
      gone[w]!.push(id);
      if (gone[w]!.length > 50) gone[w]!.shift();
    };
    let stop = false;
    let writes = 0;
    const legal = (err: unknown, errno: number): boolean => (err as { errno?: number }).errno === errno;
    const writer = async (w: number) => {
      const conn = await session.ctx.pool.getConnection();
      let next = 1_000_000 + w;
      try {
        for (let i = 0; !stop; i++) {
          const own = 2 * (1 + Math.floor(Math.random() * (PARENTS / 2 - 1))) - w; // w = 0: even ids, 1: odd
          const kind = i % 6;
          if (kind === 0) {
            // A new parent, and at once a child of it: must never fail.
            const id = (next += 2);
            await conn.query('INSERT INTO p (id, v) VALUES (?, ?)', [id, i]);
            model.set(id, i);
            recent[w]!.push(id);
            if (recent[w]!.length > 50) recent[w]!.shift();
            counts.parentInserts++;
            await conn.query(`INSERT INTO ${i % 12 === 0 ? 'p_c1' : 'p_c2'} (pid) VALUES (?)`, [id]);
            counts.ownChildInserts++;
          } else if (kind === 1 && i % 12 === 7 && gone[1 - w]!.length > 0) {
            // A child of a parent the other writer deleted: refused at every moment (the old table or a lagging one would take it).
            const pid = gone[1 - w]![Math.floor(Math.random() * gone[1 - w]!.length)]!;
            await conn.query('INSERT INTO p_c1 (pid, w) VALUES (?, ?)', [pid, i]).then(
              () => Promise.reject(new Error(`a child of the deleted parent ${pid} was accepted`)),
              (err: unknown) => (legal(err, 1452) ? void counts.goneRefused++ : Promise.reject(err)),
            );
          } else if (kind === 1) {
            // A child of a parent the other writer inserted lately, and may be deleting now.
            const theirs = recent[1 - w]!;
            const pid = theirs.length > 0 ? theirs[Math.floor(Math.random() * theirs.length)]! : own;
            try {
              await conn.query('INSERT INTO p_c1 (pid, w) VALUES (?, ?)', [pid, i]);
              counts.crossChildInserts++;
            } catch (err) {
              if (!legal(err, 1452)) throw err;
              counts.refused1452++;
            }
          } else if (kind === 2) {
            // Delete one of its own parents: c1's children go with it, c2's keep it (1451).
            const mine = recent[w]!;
            const id = i % 4 === 0 && mine.length > 0 ? mine.splice(Math.floor(Math.random() * mine.length), 1)[0]! : own;
            if (id <= 1000) continue;
            try {
              const [r] = await conn.query<ResultSetHeader>('DELETE FROM p WHERE id = ?', [id]);
              if (r.affectedRows > 0) {
                model.delete(id);
                forget(w, id);
                counts.parentDeletes++;
              }
            } catch (err) {
              if (!legal(err, 1451)) throw err;
              counts.refused1451++;
            }
          } else if (kind === 3) {
            await conn.query('UPDATE p_c1 SET w = w + 1 WHERE pid = ?', [own]);
            await conn.query('UPDATE p_c2 SET w = w + 1 WHERE id = ?', [1 + (i % 1000)]);
            counts.childUpdates++;
          } else if (kind === 4) {
            // A parent's key changes: both children follow (ON UPDATE CASCADE).
            if (!model.has(own) || own <= 1000) continue;
            const id = (next += 2);
            const [r] = await conn.query<ResultSetHeader>('UPDATE p SET id = ? WHERE id = ?', [id, own]);
            if (r.affectedRows > 0) {
              model.set(id, model.get(own)!);
              model.delete(own);
              forget(w, own);
              counts.keyMoves++;
            }
          } else {
            await conn.query('UPDATE p SET v = ? WHERE id = ?', [-i, own]);
            if (model.has(own)) model.set(own, -i);
          }
          writes++;
        }
      } finally {
        conn.release();
      }
    };
    const writers = [writer(0), writer(1)];
    const dir = mkdtempSync(join(tmpdir(), 'ss-fkp-'));
    const flag = join(dir, 'postpone');
    writeFileSync(flag, '');
    const { log, lines } = capturingLogger();
    const job = newJob(url, 'p', ALTER, { postponeCutoverFlagFile: flag, chunkSize: 1000, log });
    try {
      const report = await job.prepare();
      expect(report.checks.find((c) => c.check === 'foreign-keys'), JSON.stringify(report.checks.filter((c) => !c.ok))).toMatchObject({ ok: true });
      const running = job.execute(report);
      running.catch(() => undefined);
      await waitUntil(() => job.status().state === 'copying', 'the copy', 30_000);
      const atCopy = writes;
      await waitUntil(() => job.status().state === 'postponed' || job.status().state === 'failed', 'the postponed cut-over', 120_000);
      const atPostponed = writes;
      await waitUntil(() => writes >= atPostponed + 200, 'writes while postponed', 60_000);
      rmSync(flag);
      const result = await running;
      expect(result.repairedChunks).toBe(0);
      const atDone = writes;
      await waitUntil(() => writes >= atDone + 200, 'writes after the swap', 60_000);
      expect(atPostponed).toBeGreaterThan(atCopy);
    } finally {
      stop = true;
      await Promise.allSettled(writers);
      await job.close();
      rmSync(dir, { recursive: true, force: true });
    }
    await Promise.all(writers); // an unexpected error fails the test
    // The swap happened with the children in the lock, repointed under it.
    const swapped = lines.find((l) => l.msg === 'tables swapped');
    expect(swapped).toMatchObject({ children: 2, repointMs: expect.any(Number) });
    expect(counts.goneRefused).toBeGreaterThan(20);
    expect(counts.ownChildInserts).toBeGreaterThan(100);
    expect(counts.parentDeletes).toBeGreaterThan(50);
    expect(counts.keyMoves).toBeGreaterThan(20);

    // The parent holds what the application wrote.
    const [live] = await admin.query<RowDataPacket[]>('SELECT id, v, extra FROM p ORDER BY id');
    expect(live.length).toBe(model.size);
    expect(live.filter((r) => model.get(Number(r.id)) !== Number(r.v) || Number(r.extra) !== 7).slice(0, 5)).toEqual([]);
    // No key references the old table, and the old table is no parent: it can be dropped.
    const [old] = await admin.query<RowDataPacket[]>("SELECT TABLE_NAME AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME LIKE 'p\\_ssold%'", [schema]);
    expect(old.length).toBe(1);
    await expectKeysOnNewTable('p');
    await admin.query(`DROP TABLE \`${String(old[0]!.n)}\``);
  }, 300_000);

  it('a failed attempt after the repoint puts the children back on the table before anything is unlocked, and the next attempt succeeds', async () => {
    await createFamily('f', 3000, 3000);
    let attempts = 0;
    let duringFirst: string[] = [];
    let atSecond: string[] = [];
    let queued: Promise<unknown> = Promise.resolve();
    const { log, lines } = capturingLogger();
    await runAlter(url, 'f', ALTER, {
      log,
      testHooks: {
        afterCutoverDrain: async (attempt) => {
          if (attempt === 2) atSecond = await keysOf('f');
        },
        beforeSwap: async () => {
          if (++attempts > 1) return;
          duringFirst = await keysOf('f');
          // Queued behind the lock: a new parent and its child, which must be checked against the table, not the lagging shadow.
          queued = session.ctx.pool.query('INSERT INTO f VALUES (5000, 5000)').then(() => session.ctx.pool.query('INSERT INTO f_c1 (pid) VALUES (5000)'));
          queued.catch(() => undefined);
          throw new CutoverAttemptError('forced by the test after the children were repointed');
        },
      },
    });
    await queued;
    expect(duringFirst).toEqual(['f_c1.f_c1_fk -> f_ssnew', 'f_c2.f_c2_fk -> f_ssnew']);
    expect(atSecond).toEqual(['f_c1.f_c1_fk -> f', 'f_c2.f_c2_fk -> f']);
    expect(lines.filter((l) => l.msg === 'tables swapped')).toHaveLength(1);
    expect(lines.some((l) => String(l.msg).includes('another session did'))).toBe(false);
    await expectKeysOnNewTable('f');
    const [[n]] = await admin.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM f_c1');
    expect(Number(n!.n)).toBeGreaterThan(2900);
  });

  it.each(['resume', 'cleanup'] as const)('killed after the repoint, before the RENAME: %s puts the children back, with no orphan', async (then) => {
    const p = then === 'resume' ? 'k1' : 'k2';
    await createFamily(p, 2000, 2000);
    const dir = mkdtempSync(join(tmpdir(), 'ss-fkp-kill-'));
    try {
      await killFixtureAt({ url, table: p, alter: ALTER, stopAt: 'children-repointed', flagFile: join(dir, 'stopped') }, 'the job to stop after the repoint');
      // Where the run died: the children reference the shadow, which the sentry keeps from being swapped in.
      expect(await keysOf(p)).toEqual([`${p}_c1.${p}_c1_fk -> ${p}_ssnew`, `${p}_c2.${p}_c2_fk -> ${p}_ssnew`]);
      // A new job (not a resume) is refused, and says how to put the children back.
      await expect(runAlter(url, p, ALTER)).rejects.toThrow(new RegExp(`${p}_c1\\.${p}_c1_fk, ${p}_c2\\.${p}_c2_fk reference the shadow table of ${p} that a stopped job left[\\s\\S]*shadowshift cleanup --execute`));
      if (then === 'resume') {
        await runAlter(url, p, ALTER, { resume: true });
        await expectKeysOnNewTable(p);
      } else {
        const cleanup = await startCli(['cleanup', '--url', url, '--execute', '--wait', '30']).done;
        expect(cleanup.code, cleanup.stderr.slice(-3000)).toBe(0);
        expect(await keysOf(p)).toEqual([`${p}_c1.${p}_c1_fk -> ${p}`, `${p}_c2.${p}_c2_fk -> ${p}`]);
        expect(await orphans(p)).toEqual({ [`${p}_c1`]: 0, [`${p}_c2`]: 0 });
        const [left] = await admin.query<RowDataPacket[]>('SELECT TABLE_NAME AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME LIKE ?', [schema, `${p}\\_ss%`]);
        expect(left).toEqual([]);
        // And the ALTER runs from scratch.
        await runAlter(url, p, ALTER);
        await expectKeysOnNewTable(p);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 180_000);

  it('cleanup refuses to drop a shadow children reference when the table they belonged to is gone, and names them', async () => {
    const { url: url2, admin: admin2, session: session2 } = await freshDb('fkg');
    try {
      await admin2.query('CREATE TABLE g_ssnew (id INT PRIMARY KEY)');
      await admin2.query('CREATE TABLE g_c (id INT PRIMARY KEY, pid INT, KEY (pid), CONSTRAINT g_c_fk FOREIGN KEY (pid) REFERENCES g_ssnew (id))');
      const cleanup = await startCli(['cleanup', '--url', url2, '--execute']).done;
      expect(cleanup.code).not.toBe(0);
      expect(cleanup.stderr + cleanup.stdout).toMatch(/g_c\.g_c_fk reference g_ssnew[\s\S]*\.g, the table they referenced before, is gone/);
      const [still] = await admin2.query<RowDataPacket[]>("SELECT COUNT(*) AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'g_ssnew'");
      expect(Number(still[0]!.n)).toBe(1);
    } finally {
      await session2.close();
      await admin2.end();
    }
  });

  it('an ALTER that takes from the new table what a child needs fails before the copy, naming the key', async () => {
    await createFamily('n', 100, 100);
    await expect(runAlter(url, 'n', 'MODIFY id BIGINT NOT NULL')).rejects.toThrow(/foreign key n_c1_fk of n_c1 references n \(id\), and the ALTER changes id from int\(11\) to bigint\(20\)/);
    await admin.query('CREATE TABLE u (id INT PRIMARY KEY, code INT NOT NULL, UNIQUE KEY code (code))');
    await admin.query('CREATE TABLE u_c (id INT PRIMARY KEY, code INT, KEY (code), CONSTRAINT u_c_fk FOREIGN KEY (code) REFERENCES u (code))');
    await expect(runAlter(url, 'u', 'DROP INDEX code')).rejects.toThrow(/foreign key u_c_fk of u_c references u \(code\), and the new table has no index whose first columns are exactly \(code\)/);
    const [left] = await admin.query<RowDataPacket[]>("SELECT TABLE_NAME AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND (TABLE_NAME LIKE 'n\\_ss%' OR TABLE_NAME LIKE 'u\\_ss%')", [schema]);
    expect(left).toEqual([]);
    expect(await keysOf('n')).toEqual(['n_c1.n_c1_fk -> n', 'n_c2.n_c2_fk -> n']);
  });
});
