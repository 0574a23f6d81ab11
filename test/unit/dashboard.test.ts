// The dashboard without a database or a browser: the bounded history, what the recorder
// makes of a job's status over time, the log tap, and the HTTP side (page, Host check,
// the open view without log lines or SQL, the full view with the token).

import { describe, it, expect } from 'vitest';
import { request } from 'node:http';
import { HistoryRing, meanOf } from '../../src/control/dashboard/history-ring.js';
import { JobRecorder, combineSamples, type Sample } from '../../src/control/dashboard/job-recorder.js';
import { Dashboard } from '../../src/control/dashboard/dashboard.js';
import { hostAllowed, startHttpControl } from '../../src/control/http-server.js';
import { JobControls } from '../../src/control/job-controls.js';
import { ChunkSizer } from '../../src/engine/chunk-sizer.js';
import { createLogger, silentLogger } from '../../src/util/logger.js';
import { addLogTap, type TappedLine } from '../../src/util/log-tap.js';
import type { JobStatus } from '../../src/engine/job-state.js';

describe('HistoryRing', () => {
  it('keeps at most its capacity, halving the resolution when full, and still spans the whole history', () => {
    const ring = new HistoryRing<{ t: number; v: number }>(8, (ps) => ({ t: ps[ps.length - 1]!.t, v: meanOf(ps.map((p) => p.v))! }));
    for (let i = 1; i <= 7; i++) ring.push({ t: i, v: i });
    expect(ring.snapshot().map((p) => p.t)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(ring.resolution).toBe(1);
    ring.push({ t: 8, v: 8 }); // full: pairs combined
    expect(ring.resolution).toBe(2);
    expect(ring.snapshot()).toEqual([{ t: 2, v: 1.5 }, { t: 4, v: 3.5 }, { t: 6, v: 5.5 }, { t: 8, v: 7.5 }]);
    ring.push({ t: 9, v: 9 }); // half a point at the new resolution: shown, not yet kept
    expect(ring.snapshot().at(-1)).toEqual({ t: 9, v: 9 });
    ring.push({ t: 10, v: 10 });
    expect(ring.snapshot().at(-1)).toEqual({ t: 10, v: 9.5 });
    for (let i = 11; i <= 10_000; i++) ring.push({ t: i, v: i });
    const all = ring.snapshot();
    expect(all.length).toBeLessThanOrEqual(9);
    expect(all[0]!.t).toBe(ring.resolution); // the first point still covers the first samples, coarser
    expect(all.at(-1)!.t).toBe(10_000);
    expect(() => new HistoryRing(3, (p) => p[0])).toThrow(/even/);
  });

  it('combines samples: the mean rate, the peak lag and backlog, any throttle reason, replica lags by name', () => {
    const a: Sample = { t: 1, rowsCopied: 10, rowsPerSecond: 100, lagSeconds: 0.5, backlog: 3, replicaLag: { r1: 1 }, chunkMs: 200, throttled: null };
    const b: Sample = { t: 2, rowsCopied: 20, rowsPerSecond: null, lagSeconds: 2, backlog: 1, replicaLag: { r1: 3, r2: 4 }, chunkMs: 100, throttled: 'manual' };
    expect(combineSamples([a, b])).toEqual({ t: 2, rowsCopied: 20, rowsPerSecond: 100, lagSeconds: 2, backlog: 3, replicaLag: { r1: 2, r2: 4 }, chunkMs: 150, throttled: 'manual' });
  });
});

function status(over: Partial<JobStatus> = {}): JobStatus {
  return {
    jobId: 'j1', state: 'copying', phase: 'copying', waitingFor: null, lastCheckpoint: null, table: 'db.t', shadowTable: '_t_new', backupTable: null, rowsCopied: 0, rowsEstimated: 100,
    rowsPerSecond: null, eventsApplied: 0, backlog: 0, lagSeconds: null, throttled: null, etaSeconds: null, chunkSize: 1000, cutoverAttempts: 0, repairedChunks: 0, swapped: false, error: null, ...over,
  };
}

describe('JobRecorder', () => {
  it('records time per state, throttled intervals with their reasons, chunk durations and cut-over attempts', () => {
    let now = 1000;
    let current = status();
    const rec = new JobRecorder({ status: () => current, replicaLags: () => new Map([['replica1', 0.4]]) }, () => now);
    rec.sample();
    now = 3000;
    rec.chunkCopied(0.1);
    rec.chunkCopied(0.3);
    current = status({ rowsCopied: 50, throttled: 'manual: ctl throttle' });
    rec.sample();
    now = 4000;
    current = status({ rowsCopied: 50, throttled: 'replica lag' });
    rec.sample();
    now = 6000;
    current = status({ state: 'cutting-over', phase: 'cutting-over', rowsCopied: 100 });
    rec.sample();
    rec.cutoverAttempt('failed', 0.25);
    rec.cutoverAttempt('ok', 0.04);
    now = 7000;
    const v = rec.view();
    expect(v.states).toEqual([{ state: 'copying', seconds: 5 }, { state: 'cutting-over', seconds: 1 }]);
    expect(v.throttles).toEqual([
      { from: 3000, to: 4000, reason: 'manual: ctl throttle' },
      { from: 4000, to: 6000, reason: 'replica lag' },
    ]);
    expect(v.history.map((p) => p.chunkMs)).toEqual([null, 200, null, null]);
    expect(v.history[0]!.replicaLag).toEqual({ replica1: 0.4 });
    expect(v.cutoverAttempts).toEqual([{ at: 6000, result: 'failed', lockedMs: 250 }, { at: 6000, result: 'ok', lockedMs: 40 }]);
  });
});

describe('log tap', () => {
  it('sees every line of createLogger loggers and their children, without secrets', () => {
    const seen: TappedLine[] = [];
    const stop = addLogTap((l) => seen.push(l));
    const log = createLogger({ level: 'info', pretty: false }); // a silent level calls no hook: the tap sees what is logged
    try {
      log.child({ job: 'x' }).warn({ url: 'mysql://root:secret@h/db', rows: 5, nested: { password: 'p' } }, 'a warning');
      log.error(new Error('boom'));
      log.info('plain');
    } finally {
      stop();
    }
    log.info('after');
    expect(seen.map((l) => [l.level, l.msg])).toEqual([[40, 'a warning'], [50, 'boom'], [30, 'plain']]);
    expect(JSON.stringify(seen)).not.toContain('secret');
    expect(JSON.stringify(seen)).not.toMatch(/"p"/);
    expect(seen[0]!.fields.rows).toBe('5');
  });
});

function fakeJob() {
  const controls = new JobControls();
  const blocker = { session: 42, ageSeconds: 3, user: 'app', application: 'x', state: 'idle in transaction', query: 'UPDATE secret_table SET a = ?' };
  return {
    controls,
    chunkSizer: new ChunkSizer({ targetMs: 500 }),
    liveSettings: { maxLagSeconds: 1.5, maxLoad: new Map<string, number>() },
    status: () =>
      status({
        throttled: controls.manualThrottle ? 'manual: ctl throttle' : null,
        waitingFor: { what: 'lock', phase: 'cutting-over', since: new Date().toISOString(), seconds: 1, detail: 'the swap waits', blockers: [blocker] },
      }),
    refreshThrottle: async () => undefined,
  };
}

/** A GET with a chosen Host header (fetch does not let one set it). */
function get(port: number, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, body, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('dashboard over HTTP', () => {
  it('accepts only Host values that name this server', () => {
    expect(hostAllowed('127.0.0.1:8080', '127.0.0.1', 8080)).toBe(true);
    expect(hostAllowed('localhost:8080', '127.0.0.1', 8080)).toBe(true);
    expect(hostAllowed('[::1]:8080', '127.0.0.1', 8080)).toBe(true);
    expect(hostAllowed('127.0.0.1:8081', '127.0.0.1', 8080)).toBe(false);
    expect(hostAllowed('evil.example:8080', '127.0.0.1', 8080)).toBe(false);
    expect(hostAllowed('127.0.0.1', '127.0.0.1', 8080)).toBe(false);
    expect(hostAllowed(undefined, '127.0.0.1', 8080)).toBe(false);
    expect(hostAllowed('10.1.2.3:8080', '0.0.0.0', 8080)).toBe(true);
    expect(hostAllowed('evil.example:8080', '0.0.0.0', 8080)).toBe(false);
  });

  it('serves the page, refuses other Hosts, and gives log lines and SQL only with the token', async () => {
    const job = fakeJob();
    const dashboard = new Dashboard('alter');
    const log = createLogger({ level: 'info', pretty: false });
    const http = await startHttpControl('127.0.0.1:0', { token: 'tok-123' }, job, silentLogger(), dashboard);
    dashboard.attach({ ...job }, { table: 'db.t', alter: 'ADD COLUMN c INT', dialect: 'postgres', server: 'postgres 16.1', jobId: 'j1' });
    log.warn('something to see');
    const port = http.port;
    try {
      const page = await get(port, '/');
      expect(page.status).toBe(200);
      expect(page.headers['content-type']).toMatch(/text\/html/);
      expect(page.headers['content-security-policy']).toMatch(/script-src 'self'/);
      expect(page.body).toContain('<script src="/dashboard/app.js">');
      expect((await get(port, '/dashboard/app.js')).body).toContain('/dashboard/state');
      expect((await get(port, '/', { host: `evil.example:${port}` })).status).toBe(403);
      expect((await get(port, '/status', { host: `attacker.test:${port}` })).status).toBe(403);
      expect((await get(port, '/dashboard/state', { host: `localhost:${port}` })).status).toBe(200);

      const open = JSON.parse((await get(port, '/dashboard/state')).body);
      expect(open).toMatchObject({ command: 'alter', authorized: false, logs: null, meta: { alter: 'ADD COLUMN c INT' }, status: { state: 'copying' } });
      expect(open.status.waitingFor.blockers[0]).toMatchObject({ session: 42, query: '' });
      expect(JSON.parse((await get(port, '/status')).body).waitingFor.blockers[0].query).toBe('');
      expect((await get(port, '/dashboard/state', { authorization: 'Bearer nope' })).status).toBe(401);

      const full = JSON.parse((await get(port, '/dashboard/state', { authorization: 'Bearer tok-123' })).body);
      expect(full.authorized).toBe(true);
      expect(full.status.waitingFor.blockers[0].query).toBe('UPDATE secret_table SET a = ?');
      expect(full.logs.map((l: TappedLine) => l.msg)).toContain('something to see');
      expect(full.job.history.length).toBeGreaterThan(0);
    } finally {
      await http.close();
      dashboard.close();
    }
  });

  it('for migrate: the controls answer 409 while no engine job runs', async () => {
    const dashboard = new Dashboard('migrate');
    dashboard.migrateProgress('up', '20250101000000_add.sql: expand');
    const http = await startHttpControl('127.0.0.1:0', { token: 't' }, () => dashboard.current, silentLogger(), dashboard);
    try {
      const base = `http://127.0.0.1:${http.port}`;
      expect((await fetch(`${base}/throttle`, { method: 'POST', headers: { authorization: 'Bearer t' } })).status).toBe(409);
      expect((await fetch(`${base}/status`)).status).toBe(503);
      const v = (await (await fetch(`${base}/dashboard/state`)).json()) as { migrate: unknown; status: unknown };
      expect(v.migrate).toMatchObject({ action: 'up', migration: '20250101000000_add.sql', phase: 'expand' });
      expect(v.status).toBeNull();
    } finally {
      await http.close();
      dashboard.close();
    }
  });
});
