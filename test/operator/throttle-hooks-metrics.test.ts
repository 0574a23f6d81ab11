// Operator controls against real servers, on both dialects: every throttle
// signal really pauses the copy while changes keep being applied; critical load
// aborts with the original untouched; /metrics mid-copy; hooks fire once each,
// and a failing on-before-cutover holds the cut-over.

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, writeFileSync, rmSync, chmodSync, readFileSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMysqlDatabase, createPgDatabase } from '../support/databases.js';
import { openDb, type Db, mysqlSeq } from '../support/db.js';
import { newJob, waitUntil, type TestAlterOptions } from '../support/alter.js';
import { HookRunner, HOOK_EVENTS } from '../../src/control/hooks.js';
import { JobMetrics, serveMetrics } from '../../src/control/metrics.js';
import { executeControl } from '../../src/control/control-server.js';
import { silentLogger } from '../../src/util/logger.js';
import type { AlterJob } from '../../src/engine/job.js';

const ROWS = 20_000;

/**
 * For the tests that watch changes being applied while the copy pauses. On PostgreSQL
 * that is the copy under row locks: at the stream's snapshot nothing is applied until
 * the copy ends (test/postgres/snapshot-copy.test.ts).
 */
const APPLYING_COPY: TestAlterOptions = { copySnapshotMaxSeconds: 0 };

const cases = [
  { dialect: 'mysql' as const, createDb: () => createMysqlDatabase('ops'), loadName: 'Threads_connected' },
  { dialect: 'postgres' as const, createDb: () => createPgDatabase('ops'), loadName: 'total_backends' },
];

