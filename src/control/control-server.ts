// The control socket a running job serves: one JSON request per line, one JSON
// reply per line. A Unix socket with mode 0600, so only the job's OS user (and
// root) can steer it.

import { createServer, createConnection, type Server } from 'node:net';
import { chmodSync, existsSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '../util/logger.js';
import { UsageError } from '../util/errors.js';
import type { JobStatus } from '../engine/job-state.js';
import type { JobControls } from './job-controls.js';
import type { ChunkSizer } from '../engine/chunk-sizer.js';
import type { LiveThrottleSettings } from './throttle-signals.js';
import { parseLoadThresholds } from './throttler.js';

/** Applies `name=value`; returns what changed, or throws with the accepted forms. */
function applySetting(job: Controllable, setting: string | undefined): string {
  const m = /^([a-z-]+)=(.+)$/.exec(setting?.trim() ?? '');
  if (!m) throw new Error(`set needs NAME=VALUE with NAME one of ${SETTINGS.join(', ')}`);
  const [, name, value] = m as unknown as [string, string, string];
  const positive = () => {
    const n = Number(value);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number (got ${value})`);
    return n;
  };
  switch (name) {
    case 'chunk-time':
      job.chunkSizer.setTarget(positive());
      job.chunkSizer.setFixed(undefined);
      return `chunk-time=${value}ms (adaptive chunk size)`;
    case 'chunk-size':
      if (value === 'auto') {
        job.chunkSizer.setFixed(undefined);
        return 'chunk size adapts again';
      }
      if (!Number.isInteger(positive())) throw new Error('chunk-size must be a whole number of rows, or auto');
      job.chunkSizer.setFixed(Number(value));
      return `chunk-size=${value} rows (fixed)`;
    case 'max-lag':
      job.liveSettings.maxLagSeconds = positive();
      return `max-lag=${value}s`;
    case 'max-load':
      job.liveSettings.maxLoad = parseLoadThresholds(value, 'max-load');
      return `max-load=${value}`;
    case 'max-slot-lag':
      job.liveSettings.maxSlotLagBytes = positive();
      return `max-slot-lag=${value} bytes`;
    case 'copy-snapshot-max': {
      const n = Number(value);
      if (!Number.isFinite(n) || n < 0) throw new Error(`copy-snapshot-max must be a number of seconds, 0 or more (got ${value})`);
      job.liveSettings.copySnapshotMaxSeconds = n;
      return job.status().copyAtStreamStart
        ? `copy-snapshot-max=${value}s: the copy stops reading at the stream's snapshot before its next chunk once ${value} s have passed since it began`
        : `copy-snapshot-max=${value}s, which changes nothing now: the copy is not reading at the stream's snapshot`;
    }
    case 'nice-ratio': {
      const n = Number(value);
      if (!Number.isFinite(n) || n < 0) throw new Error(`nice-ratio must be a number, 0 or more (got ${value}): the copy rests that many times as long as each chunk took`);
      job.liveSettings.niceRatio = n;
      return n > 0 ? `nice-ratio=${value}: after each chunk the copy rests ${value}× as long as the chunk took` : 'nice-ratio=0: the copy no longer rests between chunks';
    }
    default:
      throw new Error(`unknown setting ${name}; use one of ${SETTINGS.join(', ')}`);
  }
}

export const CONTROL_COMMANDS = ['status', 'throttle', 'unthrottle', 'set', 'postpone', 'unpostpone', 'cutover', 'abort'] as const;
export type ControlCommand = (typeof CONTROL_COMMANDS)[number];
export const SETTINGS = ['chunk-time', 'chunk-size', 'max-lag', 'max-load', 'max-slot-lag', 'copy-snapshot-max', 'nice-ratio'] as const;

export interface ControlRequest {
  command: ControlCommand;
  /** For `set`: `chunk-time=300`, `chunk-size=5000` (or `auto`), `max-lag=2.5`, `max-load=Threads_running=30`, `max-slot-lag=1e9`, `copy-snapshot-max=0`, `nice-ratio=0.5`. */
  setting?: string;
}

