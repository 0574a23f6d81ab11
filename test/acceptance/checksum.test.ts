// Checksum before cut-over, end to end on both dialects: a row corrupted in the
// shadow behind the engine's back is found and repaired before the cut-over; a
// corruption that keeps coming back fails the job before the cut-over, naming
// the key range, with the original untouched. Every repair is reported
// (invariant 10): a warning naming the range and both row counts, the
// `repairedChunks` of the status, the result, the CLI's --json output, its JSON
// status lines and the Prometheus metric, summed over every checksum run. The
// ranges are open at both ends, so shadow rows beyond the original's key bounds
// are compared too.

import { describe, it, expect } from 'vitest';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMysqlDatabase, createPgDatabase, testedDialects } from '../support/databases.js';
import { openDb, quoteIdent, type Db, mysqlSeq } from '../support/db.js';
import { capturingLogger, newJob, waitUntil } from '../support/alter.js';
import { startCli } from '../support/cli.js';
import { JobMetrics } from '../../src/control/metrics.js';
import { sendControlCommand } from '../../src/control/control-client.js';
import type { AlterJob } from '../../src/engine/job.js';
import type { KeyRange } from '../../src/dialects/dialect.js';
import { endVacuumGuard } from '../support/pg-vacuum-guard.js';

const cases = [
  { dialect: 'mysql' as const, createDb: () => createMysqlDatabase('sum'), series: `SELECT seq, seq FROM ${mysqlSeq(1, 5000)}` },
  { dialect: 'postgres' as const, createDb: () => createPgDatabase('sum'), series: 'SELECT g, g FROM generate_series(1, 5000) g' },
];

async function shadowName(db: Db, dialect: 'mysql' | 'postgres', table: string): Promise<string> {
  const rows = await db.query<Record<string, string>>(
    dialect === 'mysql' ? 'SHOW TABLES' : "SELECT tablename FROM pg_tables WHERE schemaname = 'public'",
  );
  const name = rows.map((r) => String(Object.values(r)[0])).find((t) => t.includes(table) && /new/.test(t) && t !== table);
  if (!name) throw new Error('no shadow table found');
  return name;
}

/** prepare() + execute(); the job is returned too, for its status after the end. */
async function run(job: AlterJob) {
  try {
    return await job.execute(await job.prepare());
  } finally {
    await job.close();
  }
}

const REPAIR = /^checksum: repaired key range /;
const warnings = (lines: Array<Record<string, unknown>>) => lines.filter((l) => l.level === 40 && REPAIR.test(String(l.msg)));