describe.each(cases)('$dialect operator controls', ({ dialect, createDb, loadName }) => {
  let url: string;
  let db: Db;
  let dir: string;
  let n = 0;
  const q = (name: string) => (dialect === 'mysql' ? `\`${name}\`` : `"${name}"`);

  beforeAll(async () => {
    url = (await createDb()).url;
    db = await openDb(url);
    dir = mkdtempSync(join(tmpdir(), 'ss-ops-'));
    await db.exec('CREATE TABLE throttle_ctl (id INT PRIMARY KEY)');
  });
  afterAll(async () => {
    await db?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function freshTable(): Promise<string> {
    const name = `t${++n}`;
    await db.exec(`CREATE TABLE ${q(name)} (id INT PRIMARY KEY, v INT NOT NULL)`);
    await db.exec(
      dialect === 'mysql'
        ? `INSERT INTO ${q(name)} SELECT seq, seq FROM ${mysqlSeq(1, ROWS)}`
        : `INSERT INTO ${q(name)} SELECT g, g FROM generate_series(1, ${ROWS}) g`,
    );
    return name;
  }

  /** The job ends done without repairs, and the 20 rows the test negated meanwhile are negated in the new table. */
  async function finishedWithTwentyNegated(job: AlterJob, running: Promise<unknown>, table: string): Promise<void> {
    await running;
    expect(job.status().state).toBe('done');
    expect(job.status().repairedChunks).toBe(0);
    const [row] = await db.query<{ n: string }>(`SELECT COUNT(*) AS n FROM ${q(table)} WHERE v < 0`);
    expect(String(row!.n)).toBe('20');
  }

  /**
   * Starts a job that is throttled from the start, proves the copy stays flat
   * while changes are applied, releases the throttle and waits for the end.
   */
  async function provePause(
    options: TestAlterOptions,
    release: (job: AlterJob) => Promise<void>,
    expectReason: RegExp,
    /** Keeps the signal's condition true once engaged; returns what ends it. */
    hold?: (job: AlterJob) => Promise<() => Promise<void>>,
  ): Promise<void> {
    const table = await freshTable();
    const job = newJob(url, table, 'ADD COLUMN w INT', { ...APPLYING_COPY, chunkSize: 500, ...options });
    let unhold: (() => Promise<void>) | null = null;
    try {
      const report = await job.prepare();
      const running = job.execute(report);
      running.catch(() => undefined);
      await waitUntil(() => job.status().throttled !== null || job.status().state === 'failed', 'the throttle to engage', 30_000);
      expect(job.status().error).toBeNull();
      expect(job.status().throttled).toMatch(expectReason);
      if (hold) {
        unhold = await hold(job);
        await job.refreshThrottle();
        await new Promise((r) => setTimeout(r, 300)); // a chunk started before the hold ends
        expect(job.status().throttled).toMatch(expectReason);
      }
      const copiedAtStart = job.status().rowsCopied;
      // Changes keep flowing to the shadow while the copy is paused.
      for (let i = 1; i <= 20; i++) await db.exec(`UPDATE ${q(table)} SET v = -v WHERE id = ${i * 37}`);
      await waitUntil(() => job.status().eventsApplied >= 20, 'the stream to apply changes while throttled', 30_000);
      await new Promise((r) => setTimeout(r, 1000));
      expect(job.status().rowsCopied).toBe(copiedAtStart);
      expect(job.status().state).toBe('copying');
      await unhold?.();
      await release(job);
      await finishedWithTwentyNegated(job, running, table);
    } finally {
      await unhold?.().catch(() => undefined);
      await job.close();
    }
  }

  it('a signal that holds at the start holds the first chunk too, however slow its first reading', async () => {
    // The first reading of this query takes a second; the copy must not start meanwhile.
    const slowYes = dialect === 'mysql' ? 'SELECT 1 + SLEEP(1)' : 'SELECT 1 FROM pg_sleep(1)';
    const table = await freshTable();
    const job = newJob(url, table, 'ADD COLUMN w INT', { chunkSize: 200, throttle: { query: slowYes } });
    try {
      const report = await job.prepare();
      const running = job.execute(report);
      running.catch(() => undefined);
      await waitUntil(() => job.status().throttled !== null || job.status().state === 'failed', 'the throttle to engage', 30_000);
      expect(job.status().throttled).toMatch(/throttle-query/);
      expect(job.status().rowsCopied).toBe(0);
      job.controls.abort('test over');
      await running.catch(() => undefined);
    } finally {
      await job.close();
    }
  });

  it('pauses on the manual throttle and resumes on unthrottle', async () => {
    let engaged = false;
    const table = await freshTable();
    const job = newJob(url, table, 'ADD COLUMN w INT', { ...APPLYING_COPY, chunkSize: 200 });
    try {
      const report = await job.prepare();
      job.controls.manualThrottle = true;
      engaged = true;
      const running = job.execute(report);
      await waitUntil(() => job.status().state === 'copying', 'copying');
      await job.refreshThrottle();
      expect(job.status().throttled).toMatch(/manual/);
      await db.exec(`UPDATE ${q(table)} SET v = 0 WHERE id = 5`);
      await waitUntil(() => job.status().eventsApplied >= 1, 'an event applied while throttled');
      await new Promise((r) => setTimeout(r, 800));
      expect(job.status().rowsCopied).toBe(0);
      job.controls.manualThrottle = false;
      await job.refreshThrottle();
      await running;
      expect(job.status().repairedChunks).toBe(0);
      // Row 5 reached the shadow through the stream first, so the copy skipped it.
      expect(job.status().rowsCopied).toBeGreaterThanOrEqual(ROWS - 1);
    } finally {
      await job.close();
    }
    expect(engaged).toBe(true);
  });

  it('pauses while the throttle flag file exists', async () => {
    const flag = join(dir, `throttle-${dialect}`);
    writeFileSync(flag, '');
    await provePause({ throttle: { flagFile: flag } }, async () => rmSync(flag), /flag-file/);
  });

  it('pauses while --throttle-query returns > 0', async () => {
    await db.exec('INSERT INTO throttle_ctl VALUES (1)');
    await provePause({ throttle: { query: 'SELECT COUNT(*) FROM throttle_ctl' } }, async () => {
      await db.exec('DELETE FROM throttle_ctl');
    }, /throttle-query/);
  });

  it('pauses on --max-load and resumes when `set max-load` raises the threshold', async () => {
    await provePause({ maxLoad: new Map([[loadName, 1]]) }, async (job) => {
      job.liveSettings.maxLoad = new Map([[loadName, 100_000]]);
      await job.refreshThrottle();
    }, new RegExp(`max-load: ${loadName}`));
  });

  if (dialect === 'postgres') {
    it('pauses while the job\'s slot holds more WAL than --max-slot-lag', async () => {
      // One byte: any unconfirmed WAL throttles; `set max-slot-lag` raises it.
      // The slot's restart point cannot pass an open transaction that wrote, so
      // one held open keeps WAL retained even once the job has confirmed everything.
      const pinRestartPoint = async () => {
        const tx = await openDb(url);
        await tx.exec('BEGIN');
        await tx.exec('INSERT INTO throttle_ctl VALUES (1)');
        let done = false;
        return async () => {
          if (done) return;
          done = true;
          await tx.exec('ROLLBACK');
          await tx.close();
        };
      };
      await provePause(
        { maxSlotLagBytes: 1 },
        async (job) => {
          job.liveSettings.maxSlotLagBytes = 1e12;
          await job.refreshThrottle();
        },
        /slot-lag/,
        pinRestartPoint,
      );
    });
  }

  it('--nice-ratio rests the copy after each chunk while the stream is applied; `set nice-ratio=0` ends the rest', async () => {
    const table = await freshTable();
    // A ratio no chunk can pay off in this test's life: the copy rests after its first chunk.
    const job = newJob(url, table, 'ADD COLUMN w INT', { ...APPLYING_COPY, chunkSize: 500, copyNiceRatio: 1e9 });
    try {
      const report = await job.prepare();
      const running = job.execute(report);
      running.catch(() => undefined);
      await waitUntil(() => job.status().rowsCopied > 0 || job.status().state === 'failed', 'the first chunk', 30_000);
      const copiedAtRest = job.status().rowsCopied;
      for (let i = 1; i <= 20; i++) await db.exec(`UPDATE ${q(table)} SET v = -v WHERE id = ${i * 37}`);
      // Applied between the rest's sleeps: the loop went round, and copied nothing more.
      await waitUntil(() => job.status().eventsApplied >= 20, 'the stream to apply changes while the copy rests', 30_000);
      expect(job.status().rowsCopied).toBe(copiedAtRest);
      expect(copiedAtRest).toBe(500);
      expect(await executeControl(job, { command: 'set', setting: 'nice-ratio=0' }, silentLogger())).toMatchObject({ ok: true, message: expect.stringMatching(/no longer rests/) });
      await finishedWithTwentyNegated(job, running, table);
    } finally {
      await job.close();
    }
  });

  it('aborts on critical load crossed twice, leaving the original untouched', async () => {
    const table = await freshTable();
    const listTables = async () =>
      (await db.query<Record<string, string>>(dialect === 'mysql' ? 'SHOW TABLES' : "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))
        .map((r) => String(Object.values(r)[0]))
        .sort();
    const tablesBefore = await listTables();
    const before = await db.query<Record<string, unknown>>(`SELECT COUNT(*) AS n, SUM(v) AS s FROM ${q(table)}`);
    const job = newJob(url, table, 'ADD COLUMN w INT', { chunkSize: 100, throttle: { criticalLoad: new Map([[loadName, 1]]) } });
    try {
      const report = await job.prepare();
      const err = await job.execute(report).then(() => null, (e: unknown) => e);
      expect((err as Error)?.message).toMatch(/critical load twice in a row/);
      expect(job.status().state).toBe('aborted');
    } finally {
      await job.close();
    }
    expect(await db.query(`SELECT COUNT(*) AS n, SUM(v) AS s FROM ${q(table)}`)).toEqual(before);
    expect(await listTables()).toEqual(tablesBefore);
  });

  it('serves Prometheus metrics mid-copy with plausible values', async () => {
    const table = await freshTable();
    let metrics: JobMetrics | undefined;
    const job: AlterJob = newJob(url, table, 'ADD COLUMN w INT', {
      ...APPLYING_COPY,
      chunkSize: 500,
      observer: { chunkCopied: (_r, s) => metrics?.chunkSeconds.observe(s) },
    });
    metrics = new JobMetrics(job);
    const served = await serveMetrics('127.0.0.1:0', metrics);
    try {
      const report = await job.prepare();
      const running = job.execute(report);
      running.catch(() => undefined);
      await waitUntil(() => job.status().rowsCopied >= 2000 || job.status().state !== 'copying' && job.status().state !== 'preflight', 'some chunks', 30_000, 10);
      job.controls.manualThrottle = true;
      await job.refreshThrottle();
      await db.exec(`UPDATE ${q(table)} SET v = 7 WHERE id = 1`);
      await waitUntil(() => job.status().eventsApplied >= 1, 'an event');
      const text = await (await fetch(`http://127.0.0.1:${served.port}/metrics`)).text();
      const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);
      expect(value('shadowshift_rows_copied_total')).toBeGreaterThan(0);
      expect(value('shadowshift_rows_copied_total')).toBeLessThanOrEqual(ROWS);
      expect(value('shadowshift_rows_estimated')).toBeGreaterThan(0);
      expect(value('shadowshift_events_applied_total')).toBeGreaterThanOrEqual(1);
      expect(value('shadowshift_backlog_events')).toBeGreaterThanOrEqual(0);
      expect(value('shadowshift_throttled')).toBe(1);
      expect(value('shadowshift_checksum_repaired_chunks')).toBe(0);
      expect(value('shadowshift_chunk_duration_seconds_count')).toBeGreaterThan(0);
      expect(text).toMatch(/^shadowshift_phase\{state="copying"\} 1$/m);
      expect(text).toMatch(/^shadowshift_throttled_seconds_total\{reason="manual"\} /m);
      for (const name of ['shadowshift_stream_lag_seconds', 'shadowshift_replica_lag_seconds', 'shadowshift_cutover_attempts_total', 'shadowshift_cutover_blocked_seconds', 'shadowshift_errors_total', 'shadowshift_eta_seconds']) {
        expect(text).toContain(`# TYPE ${name}`);
      }
      job.controls.manualThrottle = false;
      await job.refreshThrottle();
      await running;
    } finally {
      await served.close();
      await job.close();
    }
  });

  it('fires each hook once with its variables; a failing on-before-cutover holds the cut-over', async () => {
    const table = await freshTable();
    const hooks = join(dir, `hooks-${dialect}`);
    const out = join(hooks, 'out');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(out, { recursive: true });
    for (const event of HOOK_EVENTS) {
      const body =
        event === 'on-before-cutover'
          ? `#!/bin/sh\necho "$SHADOWSHIFT_EVENT $SHADOWSHIFT_TABLE $SHADOWSHIFT_STATE" >> ${out}/${event}\n[ -e ${hooks}/allow ] || exit 7\n`
          : `#!/bin/sh\necho "$SHADOWSHIFT_EVENT $SHADOWSHIFT_TABLE $SHADOWSHIFT_STATE $SHADOWSHIFT_ROWS_COPIED r$SHADOWSHIFT_REPAIRED_CHUNKS" >> ${out}/${event}\n`;
      writeFileSync(join(hooks, event), body);
      chmodSync(join(hooks, event), 0o755);
    }
    const job = newJob(url, table, 'ADD COLUMN w INT', { hooks: new HookRunner(hooks, silentLogger()) });
    try {
      const report = await job.prepare();
      const running = job.execute(report);
      running.catch(() => undefined);
      await waitUntil(() => existsSync(join(out, 'on-before-cutover')) && readFileSync(join(out, 'on-before-cutover'), 'utf8').split('\n').length >= 3, 'the cut-over to be held twice', 60_000);
      expect(job.status().state).not.toBe('done');
      writeFileSync(join(hooks, 'allow'), '');
      await running;
    } finally {
      await job.close();
    }
    const lines = (event: string) => (existsSync(join(out, event)) ? readFileSync(join(out, event), 'utf8').trim().split('\n') : []);
    const schema = new URL(url).pathname.slice(1);
    const fq = dialect === 'mysql' ? `${schema}.${table}` : `public.${table}`;
    for (const event of ['on-start', 'on-validated', 'on-copy-complete', 'on-success']) {
      expect(lines(event), event).toHaveLength(1);
      expect(lines(event)[0]).toContain(`${event} ${fq}`);
    }
    expect(lines('on-copy-complete')[0]).toBe(`on-copy-complete ${fq} copying ${ROWS} r0`);
    expect(lines('on-success')[0]).toMatch(new RegExp(`^on-success ${fq.replace('.', '\\.')} done \\d+ r0$`));
    expect(lines('on-failure')).toEqual([]);
    expect(lines('on-before-cutover').length).toBeGreaterThanOrEqual(3);
    expect(readdirSync(out)).not.toContain('on-postponed');
  });

  it('fires on-postponed, on-status and on-failure once each, with their variables', async () => {
    const table = await freshTable();
    const hooks = join(dir, `hooks2-${dialect}`);
    const out = join(hooks, 'out');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(out, { recursive: true });
    for (const event of ['on-postponed', 'on-status', 'on-failure']) {
      writeFileSync(join(hooks, event), `#!/bin/sh\necho "$SHADOWSHIFT_EVENT $SHADOWSHIFT_STATE [$SHADOWSHIFT_ERROR]" >> ${out}/${event}\n`);
      chmodSync(join(hooks, event), 0o755);
    }
    const flag = join(dir, `postpone-hooks-${dialect}`);
    writeFileSync(flag, '');
    const job = newJob(url, table, 'ADD COLUMN w INT', { hooks: new HookRunner(hooks, silentLogger()), postponeCutoverFlagFile: flag });
    try {
      const report = await job.prepare();
      const running = job.execute(report);
      running.catch(() => undefined);
      await waitUntil(() => existsSync(join(out, 'on-postponed')), 'on-postponed', 60_000);
      await job.reportStatus();
      job.controls.abort('operator said so');
      await running.catch(() => undefined);
    } finally {
      await job.close();
      rmSync(flag, { force: true });
    }
    const read = (event: string) => readFileSync(join(out, event), 'utf8').trim().split('\n');
    expect(read('on-postponed')).toEqual(['on-postponed postponed []']);
    expect(read('on-status')).toEqual(['on-status postponed []']);
    expect(read('on-failure')).toEqual(['on-failure aborted [job aborted: operator said so]']);
  });
});

