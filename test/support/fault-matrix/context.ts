// What a phase and a fault of one case work with.

import type { Db, Dialect } from '../db.js';
import type { Holder } from './holders.js';
import type { JobFiles, JobRun } from './job-run.js';
import type { OwnedServer } from './owned-server.js';

export interface CaseContext {
  dialect: Dialect;
  server: OwnedServer;
  /** Superuser URL of the case's database (workload, holders, checks). */
  adminUrl: string;
  files: JobFiles;
  /** The job's process; a fault may replace it (a resume). */
  job: JobRun;
  /** Starts another `alter` process of the same job with extra flags (e.g. --resume) and makes it `job`. */
  startJob(extraArgs: string[]): JobRun;
  /** A live superuser connection to the case's database (opened again after a restart). */
  sql(): Promise<Db>;
  /** What holds the phase open; released after the fault. */
  holders: Holder[];
  /** Writes the application has had acknowledged so far. */
  appWrites(): number;
}

/** A phase of the job, reached and held open deterministically. */
export interface Phase {
  name: string;
  dialects: Dialect[];
  /** Flags for this phase (chunk size and the like). */
  args: string[];
  /** Before the job starts (flag files, gates, old snapshots). */
  before?(ctx: CaseContext): Promise<void>;
  /** Returns once the job is in the phase, held there until release(). */
  reach(ctx: CaseContext): Promise<void>;
  /** Lets the job go on after the fault. */
  release(ctx: CaseContext): Promise<void>;
  /** The cut-over has begun: an abort may legitimately end with the swap done. */
  inCutover: boolean;
}

export type Outcome = 'applied' | 'untouched';

/** One fault kind: a small function. */
export interface Fault {
  name: string;
  deliver(ctx: CaseContext): Promise<void>;
  /** The outcomes this fault may end with in `phase`. */
  expected(phase: Phase): Outcome[];
  /** The application's connections fail too (a server restart): only connection errors are allowed then. */
  hitsApplication?: boolean;
}
