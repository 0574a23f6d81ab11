// An abort exits 130 only when nothing of the job is left. When a drop cannot get its
// lock (here a session reads the shadow in an open transaction, past every attempt's
// lock timeout) the job still ends, drops everything else, exits 5 and names exactly
// what is left and that `shadowshift cleanup --execute` removes it. Before, the DROP
// waited without a timeout (MySQL's default lock_wait_timeout is a year), or failed and
// the job exited 130 as if all was clean.

import { describe, it, expect } from 'vitest';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMysqlDatabase, createPgDatabase, testedDialects } from '../support/databases.js';
import { openDb, quoteIdent, type Db, mysqlSeq } from '../support/db.js';
import { startCli } from '../support/cli.js';
import { waitUntil } from '../support/alter.js';

const cases = [
  {
    dialect: 'mysql' as const,
    createDb: () => createMysqlDatabase('ableft'),
    series: `SELECT seq, seq FROM ${mysqlSeq(1, 5000)}`,
    tables: (db: Db) => db.query<Record<string, string>>('SHOW TABLES').then((r) => r.map((x) => String(Object.values(x)[0])).sort()),
    /** Holds the shadow's metadata lock until the transaction ends. */
    hold: async (db: Db, shadow: string) => {
      await db.exec('START TRANSACTION');
      await db.query(`SELECT * FROM ${quoteIdent('mysql', shadow)} LIMIT 1`);
    },
    streamState: async () => [] as string[],
  },
  {
    dialect: 'postgres' as const,
    createDb: () => createPgDatabase('ableft'),
    series: 'SELECT g, g FROM generate_series(1, 5000) g',
    tables: (db: Db) => db.query<{ n: string }>("SELECT tablename AS n FROM pg_tables WHERE schemaname = 'public' ORDER BY 1").then((r) => r.map((x) => x.n)),
    hold: async (db: Db, shadow: string) => {
      await db.exec('BEGIN');
      await db.exec(`LOCK TABLE ${quoteIdent('postgres', shadow)} IN ACCESS SHARE MODE`);
    },
    streamState: async (db: Db) =>
      (
        await db.query<{ n: string }>(
          "SELECT slot_name AS n FROM pg_replication_slots WHERE database = current_database() UNION ALL SELECT pubname FROM pg_publication",
        )
      ).map((r) => r.n),
  },
];

describe.each(testedDialects(cases))('$dialect: an abort that cannot drop the shadow', ({ dialect, createDb, series, tables, hold, streamState }) => {
  it('exits 5 naming exactly what is left; cleanup --execute removes it', async () => {
    const { url } = await createDb();
    const db = await openDb(url);
    const holder = await openDb(url);
    const dir = mkdtempSync(join(tmpdir(), 'ss-ableft-'));
    try {
      await db.exec(`CREATE TABLE ${quoteIdent(dialect, 't')} (id INT PRIMARY KEY, v INT NOT NULL)`);
      await db.exec(`INSERT INTO ${quoteIdent(dialect, 't')} ${series}`);
      const socket = join(dir, 'sock');
      const flag = join(dir, 'postpone');
      writeFileSync(flag, '');
      const job = startCli(['alter', '--url', url, '--table', 't', '--alter', 'ADD COLUMN w INT', '--execute', '--control-socket', socket, '--postpone-cutover-flag-file', flag]);
      const ctl = async (...args: string[]) => (await startCli(['ctl', '--control-socket', socket, ...args]).done).stdout;
      await waitUntil(() => existsSync(socket), 'the control socket', 30_000);
      await waitUntil(async () => JSON.parse(await ctl('status', '--json')).state === 'postponed', 'the job to postpone the cut-over', 60_000, 100);
      const shadow = String(JSON.parse(await ctl('status', '--json')).shadowTable);
      await hold(holder, shadow);

      await ctl('abort');
      // The holder stays until the job has ended: the job must not wait for it.
      const run = await Promise.race([job.done, new Promise<null>((r) => setTimeout(() => r(null), 90_000))]);
      expect(run, `the job did not end while the shadow was held: ${job.stderrSoFar().slice(-2000)}`).not.toBeNull();
      expect(run!.code, run!.stderr.slice(-3000)).toBe(5);
      const message = run!.stderr.split('\n').find((l) => l.startsWith('shadowshift: '))!;
      expect(message).toMatch(/job aborted: requested over the control socket/);
      expect(message).toMatch(new RegExp(`could not remove: shadow table \\S*${shadow} \\(`));
      expect(message).toMatch(/`shadowshift cleanup --execute`/);
      // Everything else is gone, and the message names nothing else.
      expect(message).not.toMatch(/changelog|slot|publication|sentry|old table/);
      expect(await tables(db)).toEqual(['t', shadow].sort());
      expect(await streamState(db)).toEqual([]);

      await holder.exec(dialect === 'mysql' ? 'COMMIT' : 'ROLLBACK');
      const listed = await startCli(['cleanup', '--url', url]).done;
      expect(listed.stdout).toMatch(new RegExp(`shadow\\s+${shadow}\\s+\\(would be removed with --execute\\)`));
      const cleaned = await startCli(['cleanup', '--url', url, '--execute']).done;
      expect(cleaned.code, cleaned.stderr).toBe(0);
      expect(await tables(db)).toEqual(['t']);
      const cols = await db.query(dialect === 'mysql' ? "SHOW COLUMNS FROM t LIKE 'w'" : "SELECT 1 FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'w'");
      expect(cols).toHaveLength(0);
    } finally {
      await holder.close();
      await db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
