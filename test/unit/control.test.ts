// The control plane without a database: throttler decisions, the socket and
// HTTP protocols (token, loopback), live settings, and hooks as real processes.

import { describe, it, expect, afterEach } from 'vitest';
import { mkdtempSync, writeFileSync, chmodSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Throttler, parseLoadThresholds, crossedThreshold } from '../../src/control/throttler.js';
import { JobControls } from '../../src/control/job-controls.js';
import { ChunkSizer } from '../../src/engine/chunk-sizer.js';
import { startControlServer, type Controllable } from '../../src/control/control-server.js';
import { sendControlCommand } from '../../src/control/control-client.js';
import { startHttpControl } from '../../src/control/http-server.js';
import { HookRunner } from '../../src/control/hooks.js';
import { silentLogger } from '../../src/util/logger.js';
import type { JobStatus } from '../../src/engine/job-state.js';

const log = silentLogger();
const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'ss-ctl-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function fakeJob(): Controllable & { refreshed: number } {
  const controls = new JobControls();
  const status: JobStatus = {
    jobId: 'j1', state: 'copying', phase: 'copying', waitingFor: null, lastCheckpoint: null, table: 'db.t', shadowTable: '_t_ssnew', backupTable: '_t_ssold_j1', rowsCopied: 10, rowsEstimated: 100,
    rowsPerSecond: null, eventsApplied: 3, backlog: 0, lagSeconds: 0.1, throttled: null, etaSeconds: null, chunkSize: 1000, cutoverAttempts: 0, repairedChunks: 0, swapped: false, error: null,
  };
  const job = {
    controls,
    chunkSizer: new ChunkSizer({ targetMs: 500 }),
    liveSettings: { maxLagSeconds: 1.5, maxLoad: new Map<string, number>() },
    refreshed: 0,
    status: () => ({ ...status, throttled: controls.manualThrottle ? 'manual' : null }),
    refreshThrottle: async () => {
      job.refreshed++;
    },
  };
  return job;
}

describe('Throttler', () => {
  it('reports the first signal that says pause, and accounts throttled time per signal', async () => {
    let load = 0;
    const t = new Throttler({
      signals: [
        { name: 'manual', check: async () => null },
        { name: 'max-load', check: async () => (load > 5 ? `Threads_running=${load}` : null) },
      ],
      log,
      onCritical: () => undefined,
    });
    await t.poll();
    expect(t.reason()).toBeNull();
    load = 9;
    await t.poll();
    expect(t.reason()).toBe('max-load: Threads_running=9');
    await new Promise((r) => setTimeout(r, 50));
    load = 0;
    await t.poll();
    expect(t.reason()).toBeNull();
    expect(t.secondsThrottled().get('max-load')).toBeGreaterThan(0.03);
  });

  it('poll() during a reading already under way reads again: an operator change is never lost to it', async () => {
    let manual = true;
    let release: () => void = () => undefined;
    let started: () => void = () => undefined;
    const firstStarted = new Promise<void>((r) => (started = r));
    let readings = 0;
    const t = new Throttler({
      signals: [
        {
          name: 'manual',
          // The first reading sees manual=true, then stalls until released.
          check: async () => {
            const seen = manual;
            if (readings++ === 0) {
              started();
              await new Promise<void>((r) => (release = r));
            }
            return seen ? 'ctl throttle' : null;
          },
        },
      ],
      log,
      onCritical: () => undefined,
    });
    const first = t.poll();
    await firstStarted;
    manual = false;
    const second = t.poll();
    release();
    await Promise.all([first, second]);
    expect(t.reason()).toBeNull();
  });

  it('pauses when a signal cannot be read (fail safe)', async () => {
    const t = new Throttler({ signals: [{ name: 'replica-lag', check: async () => Promise.reject(new Error('connection refused')) }], log, onCritical: () => undefined });
    await t.poll();
    expect(t.reason()).toMatch(/replica-lag: cannot read it \(connection refused\)/);
  });

  it('aborts on critical load only when crossed twice in a row, or hibernates', async () => {
    let crossed = true;
    const reasons: string[] = [];
    const t = new Throttler({ signals: [], critical: [{ name: 'critical-load', check: async () => (crossed ? 'Threads_running=99 >= 50' : null) }], log, onCritical: (r) => reasons.push(r) });
    await t.poll();
    expect(reasons).toEqual([]);
    crossed = false;
    await t.poll();
    crossed = true;
    await t.poll();
    expect(reasons).toEqual([]);
    await t.poll();
    expect(reasons).toEqual(['critical load twice in a row: Threads_running=99 >= 50']);

    const h = new Throttler({ signals: [], critical: [{ name: 'critical-load', check: async () => 'x' }], criticalHibernateSeconds: 5, log, onCritical: (r) => reasons.push(r) });
    await h.poll();
    await h.poll();
    expect(h.hibernating()).toBe(true);
    expect(h.reason()).toMatch(/hibernating/);
    expect(reasons).toHaveLength(1);
  });

  it('parses thresholds and names a bad one', () => {
    const m = parseLoadThresholds('Threads_running=25, Threads_connected=500', '--max-load');
    expect([...m]).toEqual([['Threads_running', 25], ['Threads_connected', 500]]);
    expect(crossedThreshold({ Threads_running: 30 }, m)).toBe('Threads_running=30 >= 25');
    expect(crossedThreshold({ Threads_running: 3 }, m)).toBeNull();
    expect(() => parseLoadThresholds('Threads_running>25', '--max-load')).toThrow(/"Threads_running>25" is not NAME=NUMBER/);
  });
});