describe.each(testedDialects(cases))('$dialect: checksum before cut-over', ({ dialect, createDb, series }) => {
  it('finds a row corrupted and one deleted in the shadow during the copy, repairs them and reports the repair', async () => {
    const { url } = await createDb();
    const db = await openDb(url);
    const q = (n: string) => quoteIdent(dialect, n);
    try {
      await db.exec(`CREATE TABLE ${q('t')} (id INT PRIMARY KEY, v INT NOT NULL)`);
      await db.exec(`INSERT INTO ${q('t')} ${series}`);
      let corrupted = false;
      const beforeChunkCommit = async (range: KeyRange) => {
        // Once the first chunks are in, damage two rows that are already copied.
        if (corrupted || range.after === null || Number(range.after[0]) < 1000) return;
        corrupted = true;
        const shadow = q(await shadowName(db, dialect, 't'));
        await db.exec(`UPDATE ${shadow} SET v = -999 WHERE id = 7`);
        await db.exec(`DELETE FROM ${shadow} WHERE id = 8`);
      };
      const { log, lines } = capturingLogger();
      const job = newJob(url, 't', 'ADD COLUMN w INT', { chunkSize: 500, log, testHooks: { beforeChunkCommit } });
      const metrics = new JobMetrics(job);
      const result = await run(job);
      expect(corrupted).toBe(true);
      const rows = await db.query<Record<string, string>>(`SELECT id, v FROM ${q('t')} WHERE id IN (7, 8) OR v <> id ORDER BY id`);
      expect(rows.map((r) => [String(r.id), String(r.v)])).toEqual([['7', '7'], ['8', '8']]);

      // Checksum chunks are 4 copy chunks: 5000 rows make 3, rows 7 and 8 are in the first.
      // The whole tables are compared first, and cut into those 3 only because they differ.
      expect(result.repairedChunks).toBe(1);
      expect(result.checksum).toEqual({ ran: true, runs: 1, chunksCompared: 4 });
      expect(job.status().repairedChunks).toBe(1);
      expect((await metrics.registry.getSingleMetric('shadowshift_checksum_repaired_chunks')!.get()).values.map((v) => v.value)).toEqual([1]);
      const [warning, ...more] = warnings(lines);
      expect(more).toEqual([]);
      expect(warning).toMatchObject({ range: 'key range -inf < key <= (2000)', originalRows: 2000, shadowRows: 1999, round: 1 });
      expect(warning!.msg).toBe(
        'checksum: repaired key range -inf < key <= (2000) (original 2000 rows, shadow 1999 rows) by copying it again. ' +
          'A repair means the change stream or the copy missed a change (unless something else writes to the shadow table): a shadowshift bug, please report it with this log',
      );
    } finally {
      await db.close();
    }
  });

  it('fails before the cut-over, naming the key range, when the difference keeps coming back', async () => {
    const { url } = await createDb();
    const db = await openDb(url);
    const q = (n: string) => quoteIdent(dialect, n);
    try {
      await db.exec(`CREATE TABLE ${q('t')} (id INT PRIMARY KEY, v INT NOT NULL)`);
      await db.exec(`INSERT INTO ${q('t')} ${series}`);
      if (dialect === 'postgres') {
        await db.exec(`CREATE FUNCTION sabotage() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN IF NEW.id = 4242 THEN NEW.v := -999; END IF; RETURN NEW; END$$`);
      }
      // A trigger on the shadow corrupts row 4242 every time anything writes it:
      // the copy, the stream and every recopy. Created from the first chunk's
      // hook without waiting: it needs the lock the open chunk holds, and gets it a
      // chunk or two later; small chunks leave row 4242 forty chunks away.
      let created: Promise<unknown> | null = null;
      const beforeChunkCommit = async () => {
        if (created) return;
        const shadow = q(await shadowName(db, dialect, 't'));
        if (dialect === 'mysql') {
          created = db.exec(`CREATE TRIGGER ${q('sabotage')} BEFORE INSERT ON ${shadow} FOR EACH ROW SET NEW.v = IF(NEW.id = 4242, -999, NEW.v)`);
        } else {
          await endVacuumGuard(db);
          created = db.exec(`CREATE TRIGGER sabotage BEFORE INSERT OR UPDATE ON ${shadow} FOR EACH ROW EXECUTE FUNCTION sabotage()`);
        }
        created.catch(() => undefined);
      };
      const { log, lines } = capturingLogger();
      const job = newJob(url, 't', 'ADD COLUMN w INT', { chunkSize: 100, log, testHooks: { beforeChunkCommit } });
      const err = await run(job).then(
        () => null,
        (e: unknown) => e as Error,
      );
      await created;
      // Three rounds, each recopying the one range and each reported.
      expect(job.status()).toMatchObject({ state: 'failed', repairedChunks: 3 });
      expect(warnings(lines).map((l) => [l.round, l.originalRows, l.shadowRows])).toEqual([[1, 1000, 1000], [2, 1000, 1000], [3, 1000, 1000]]);
      expect(new Set(warnings(lines).map((l) => l.range)).size).toBe(1);
      expect(err?.message).toMatch(/checksum: the shadow still differs from the original after 3 repairs in key range \(\d+\) < key <= (\(\d+\)|\+inf)/);
      const range = /key range \((\d+)\) < key <= (?:\((\d+)\)|\+inf)/.exec(err!.message)!;
      expect(Number(range[1])).toBeLessThan(4242);
      expect(range[2] === undefined ? Infinity : Number(range[2])).toBeGreaterThanOrEqual(4242);
      expect(err?.message).toMatch(/cut-over did not happen/);
      const cols = await db.query<Record<string, unknown>>(
        dialect === 'mysql' ? "SHOW COLUMNS FROM t LIKE 'w'" : "SELECT attname FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'w'",
      );
      expect(cols).toEqual([]);
      const [sum] = await db.query<Record<string, string>>(`SELECT COUNT(*) AS n, SUM(v) AS s FROM ${q('t')}`);
      expect([String(sum!.n), String(sum!.s)]).toEqual(['5000', String((5000 * 5001) / 2)]);
    } finally {
      await db.close();
    }
  });

  it('CLI: repairs made by the periodic checksum while postponed add up in status, metric, JSON status line and --json result', async () => {
    const { url } = await createDb();
    const db = await openDb(url);
    const q = (n: string) => quoteIdent(dialect, n);
    const dir = mkdtempSync(join(tmpdir(), 'ss-sum-'));
    const socket = join(dir, 'job.sock');
    const flag = join(dir, 'postpone');
    writeFileSync(flag, '');
    try {
      await db.exec(`CREATE TABLE ${q('t')} (id INT PRIMARY KEY, v INT NOT NULL)`);
      await db.exec(`INSERT INTO ${q('t')} ${series}`);
      const cli = startCli(
        ['alter', '--table', 't', '--alter', 'ADD COLUMN w INT', '--execute', '--json', '--chunk-size', '500', '--checksum-interval', '0.5',
          '--postpone-cutover-flag-file', flag, '--control-socket', socket, '--metrics', '127.0.0.1:0', '--status-interval', '60'],
        { SHADOWSHIFT_URL: url },
      );
      let exited: string | null = null;
      void cli.done.then((r) => (exited = `exited early with ${r.code}: ${r.stderr.slice(-3000)}`));
      const status = async () => {
        if (exited) throw new Error(exited);
        const reply = existsSync(socket) ? await sendControlCommand(socket, { command: 'status' }).catch(() => null) : null;
        return reply?.ok ? reply.status : null;
      };
      await waitUntil(async () => (await status())?.state === 'postponed', 'the postponed cut-over', 60_000, 100);
      // The checksum after the copy found nothing.
      expect((await status())!.repairedChunks).toBe(0);
      const shadow = q((await status())!.shadowTable!);
      // Two rows damaged in turn, in different chunks: each is repaired by a later periodic
      // run, the second possibly by the first's closing whole-table pass.
      await db.exec(`UPDATE ${shadow} SET v = -1 WHERE id = 42`);
      await waitUntil(async () => (await status())!.repairedChunks >= 1, 'the first repair', 60_000, 100);
      await db.exec(`UPDATE ${shadow} SET v = -1 WHERE id = 4500`);
      await waitUntil(async () => (await status())!.repairedChunks >= 2, 'the second repair', 60_000, 100);
      const port = Number(/"port":(\d+)[^\n]*metrics served/.exec(cli.stderrSoFar())?.[1]);
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      expect(text).toMatch(/^shadowshift_checksum_repaired_chunks 2$/m);
      rmSync(flag);
      const r = await cli.done;
      expect(r.code, r.stderr.slice(-3000)).toBe(0);

      const { result } = JSON.parse(r.stdout);
      expect(result.repairedChunks).toBe(2);
      expect(result.checksum.ran).toBe(true);
      expect(result.checksum.runs).toBeGreaterThanOrEqual(2);
      const logLines = r.stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
      // Each run compares the whole tables as one chunk, and cuts the 3 ranges when they
      // differ: in the run of each repair (or one run for both, when the second damage
      // came before that run's closing whole-table pass).
      const runChunks = logLines.filter((l) => /^checksum: original and shadow match/.test(String(l.msg))).map((l) => Number(l.chunks));
      expect(runChunks).toHaveLength(result.checksum.runs);
      expect([[4], [4, 4]]).toContainEqual(runChunks.filter((n) => n !== 1));
      expect(result.checksum.chunksCompared).toBe(runChunks.reduce((a, n) => a + n, 0));
      expect(warnings(logLines).map((l) => l.range)).toEqual(['key range -inf < key <= (2000)', 'key range (4000) < key <= +inf']);
      const statusLines = logLines.filter((l) => l.status);
      expect((statusLines.at(-1)!.status as { state: string; repairedChunks: number })).toMatchObject({ state: 'done', repairedChunks: 2 });
      const rows = await db.query<Record<string, string>>(`SELECT COUNT(*) AS n FROM ${q('t')} WHERE v <> id`);
      expect(String(rows[0]!.n)).toBe('0');
    } finally {
      await db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("compares beyond the original's key bounds: rows the shadow has above its largest key or below its smallest are repaired before the cut-over", async () => {
    const { url } = await createDb();
    const db = await openDb(url);
    const q = (n: string) => quoteIdent(dialect, n);
    const dir = mkdtempSync(join(tmpdir(), 'ss-sum-'));
    const flag = join(dir, 'postpone');
    writeFileSync(flag, '');
    let running: Promise<unknown> | null = null;
    try {
      await db.exec(`CREATE TABLE ${q('t')} (id INT PRIMARY KEY, v INT NOT NULL)`);
      await db.exec(`INSERT INTO ${q('t')} ${series}`);
      const { log, lines } = capturingLogger();
      const job = newJob(url, 't', 'ADD COLUMN w INT', { chunkSize: 500, log, postponeCutoverFlagFile: flag, checksumIntervalSeconds: 0.2 });
      const done = run(job);
      running = done.catch(() => undefined);
      // Every checksum run ends with this line, whether it repaired anything or not.
      const runsEnded = () => lines.filter((l) => /^checksum: original and shadow match/.test(String(l.msg))).length;
      // The run under way when the shadow is changed may have taken its snapshot before: wait for the one after it.
      const twoMoreRuns = async (what: string) => {
        const n = runsEnded();
        await waitUntil(() => runsEnded() >= n + 2, what, 60_000);
      };
      await waitUntil(() => job.status().state === 'postponed', 'the postponed cut-over', 60_000);
      expect(job.status().repairedChunks).toBe(0);
      const shadow = q(job.status().shadowTable!);

      // Rows the original never had, above its largest key and below its smallest.
      await db.exec(`INSERT INTO ${shadow} (id, v) VALUES (9000, 9000), (-5, -5)`);
      await twoMoreRuns('two checksum runs after the stray rows');
      // The original deletes its largest row and the shadow keeps it, as if the
      // stream had lost the delete: the row is then above the original's new
      // largest key, where the old last range (ending at that key) never looked.
      await db.exec(`DELETE FROM ${q('t')} WHERE id = 5000`);
      await waitUntil(async () => (await db.query(`SELECT id FROM ${shadow} WHERE id = 5000`)).length === 0, 'the stream applying the delete');
      await db.exec(`INSERT INTO ${shadow} (id, v) VALUES (5000, 5000)`);
      await twoMoreRuns('two checksum runs after the lost delete');

      rmSync(flag);
      const result = await done;
      // The table that went live is the original: rows 1 to 4999, nothing else.
      const extra = await db.query<Record<string, string>>(`SELECT id, v FROM ${q('t')} WHERE id < 1 OR id > 4999 OR v <> id ORDER BY id`);
      expect(extra.map((r) => [String(r.id), String(r.v)])).toEqual([]);
      const [sum] = await db.query<Record<string, string>>(`SELECT COUNT(*) AS n, SUM(v) AS s FROM ${q('t')}`);
      expect([String(sum!.n), String(sum!.s)]).toEqual(['4999', String((4999 * 5000) / 2)]);
      // Each repair was reported, naming the open range it was found in.
      expect(warnings(lines).map((l) => [l.range, l.originalRows, l.shadowRows])).toEqual([
        ['key range -inf < key <= (2000)', 2000, 2001],
        ['key range (4000) < key <= +inf', 1000, 1001],
        ['key range (4000) < key <= +inf', 999, 1000],
      ]);
      expect(result.repairedChunks).toBe(3);
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await running;
      await db.close();
    }
  });
});
