// Design spike for issue 15 (MySQL/MariaDB foreign keys and triggers): what the server
// allows around the cut-over, and how long each child table's foreign-key switch holds
// the tables. Starts a throwaway MariaDB (or SHADOWSHIFT_BENCH_MYSQL_URL), prints one
// line per question and a JSON summary; the conclusions are in
// docs/design/mysql-foreign-keys-and-triggers.md.
//
//   npx tsx bench/fk-spike.ts [--child-rows 100000]

import { parseArgs } from 'node:util';
import mysql from 'mysql2/promise';
import { startBenchServers } from './lib/servers.js';

const { values: args } = parseArgs({ options: { 'child-rows': { type: 'string', default: '100000' } } });
const childRows = Number(args['child-rows']);

type Conn = mysql.Connection;
const results: Record<string, unknown> = {};
const say = (key: string, value: unknown) => {
  results[key] = value;
  console.log(`${key}: ${typeof value === 'string' ? value : JSON.stringify(value)}`);
};

async function attempt(conn: Conn, sql: string): Promise<{ ok: boolean; ms: number; error?: string }> {
  const t = performance.now();
  try {
    await conn.query(sql);
    return { ok: true, ms: +(performance.now() - t).toFixed(1) };
  } catch (err) {
    return { ok: false, ms: +(performance.now() - t).toFixed(1), error: `${(err as { code?: string }).code}: ${(err as Error).message}` };
  }
}

async function referencedTable(conn: Conn, child: string): Promise<string[]> {
  const [rows] = await conn.query<mysql.RowDataPacket[]>(
    'SELECT CONSTRAINT_NAME AS name, REFERENCED_TABLE_NAME AS parent FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = DATABASE() AND TABLE_NAME = ? ORDER BY 1',
    [child],
  );
  return rows.map((r) => `${r.name}->${r.parent}`);
}