describe('control socket', () => {
  it('is mode 0600 and carries out every verb, including live settings', async () => {
    const path = join(tempDir(), 'c.sock');
    const job = fakeJob();
    const server = await startControlServer(path, job, log);
    try {
      const { statSync } = await import('node:fs');
      expect(statSync(path).mode & 0o777).toBe(0o600);
      const send = (command: string, setting?: string) => sendControlCommand(path, { command: command as never, setting });
      expect(await send('status')).toMatchObject({ ok: true, status: { state: 'copying' } });
      expect(await send('throttle')).toMatchObject({ ok: true, status: { throttled: 'manual' } });
      expect(await send('unthrottle')).toMatchObject({ ok: true, status: { throttled: null } });
      await send('set', 'chunk-size=777');
      expect(job.chunkSizer.size).toBe(777);
      await send('set', 'chunk-time=250');
      expect(job.chunkSizer.targetMs).toBe(250);
      await send('set', 'max-lag=4.5');
      expect(job.liveSettings.maxLagSeconds).toBe(4.5);
      await send('set', 'max-load=Threads_running=40');
      expect([...job.liveSettings.maxLoad]).toEqual([['Threads_running', 40]]);
      await send('set', 'nice-ratio=0.5');
      expect(job.liveSettings.niceRatio).toBe(0.5);
      expect(await send('set', 'nice-ratio=-1')).toMatchObject({ ok: false, error: expect.stringMatching(/nice-ratio must be a number, 0 or more/) });
      expect(await send('set', 'chunk-size=-1')).toMatchObject({ ok: false, error: expect.stringMatching(/positive/) });
      expect(await send('set', 'colour=blue')).toMatchObject({ ok: false, error: expect.stringMatching(/unknown setting colour/) });
      await send('postpone');
      expect(job.controls.cutoverPostponed()).toBe(true);
      await send('unpostpone');
      expect(job.controls.cutoverPostponed()).toBe(false);
      await send('cutover');
      expect(job.controls.cutoverRequested).toBe(true);
      await send('abort');
      expect(job.controls.abortRequested).toBe(true);
      expect(await send('dance')).toMatchObject({ ok: false, error: expect.stringMatching(/unknown command/) });
      expect(job.refreshed).toBeGreaterThan(5);
    } finally {
      await server.close();
    }
  });

  it('refuses to take over a socket another job serves', async () => {
    const path = join(tempDir(), 'c.sock');
    const first = await startControlServer(path, fakeJob(), log);
    await expect(startControlServer(path, fakeJob(), log)).rejects.toThrow(/another job is serving/);
    await first.close();
  });
});

describe('HTTP control', () => {
  it('serves status openly, refuses mutations without the token, binds loopback only', async () => {
    const job = fakeJob();
    const http = await startHttpControl('127.0.0.1:0', { token: 'tok-123' }, job, log);
    const base = `http://127.0.0.1:${http.port}`;
    try {
      const status = await fetch(`${base}/status`);
      expect(status.status).toBe(200);
      expect(await status.json()).toMatchObject({ state: 'copying' });
      for (const verb of ['throttle', 'unthrottle', 'set', 'postpone', 'unpostpone', 'cutover', 'abort']) {
        const denied = await fetch(`${base}/${verb}`, { method: 'POST' });
        expect(denied.status, verb).toBe(401);
        const wrong = await fetch(`${base}/${verb}`, { method: 'POST', headers: { authorization: 'Bearer nope' } });
        expect(wrong.status, verb).toBe(401);
      }
      expect(job.controls.manualThrottle).toBe(false);
      expect(job.controls.abortRequested).toBe(false);
      const ok = await fetch(`${base}/throttle`, { method: 'POST', headers: { authorization: 'Bearer tok-123' } });
      expect(ok.status).toBe(200);
      expect(job.controls.manualThrottle).toBe(true);
      const set = await fetch(`${base}/set`, { method: 'POST', headers: { authorization: 'Bearer tok-123' }, body: JSON.stringify({ setting: 'chunk-size=1234' }) });
      expect(set.status).toBe(200);
      expect(job.chunkSizer.size).toBe(1234);
    } finally {
      await http.close();
    }
    await expect(startHttpControl('0.0.0.0:0', { token: 't' }, job, log)).rejects.toThrow(/not a loopback address/);
    await expect(startHttpControl('127.0.0.1:0', {}, job, log)).rejects.toThrow(/needs a token/);
  });
});

describe('hooks', () => {
  it('run the executable named for the event with the job in the environment, and return its exit code', async () => {
    const dir = tempDir();
    const out = join(dir, 'out.txt');
    writeFileSync(join(dir, 'on-start'), `#!/bin/sh\necho "$SHADOWSHIFT_EVENT $SHADOWSHIFT_TABLE $SHADOWSHIFT_ROWS_COPIED url=$SHADOWSHIFT_URL" >> ${out}\n`);
    writeFileSync(join(dir, 'on-before-cutover'), '#!/bin/sh\nexit 3\n');
    chmodSync(join(dir, 'on-start'), 0o755);
    chmodSync(join(dir, 'on-before-cutover'), 0o755);
    const runner = new HookRunner(dir, log);
    const ctx = { dialect: 'mysql', alter: 'ADD COLUMN x INT', status: fakeJob().status() };
    process.env.SHADOWSHIFT_URL = 'mysql://root:secret@h/db';
    try {
      expect(await runner.run('on-start', ctx)).toBe(0);
      expect(await runner.run('on-before-cutover', ctx)).toBe(3);
      expect(await runner.run('on-success', ctx)).toBe(0); // no such hook
    } finally {
      delete process.env.SHADOWSHIFT_URL;
    }
    expect(readFileSync(out, 'utf8')).toBe('on-start db.t 10 url=\n');
  });
});
