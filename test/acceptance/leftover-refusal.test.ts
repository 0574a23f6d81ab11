// A job on a table where an earlier job left something is refused at preflight (exit 3,
// nothing changed), naming each artefact and the fix: `shadowshift cleanup --execute`,
// or --resume for state a resumable job kept on purpose. Before, the job started and
// failed half-way: MySQL on the fixed shadow name (`t_ssnew` already exists), PostgreSQL
// on an index name the left shadow holds (`relation "t_code_key" already exists`, the
// ALTER of issue 11).

import { describe, it, expect } from 'vitest';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMysqlDatabase, createPgDatabase, testedDialects } from '../support/databases.js';
import { openDb, quoteIdent, type Db, mysqlSeq } from '../support/db.js';
import { startCli, type CliRun } from '../support/cli.js';
import { waitUntil } from '../support/alter.js';

const cases = [
  {
    dialect: 'mysql' as const,
    createDb: () => createMysqlDatabase('leftref'),
    create: 'CREATE TABLE t (id INT PRIMARY KEY, code VARCHAR(20) NOT NULL, v INT NOT NULL)',
    series: `SELECT seq, CONCAT('c', seq), seq FROM ${mysqlSeq(1, 5000)}`,
    alter: 'ADD UNIQUE KEY t_code_key (code)',
    /** Every object of the database: what "nothing changed" compares. */
    state: async (db: Db) => (await db.query<Record<string, string>>('SHOW TABLES')).map((r) => String(Object.values(r)[0])).sort(),
    shadowLabels: (shadow: string) => [`shadow table ${shadow}`, 'changelog table t_sslog'],
  },
  {
    dialect: 'postgres' as const,
    createDb: () => createPgDatabase('leftref'),
    create: 'CREATE TABLE t (id int PRIMARY KEY, code text NOT NULL, v int NOT NULL)',
    series: "SELECT g, 'c' || g, g FROM generate_series(1, 5000) g",
    alter: 'ADD CONSTRAINT t_code_key UNIQUE (code)',
    state: async (db: Db) =>
      (
        await db.query<{ n: string }>(
          `SELECT relname AS n FROM pg_class WHERE relnamespace = 'public'::regnamespace
           UNION ALL SELECT slot_name FROM pg_replication_slots WHERE database = current_database()
           UNION ALL SELECT pubname FROM pg_publication ORDER BY 1`,
        )
      ).map((r) => r.n),
    shadowLabels: (shadow: string) => [`shadow table ${shadow}`, 'replication slot _ss_', 'publication _ss_'],
  },
];