async function main() {
  const servers = await startBenchServers(['mysql']);
  try {
    const url = await servers.database('mysql', 'fkspike');
    const open = async () => {
      const c = await mysql.createConnection({ uri: url, multipleStatements: true });
      await c.query('SET SESSION lock_wait_timeout = 2, innodb_lock_wait_timeout = 2');
      return c;
    };
    const a = await open();
    const b = await open();
    const c = await open();
    const [[version]] = await a.query<mysql.RowDataPacket[]>('SELECT VERSION() AS v');
    say('server', version!.v);

    const fresh = async () => {
      await a.query('SET foreign_key_checks = 0');
      for (const t of ['c1', 'c2', 'p', 'p_new', 'p_old', 'p_sentry', 'k', 'k_new', 'audit']) await a.query(`DROP TABLE IF EXISTS ${t}`);
      await a.query('SET foreign_key_checks = 1');
      await a.query('CREATE TABLE p (id INT PRIMARY KEY, v INT)');
      await a.query('INSERT INTO p SELECT seq, seq FROM seq_1_to_1000');
      await a.query('CREATE TABLE p_new LIKE p');
      await a.query('INSERT INTO p_new SELECT * FROM p');
      for (const child of ['c1', 'c2']) {
        await a.query(`CREATE TABLE ${child} (id INT PRIMARY KEY, pid INT, KEY (pid), CONSTRAINT fk_${child} FOREIGN KEY (pid) REFERENCES p (id) ON DELETE CASCADE)`);
        await a.query(`INSERT INTO ${child} SELECT seq, 1 + seq % 1000 FROM seq_1_to_${childRows}`);
      }
    };

    // 1. Child keys follow a renamed parent.
    await fresh();
    await a.query('RENAME TABLE p TO p_old, p_new TO p');
    say('1. after RENAME p TO p_old, p_new TO p, the children reference', await referencedTable(a, 'c1'));

    // 2. One ALTER that drops a child's key and adds it again, same name, pointing elsewhere, checks off.
    await fresh();
    await a.query('SET foreign_key_checks = 0');
    const repoint = (child: string, to: string) =>
      `ALTER TABLE ${child} DROP FOREIGN KEY fk_${child}, ADD CONSTRAINT fk_${child} FOREIGN KEY (pid) REFERENCES ${to} (id) ON DELETE CASCADE`;
    const same = await attempt(a, repoint('c1', 'p_new'));
    say('2. same-name drop+add in one ALTER, checks off', same);
    say('2. c1 now references', await referencedTable(a, 'c1'));
    const withAlgo = await attempt(a, `${repoint('c2', 'p_new')}, ALGORITHM=INPLACE, LOCK=NONE`);
    say('2b. the same with ALGORITHM=INPLACE, LOCK=NONE (metadata only)', withAlgo);
    await a.query('SET foreign_key_checks = 1');
    say('2c. with checks on', await attempt(a, repoint('c1', 'p')));
    // So the switch takes two statements: the drop, then the add under the same name.
    const repointTwo = async (conn: Conn, child: string, to: string) => {
      const drop = await attempt(conn, `ALTER TABLE ${child} DROP FOREIGN KEY fk_${child}`);
      const add = await attempt(conn, `ALTER TABLE ${child} ADD CONSTRAINT fk_${child} FOREIGN KEY (pid) REFERENCES ${to} (id) ON DELETE CASCADE`);
      return { drop, add };
    };

    // 3. While A holds the cut-over's lock on the parent, can another session repoint a child at the shadow?
    await fresh();
    await a.query('CREATE TABLE p_sentry (id INT)');
    await a.query('LOCK TABLES p WRITE, p_sentry WRITE');
    await c.query('SET foreign_key_checks = 0');
    say('3. other session repoints c1 at p_new while A holds LOCK TABLES p WRITE', await attempt(c, repoint('c1', 'p_new')));
    await a.query('UNLOCK TABLES');

    // 4. A repoints the children itself, under LOCK TABLES that include them.
    await fresh();
    await a.query('CREATE TABLE p_sentry (id INT)');
    await a.query('SET foreign_key_checks = 0');
    const lock4 = await attempt(a, 'LOCK TABLES p WRITE, p_sentry WRITE, c1 WRITE, c2 WRITE, p_new WRITE');
    say('4. LOCK TABLES p, sentry, c1, c2, p_new WRITE', lock4);
    const r4a = await attempt(a, repoint('c1', 'p_new'));
    const r4b = await repointTwo(a, 'c2', 'p_new');
    say('4. under it, repoint c1 at p_new in one ALTER, c2 in two (drop, add)', { c1: r4a, c2: r4b });
    say('4. c2 references (read by A)', await referencedTable(a, 'c2').catch((e: Error) => e.message));
    // Is the lock still held after the ALTERs? A write from B to c1 should wait.
    say('4. B inserts into c1 (should wait on the lock, time out after 2 s)', await attempt(b, 'INSERT INTO c1 VALUES (999999999, 1)'));
    await a.query('UNLOCK TABLES');

    // 5. Children pointed at the shadow before the swap follow the swap to the original name.
    await fresh();
    await a.query('SET foreign_key_checks = 0');
    await repointTwo(a, 'c1', 'p_new');
    await repointTwo(a, 'c2', 'p_new');
    await a.query('SET foreign_key_checks = 1');
    await a.query('RENAME TABLE p TO p_old, p_new TO p');
    say('5. children pointed at p_new, then RENAME p TO p_old, p_new TO p: they reference', { c1: await referencedTable(a, 'c1'), c2: await referencedTable(a, 'c2') });

    // 6. The cost: each child's repoint, timed, on a child of `childRows` rows, under the lock.
    const timings: number[] = [];
    for (let i = 0; i < 3; i++) {
      await fresh();
      await a.query('CREATE TABLE p_sentry (id INT)');
      await a.query('SET foreign_key_checks = 0');
      await a.query('LOCK TABLES p WRITE, p_sentry WRITE, c1 WRITE, c2 WRITE, p_new WRITE');
      const t = performance.now();
      const steps = [await repointTwo(a, 'c1', 'p_new'), await repointTwo(a, 'c2', 'p_new')];
      if (steps.some((s) => !s.drop.ok || !s.add.ok)) throw new Error(`repoint failed: ${JSON.stringify(steps)}`);
      timings.push(+(performance.now() - t).toFixed(1));
      await a.query('UNLOCK TABLES');
    }
    say(`6. two children of ${childRows} rows each repointed under the lock, ms (3 tries)`, timings);

    // 6b. The same without the shadow in the lock set (the applier must write to it during the drain).
    await fresh();
    await a.query('CREATE TABLE p_sentry (id INT)');
    await a.query('SET foreign_key_checks = 0');
    await a.query('LOCK TABLES p WRITE, p_sentry WRITE, c1 WRITE, c2 WRITE');
    say('6b. applier session writes the shadow while A holds p, sentry, c1, c2', await attempt(b, 'UPDATE p_new SET v = v + 1 WHERE id = 1'));
    say('6b. A repoints c1 at p_new, which A has not locked', await repointTwo(a, 'c1', 'p_new'));
    say('6b. c1 references', await referencedTable(a, 'c1').catch((e: Error) => e.message));
    say('6b. meanwhile B inserts into c1 (should wait)', await attempt(b, 'INSERT INTO c1 VALUES (999999999, 1)'));
    say('6b. and another session creates a trigger on p_new', await attempt(c, "CREATE TRIGGER p_new_bi BEFORE INSERT ON p_new FOR EACH ROW SET NEW.v = NEW.v"));
    await a.query('UNLOCK TABLES');
    await a.query('SET foreign_key_checks = 1');

    // 7. Child side: the shadow of a child table gets a key of its own, with another name, checks off, metadata only.
    await fresh();
    await a.query('CREATE TABLE k (id INT PRIMARY KEY, pid INT, KEY (pid), CONSTRAINT fk_k FOREIGN KEY (pid) REFERENCES p (id) ON DELETE CASCADE)');
    await a.query('CREATE TABLE k_new LIKE k');
    say('7. CREATE TABLE LIKE copies foreign keys', (await referencedTable(a, 'k_new')).length > 0);
    await a.query('SET foreign_key_checks = 0');
    say('7. ADD CONSTRAINT with the same name as the original\'s key', await attempt(a, 'ALTER TABLE k_new ADD CONSTRAINT fk_k FOREIGN KEY (pid) REFERENCES p (id) ON DELETE CASCADE'));
    say('7. ADD CONSTRAINT with another name, INPLACE', await attempt(a, 'ALTER TABLE k_new ADD CONSTRAINT _fk_k FOREIGN KEY (pid) REFERENCES p (id) ON DELETE CASCADE, ALGORITHM=INPLACE, LOCK=NONE'));
    await a.query('SET foreign_key_checks = 1');

    // 8. INSERT IGNORE ... SELECT into a child whose parent is missing.
    await a.query('INSERT INTO k VALUES (1, 5)');
    await a.query('SET foreign_key_checks = 0');
    await a.query('INSERT INTO k VALUES (2, 123456)');
    await a.query('SET foreign_key_checks = 1');
    const ig = await attempt(a, 'INSERT IGNORE INTO k_new SELECT * FROM k');
    const [[n8]] = await a.query<mysql.RowDataPacket[]>('SELECT COUNT(*) AS n FROM k_new');
    say('8. INSERT IGNORE ... SELECT with an orphan among 2 rows', { ...ig, rowsInShadow: n8!.n });

    // 9. Triggers: created on the shadow by another session while A holds the cut-over's lock; same name as the original's.
    await fresh();
    await a.query('CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, what VARCHAR(20))');
    await a.query("CREATE TRIGGER p_ai AFTER INSERT ON p FOR EACH ROW INSERT INTO audit (what) VALUES (CONCAT('ins ', NEW.id))");
    await a.query('CREATE TABLE p_sentry (id INT)');
    await a.query('LOCK TABLES p WRITE, p_sentry WRITE');
    say('9. other session: CREATE TRIGGER with the original\'s name on p_new', await attempt(c, "CREATE TRIGGER p_ai AFTER INSERT ON p_new FOR EACH ROW INSERT INTO audit (what) VALUES (CONCAT('ins ', NEW.id))"));
    say('9. other session: CREATE TRIGGER with another name on p_new', await attempt(c, "CREATE TRIGGER p_ai_ss AFTER INSERT ON p_new FOR EACH ROW INSERT INTO audit (what) VALUES (CONCAT('ins ', NEW.id))"));
    await a.query('UNLOCK TABLES');
    await a.query('RENAME TABLE p TO p_old, p_new TO p');
    const [trg] = await a.query<mysql.RowDataPacket[]>('SELECT TRIGGER_NAME AS t, EVENT_OBJECT_TABLE AS tbl FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE() ORDER BY 1');
    say('9. after the swap, triggers', trg.map((r) => `${r.t} on ${r.tbl}`));
    // Renaming a trigger back to its own name, with no moment without it and none with both:
    await a.query('LOCK TABLES p WRITE, p_old WRITE, audit WRITE');
    const d = await attempt(a, 'DROP TRIGGER p_ai');
    const cr = await attempt(a, "CREATE TRIGGER p_ai AFTER INSERT ON p FOR EACH ROW INSERT INTO audit (what) VALUES (CONCAT('ins ', NEW.id))");
    const d2 = await attempt(a, 'DROP TRIGGER p_ai_ss');
    say('9b. under LOCK TABLES p, p_old, audit WRITE: drop the backup\'s trigger, create it on p, drop the suffixed one', { drop: d, create: cr, dropSuffixed: d2 });
    say('9b. B inserts into p meanwhile (should wait)', await attempt(b, 'INSERT INTO p VALUES (5000, 1)'));
    await a.query('UNLOCK TABLES');
    const [trg2] = await a.query<mysql.RowDataPacket[]>('SELECT TRIGGER_NAME AS t, EVENT_OBJECT_TABLE AS tbl FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE() ORDER BY 1');
    say('9b. triggers then', trg2.map((r) => `${r.t} on ${r.tbl}`));

    // 10. A failed attempt: A repoints the children back at p, still under its lock, although p_new is not locked.
    await fresh();
    await a.query('CREATE TABLE p_sentry (id INT)');
    await a.query('SET foreign_key_checks = 0');
    await a.query('LOCK TABLES p WRITE, p_sentry WRITE, c1 WRITE, c2 WRITE');
    await repointTwo(a, 'c1', 'p_new');
    await repointTwo(a, 'c2', 'p_new');
    // What B does after the repoint on the shadow: raise its counter, create a trigger.
    say('10. after the repoint, B alters p_new (AUTO_INCREMENT)', await attempt(b, 'ALTER TABLE p_new AUTO_INCREMENT = 5000'));
    say('10. after the repoint, B creates a trigger on p_new', await attempt(b, 'CREATE TRIGGER p_new_bu BEFORE UPDATE ON p_new FOR EACH ROW SET NEW.v = NEW.v'));
    say('10. after the repoint, B writes p_new', await attempt(b, 'UPDATE p_new SET v = v + 1 WHERE id = 2'));
    const back = [await repointTwo(a, 'c1', 'p'), await repointTwo(a, 'c2', 'p')];
    say('10. A repoints c1, c2 back at p under the same lock (drops a key that references the unlocked p_new)', back);
    say('10. c1, c2 then reference', { c1: await referencedTable(a, 'c1').catch((e: Error) => e.message), c2: await referencedTable(a, 'c2').catch((e: Error) => e.message) });
    await a.query('UNLOCK TABLES');
    // 10b. The same while a reader's open transaction holds p_new: the drop waits for it.
    await fresh();
    await a.query('CREATE TABLE p_sentry (id INT)');
    await a.query('LOCK TABLES p WRITE, p_sentry WRITE, c1 WRITE, c2 WRITE');
    await repointTwo(a, 'c1', 'p_new');
    await c.query('BEGIN');
    await c.query('SELECT COUNT(*) FROM p_new');
    await a.query('SET SESSION lock_wait_timeout = 1');
    say('10b. with a reader holding p_new, A drops c1\'s key that references it', await attempt(a, 'ALTER TABLE c1 DROP FOREIGN KEY fk_c1'));
    await c.query('COMMIT');
    say('10b. reader gone: A drops it again', await attempt(a, 'ALTER TABLE c1 DROP FOREIGN KEY fk_c1'));
    await a.query('SET SESSION lock_wait_timeout = 2');
    await a.query('UNLOCK TABLES');
    // 10c. Another session, LOCK TABLES p WRITE, p_new WRITE, c1 WRITE: repoint back (the fallback after A died).
    await fresh();
    await a.query('SET foreign_key_checks = 0');
    await repointTwo(a, 'c1', 'p_new');
    await c.query('SET foreign_key_checks = 0');
    await c.query('LOCK TABLES p WRITE, p_new WRITE, c1 WRITE');
    say('10c. a session holding p, p_new, c1 WRITE repoints c1 back at p', await repointTwo(c, 'c1', 'p'));
    await c.query('UNLOCK TABLES');
    await c.query('SET foreign_key_checks = 1');
    say('10c. c1 then references', await referencedTable(a, 'c1'));
    await a.query('SET foreign_key_checks = 1');

    for (const conn of [a, b, c]) await conn.end();
    console.log(JSON.stringify(results));
  } finally {
    await servers.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
