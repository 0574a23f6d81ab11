// The dashboard's model: what `GET /dashboard/state` returns. One per process run
// (`alter`, `revert`, `migrate`); the engine job it shows is attached while it runs
// (for `migrate`, each engine job in turn). Keeps the last log events in a ring.
// Without the token the view leaves out log lines and sessions' SQL: both can name
// what other sessions run.

import type { JobStatus } from '../../engine/job-state.js';
import type { Controllable } from '../control-server.js';
import { addLogTap, type TappedLine } from '../../util/log-tap.js';
import { JobRecorder, type RecordedJobSource } from './job-recorder.js';

export interface DashboardJob extends Controllable, RecordedJobSource {}

export interface JobMeta {
  table: string;
  alter: string;
  dialect: string;
  server: string;
  jobId: string;
}

export interface MigrateView {
  action: string;
  migration: string | null;
  phase: string | null;
  lastLine: string | null;
  finished: boolean;
}

const LOG_LINES = 200;
const PHASE_LINE = /^(\S+\.(?:sql|ts)): ([a-z-]+)(?: \(resuming.*\))?$/;

/** The status without the SQL of other sessions (the open view). */
export function publicStatus(s: JobStatus): JobStatus {
  return {
    ...s,
    waitingFor: s.waitingFor ? { ...s.waitingFor, blockers: s.waitingFor.blockers.map((b) => ({ ...b, query: '' })) } : null,
    snapshotWait: s.snapshotWait ? { ...s.snapshotWait, sessions: s.snapshotWait.sessions.map((x) => ({ ...x, query: '' })) } : s.snapshotWait,
  };
}

export class Dashboard {
  private job: DashboardJob | null = null;
  private meta: JobMeta | (() => JobMeta) | null = null;
  private recorder: JobRecorder | null = null;
  private lastStatus: JobStatus | null = null;
  private readonly logs: TappedLine[] = [];
  private readonly untap: () => void;
  private migrate: MigrateView | null = null;

  constructor(readonly command: 'alter' | 'revert' | 'migrate') {
    this.untap = addLogTap((line) => {
      this.logs.push(line);
      if (this.logs.length > LOG_LINES) this.logs.shift();
    });
  }

  /** Shows `job` from now on (its history starts now); `migrate` attaches each engine job. */
  attach(job: DashboardJob, meta: JobMeta | (() => JobMeta)): JobRecorder {
    this.recorder?.stop();
    this.job = job;
    this.meta = meta;
    this.recorder = new JobRecorder(job).start();
    return this.recorder;
  }

  /** The job ended: its last status and history stay on the page, its controls go. */
  detach(job: DashboardJob): void {
    if (this.job !== job) return;
    this.recorder?.stop();
    this.lastStatus = job.status();
    this.job = null;
  }

  get current(): DashboardJob | null {
    return this.job;
  }

  get jobRecorder(): JobRecorder | null {
    return this.recorder;
  }

  /** `migrate`: a progress line of the runner (`file.sql: expand`, ...). */
  migrateProgress(action: string, line: string): void {
    const m = PHASE_LINE.exec(line.trim());
    this.migrate ??= { action, migration: null, phase: null, lastLine: null, finished: false };
    if (m) {
      this.migrate.migration = m[1]!;
      this.migrate.phase = m[2]!;
    }
    this.migrate.lastLine = line.trim();
  }

  migrateFinished(): void {
    if (this.migrate) this.migrate.finished = true;
  }

  close(): void {
    this.recorder?.stop();
    this.untap();
  }

  view(authorized: boolean) {
    const status = this.job?.status() ?? this.lastStatus;
    const settings = this.job
      ? {
          chunkSize: this.job.chunkSizer.size,
          maxLagSeconds: this.job.liveSettings.maxLagSeconds,
          niceRatio: this.job.liveSettings.niceRatio ?? 0,
          copySnapshotMaxSeconds: this.job.liveSettings.copySnapshotMaxSeconds ?? null,
          maxSlotLagBytes: this.job.liveSettings.maxSlotLagBytes ?? null,
          maxLoad: Object.fromEntries(this.job.liveSettings.maxLoad),
        }
      : null;
    return {
      command: this.command,
      authorized,
      now: Date.now(),
      running: this.job !== null,
      meta: typeof this.meta === 'function' ? this.meta() : this.meta,
      migrate: this.migrate,
      status: status ? (authorized ? status : publicStatus(status)) : null,
      postponed: this.job ? this.job.controls.cutoverPostponed() : null,
      manualThrottle: this.job ? this.job.controls.manualThrottle : null,
      settings,
      job: this.recorder?.view() ?? null,
      logs: authorized ? [...this.logs] : null,
    };
  }
}