describe.each(testedDialects(cases))('$dialect: a job after an earlier job left something on the table', ({ dialect, createDb, create, series, alter, state, shadowLabels }) => {
  it('is refused at preflight with exit 3, naming each leftover and the fix; runs once it is cleaned up or resumed', async () => {
    const { url } = await createDb();
    const db = await openDb(url);
    const dir = mkdtempSync(join(tmpdir(), 'ss-leftref-'));
    const alterArgs = ['alter', '--url', url, '--table', 't', '--alter', alter, '--execute'];
    try {
      await db.exec(create);
      await db.exec(`INSERT INTO ${quoteIdent(dialect, 't')} ${series}`);
      const flag = join(dir, 'postpone');

      /** Runs a job until it postpones the cut-over (the copy and the index build done), then stops it with `signal`. */
      const leaveBehind = async (signal: NodeJS.Signals, extra: string[]): Promise<{ shadow: string; run: CliRun }> => {
        writeFileSync(flag, '');
        const socket = join(dir, `${signal}.sock`);
        const job = startCli([...alterArgs, '--control-socket', socket, '--postpone-cutover-flag-file', flag, ...extra]);
        const ctl = async (...args: string[]) => (await startCli(['ctl', '--control-socket', socket, ...args]).done).stdout;
        await waitUntil(() => existsSync(socket), 'the control socket', 30_000);
        await waitUntil(async () => JSON.parse(await ctl('status', '--json')).state === 'postponed', 'the job to postpone the cut-over', 60_000, 100);
        const shadow = String(JSON.parse(await ctl('status', '--json')).shadowTable);
        job.child.kill(signal);
        return { shadow, run: await job.done };
      };
      /** Until the server has noticed the killed job's connections, its artefacts count as in use. */
      const settled = () =>
        waitUntil(async () => !/in use by a running job/.test((await startCli(['cleanup', '--url', url]).done).stdout), 'the leftovers to be free', 30_000, 200);
      const refusal = (r: CliRun) => r.stderr.split('\n').find((l) => l.startsWith('  - no-leftovers: ')) ?? r.stderr.slice(-2000);

      // A job killed without a chance to clean up: every job checkpoints, so what a crash
      // leaves is a state to resume, and the refusal offers --resume as well as cleanup.
      const killed = await leaveBehind('SIGKILL', []);
      await settled();
      const crashed = await startCli(alterArgs).done;
      expect(crashed.code, crashed.stderr.slice(-2000)).toBe(3);
      const crashedMessage = refusal(crashed);
      expect(crashedMessage).toMatch(/an earlier job on \S+\.t kept its state for a resume: /);
      for (const label of shadowLabels(killed.shadow)) expect(crashedMessage).toContain(label);
      expect(crashedMessage).toMatch(/checkpoint of \S+\.t/);
      expect(crashedMessage).toContain('use --resume (with that job\'s --alter), or run `shadowshift cleanup --execute`');
      // Without its checkpoint (left by an earlier version, or removed by hand) it is a plain leftover.
      await db.exec(`DROP TABLE ${quoteIdent(dialect, dialect === 'mysql' ? '_shadowshift_checkpoints' : '_ss_checkpoints')}`);
      const before = await state(db);
      const refused = await startCli(alterArgs).done;
      expect(refused.code, refused.stderr.slice(-2000)).toBe(3);
      const message = refusal(refused);
      expect(message).toMatch(/an earlier job on \S+\.t left /);
      for (const label of shadowLabels(killed.shadow)) expect(message).toContain(label);
      expect(message).toMatch(/Run `shadowshift cleanup --execute` to remove (it|them), then run again/);
      expect(message).not.toMatch(/--resume/);
      expect(refused.stdout).toMatch(/\[FAIL\] no-leftovers/);
      expect(await state(db)).toEqual(before);
      // Without --execute the plan says the same, and exits 3 too.
      expect((await startCli(alterArgs.filter((a) => a !== '--execute')).done).code).toBe(3);

      expect((await startCli(['cleanup', '--url', url, '--execute']).done).code).toBe(0);

      // A resumable job stopped by SIGTERM keeps its state on purpose: --resume is offered, and works.
      const kept = await leaveBehind('SIGTERM', ['--resumable']);
      expect(kept.run.code, kept.run.stderr.slice(-2000)).toBe(130);
      await settled();
      const notResumed = await startCli(alterArgs).done;
      expect(notResumed.code, notResumed.stderr.slice(-2000)).toBe(3);
      const keptMessage = refusal(notResumed);
      expect(keptMessage).toMatch(/an earlier job on \S+\.t kept its state for a resume: /);
      expect(keptMessage).toContain(`shadow table ${kept.shadow}`);
      expect(keptMessage).toMatch(/checkpoint of \S+\.t/);
      expect(keptMessage).toContain('use --resume (with that job\'s --alter), or run `shadowshift cleanup --execute`');
      rmSync(flag, { force: true });
      const resumed = await startCli([...alterArgs, '--resume']).done;
      expect(resumed.code, resumed.stderr.slice(-3000)).toBe(0);
      // Only the old table, kept on purpose after the cut-over.
      const after = (await startCli(['cleanup', '--url', url]).done).stdout.trim().split('\n');
      expect(after.filter((l) => !l.startsWith('backup ')), after.join('\n')).toEqual([]);
    } finally {
      await db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
