// gh-ost style hooks: executables in --hooks-dir named for a lifecycle event,
// run with the job's details in environment variables. Never given the URL or
// any password.

import { spawn } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../util/logger.js';
import type { JobStatus } from '../engine/job-state.js';

export const HOOK_EVENTS = [
  'on-start',
  'on-validated',
  'on-copy-complete',
  'on-postponed',
  'on-before-cutover',
  'on-success',
  'on-failure',
  'on-status',
] as const;
export type HookEvent = (typeof HOOK_EVENTS)[number];

export interface HookContext {
  dialect: string;
  alter: string;
  status: JobStatus;
}

/** The environment a hook sees; documented in the README. */
export function hookEnvironment(event: HookEvent, ctx: HookContext): Record<string, string> {
  const s = ctx.status;
  return {
    SHADOWSHIFT_EVENT: event,
    SHADOWSHIFT_JOB_ID: s.jobId,
    SHADOWSHIFT_DIALECT: ctx.dialect,
    SHADOWSHIFT_TABLE: s.table,
    SHADOWSHIFT_ALTER: ctx.alter,
    SHADOWSHIFT_SHADOW_TABLE: s.shadowTable ?? '',
    SHADOWSHIFT_BACKUP_TABLE: s.backupTable ?? '',
    SHADOWSHIFT_STATE: s.state,
    SHADOWSHIFT_ROWS_COPIED: String(s.rowsCopied),
    SHADOWSHIFT_ROWS_ESTIMATED: String(s.rowsEstimated),
    SHADOWSHIFT_EVENTS_APPLIED: String(s.eventsApplied),
    SHADOWSHIFT_BACKLOG: String(s.backlog),
    SHADOWSHIFT_ETA_SECONDS: s.etaSeconds === null ? '' : String(s.etaSeconds),
    SHADOWSHIFT_THROTTLED: s.throttled ?? '',
    SHADOWSHIFT_REPAIRED_CHUNKS: String(s.repairedChunks),
    SHADOWSHIFT_ERROR: s.error ?? '',
  };
}

export class HookRunner {
  constructor(
    private readonly dir: string,
    private readonly log: Logger,
    private readonly timeoutMs = 60_000,
  ) {}

  /** Fails early, before the job starts, when the directory is unusable. */
  static validate(dir: string): void {
    if (!existsSync(dir)) throw new Error(`--hooks-dir ${dir} does not exist; create it or leave the flag out`);
  }

  private executable(event: HookEvent): string | null {
    const path = join(this.dir, event);
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      if (existsSync(path)) this.log.warn({ hook: path }, 'hook exists but is not executable; chmod +x it');
      return null;
    }
  }

  /** Runs the hook for `event` if there is one; resolves to its exit code (0 when there is none). */
  async run(event: HookEvent, ctx: HookContext): Promise<number> {
    const path = this.executable(event);
    if (!path) return 0;
    const env = { ...process.env, ...hookEnvironment(event, ctx) };
    // The parent's connection secrets never reach a hook.
    delete env.SHADOWSHIFT_URL;
    return new Promise((resolve) => {
      const child = spawn(path, [], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      child.stdout.on('data', (d) => (output += d));
      child.stderr.on('data', (d) => (output += d));
      const timer = setTimeout(() => child.kill('SIGKILL'), this.timeoutMs);
      child.on('error', (err) => {
        clearTimeout(timer);
        this.log.warn({ hook: event, err: err.message }, 'hook could not run');
        resolve(127);
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        const exitCode = code ?? (signal ? 128 : 1);
        this.log.info({ hook: event, exitCode, output: output.slice(-2000).trim() || undefined }, `hook ${event} exited ${exitCode}`);
        resolve(exitCode);
      });
    });
  }
}