export type ControlReply = { ok: true; status: JobStatus; message?: string } | { ok: false; error: string };

export interface Controllable {
  readonly controls: JobControls;
  readonly chunkSizer: ChunkSizer;
  readonly liveSettings: LiveThrottleSettings;
  status(): JobStatus;
  refreshThrottle(): Promise<void>;
}

export function defaultControlSocketPath(schema: string, table: string): string {
  const safe = `${schema}.${table}`.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 60);
  return join(tmpdir(), `shadowshift-${safe}.sock`);
}

/** Carries out one request; shared by the socket and the HTTP endpoint. */
export async function executeControl(job: Controllable, request: ControlRequest, log: Logger): Promise<ControlReply> {
  const c = job.controls;
  let message: string | undefined;
  switch (request.command) {
    case 'set':
      try {
        message = `set ${applySetting(job, request.setting)}`;
      } catch (err) {
        return { ok: false, error: (err as Error).message };
      }
      break;
    case 'status':
      break;
    case 'throttle':
      c.manualThrottle = true;
      message = job.status().copyAtStreamStart
        ? "copy throttled; the changes since the job's start wait until the copy stops reading at the stream's snapshot (at its end, copy-snapshot-max or the slot-lag limit), and vacuum and the slot's WAL wait with them; `set copy-snapshot-max=0` ends that phase before the next chunk"
        : 'copy throttled; the change stream is still applied';
      break;
    case 'unthrottle':
      c.manualThrottle = false;
      message = 'copy resumed';
      break;
    case 'postpone':
      c.postponedByCommand = true;
      c.cutoverRequested = false;
      message = 'cut-over postponed';
      break;
    case 'unpostpone':
      c.postponedByCommand = false;
      message = 'cut-over no longer postponed by command (a flag file still holds it)';
      break;
    case 'cutover':
      c.cutoverRequested = true;
      c.postponedByCommand = false;
      message = 'cut-over will start as soon as the copy is done and the stream is caught up';
      break;
    case 'abort':
      c.abort('requested over the control socket');
      message = 'aborting: the job cleans up and exits non-zero';
      break;
    default:
      return { ok: false, error: `unknown command ${JSON.stringify((request as { command: unknown }).command)}; use one of ${CONTROL_COMMANDS.join(', ')}` };
  }
  if (request.command !== 'status') log.info({ command: request.command, setting: request.setting }, `control command: ${message ?? request.command}`);
  c.wake();
  await job.refreshThrottle();
  return { ok: true, status: job.status(), ...(message ? { message } : {}) };
}

async function socketIsLive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export async function startControlServer(path: string, job: Controllable, log: Logger): Promise<{ close(): Promise<void> }> {
  if (existsSync(path)) {
    if (await socketIsLive(path)) {
      throw new UsageError(`another job is serving the control socket ${path}; stop it, or pass a different --control-socket`);
    }
    unlinkSync(path); // left by a job that died
  }
  const server: Server = createServer((socket) => {
    let buffer = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      if (buffer.length > 64 * 1024) return socket.destroy();
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl).trim();
        buffer = buffer.slice(nl + 1);
        if (!line) continue;
        let request: ControlRequest;
        try {
          request = JSON.parse(line) as ControlRequest;
        } catch (err) {
          socket.write(JSON.stringify({ ok: false, error: `bad request: ${(err as Error).message}` }) + '\n');
          continue;
        }
        void executeControl(job, request, log).then((reply) => socket.write(JSON.stringify(reply) + '\n'));
      }
    });
    socket.on('error', () => undefined);
  });
  const oldMask = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => resolve());
    });
  } finally {
    process.umask(oldMask);
  }
  chmodSync(path, 0o600);
  return {
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        if (existsSync(path)) {
          try {
            unlinkSync(path);
          } catch {
            /* already gone */
          }
        }
      }),
  };
}
