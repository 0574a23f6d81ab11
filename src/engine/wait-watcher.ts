// Says what the job waits for outside itself (status `waitingFor`, the progress line,
// the log). Two kinds of source:
//  - active: while the job runs an operation that can wait on another session (a chunk,
//    the deferred index build, the checksum, a cut-over attempt, the cleanup), and that
//    operation has run longer than GRACE_MS, the dialect is asked every POLL_MS which of
//    the job's sessions waits on whom (DialectSession.observeWaits: pg_blocking_pids and
//    pg_stat_progress_create_index, MariaDB's processlist, metadata_lock_info and InnoDB
//    lock waits). Nothing is polled outside those operations, nor during short ones.
//  - passive: what the job already knows without asking the server: the cut-over's wait
//    for older snapshots (cutover-checks.ts polls it), a throttle signal holding the
//    copy, a postponed cut-over.
// A wait is logged when it starts, every LOG_EVERY_MS while it lasts and when it ends,
// and cleared from the status as soon as the operation ends or the source says it is
// over. The same wait seen again soon after it ended (the next cut-over attempt behind
// the same lock) keeps its original `since`.

import type { ArtefactNames, ObservedWait, SnapshotHolder, TableRef } from '../dialects/dialect.js';
import type { Logger } from '../util/logger.js';
import type { JobControls } from '../control/job-controls.js';
import type { JobPhase, WaitBlocker, WaitingFor, WaitKind } from './job-state.js';

const GRACE_MS = 1000;
const POLL_MS = 1000;
const LOG_EVERY_MS = 15_000;
/** A wait of the same kind and phase starting again within this long continues the one that ended. */
const CONTINUES_WITHIN_MS = 60_000;

export interface Wait {
  what: WaitKind;
  phase: JobPhase;
  detail: string;
  blockers: WaitBlocker[];
  /** When the source knows better than the first look (epoch ms). */
  since?: number;
}

export interface WaitWatcherOptions {
  log: Logger;
  /** The dialect's look at the job's sessions; absent where the dialect has none. */
  observe?: () => Promise<ObservedWait | null>;
  passive: () => Wait | null;
  graceMs?: number;
  pollMs?: number;
  logEveryMs?: number;
}

interface Current extends Wait {
  key: string;
  since: number;
  loggedAt: number;
}

export class WaitWatcher {
  private watching: { phase: JobPhase; since: number; id: number } | null = null;
  private seq = 0;
  /** The last answer of the dialect during the operation being watched. */
  private observed: Wait | null = null;
  private current: Current | null = null;
  private ended: { key: string; since: number; at: number } | null = null;
  private timer: NodeJS.Timeout | null = null;
  private ticking = false;

  constructor(private readonly options: WaitWatcherOptions) {}

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.tick(), this.options.pollMs ?? POLL_MS);
    this.timer.unref();
  }

  /** Stops looking; a wait still shown ends (and is logged as ended). */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.watching = null;
    this.observed = null;
    this.update(null);
  }

  /** Runs `work`, an operation that can wait on other sessions, asking the dialect about its waits while it runs. */
  async during<T>(phase: JobPhase, work: () => Promise<T>): Promise<T> {
    const outer = this.watching;
    this.watching = { phase, since: Date.now(), id: ++this.seq };
    try {
      return await work();
    } finally {
      this.watching = outer;
      this.observed = null;
      this.update(this.options.passive());
    }
  }

  waitingFor(): WaitingFor | null {
    const c = this.current;
    if (!c) return null;
    return {
      what: c.what,
      phase: c.phase,
      since: new Date(c.since).toISOString(),
      seconds: Math.round((Date.now() - c.since) / 100) / 10,
      detail: c.detail,
      blockers: c.blockers,
    };
  }

  /** One look (the timer calls it every POLL_MS). */
  async tick(): Promise<void> {
    if (this.ticking) return;
    this.ticking = true;
    try {
      const w = this.watching;
      if (w && this.options.observe && Date.now() - w.since >= (this.options.graceMs ?? GRACE_MS)) {
        try {
          const seen = await this.options.observe();
          if (this.watching?.id !== w.id) return; // the operation ended meanwhile: its answer is stale
          this.observed = seen && { what: seen.what, phase: w.phase, detail: seen.detail, blockers: seen.blockers };
        } catch (err) {
          // Keep the last answer: a look that fails says nothing about the wait.
          this.options.log.debug({ err: (err as Error).message }, 'could not look at what the job waits for');
        }
      }
      this.update(this.observed ?? this.options.passive());
    } finally {
      this.ticking = false;
    }
  }

  private update(next: Wait | null): void {
    const now = Date.now();
    const key = next ? `${next.what}|${next.phase}` : null;
    const cur = this.current;
    if (cur && cur.key !== key) {
      this.current = null;
      this.ended = { key: cur.key, since: cur.since, at: now };
      const seconds = Math.round((now - cur.since) / 100) / 10;
      this.options.log.info({ waitedFor: cur.what, phase: cur.phase, seconds }, `no longer waiting for ${label(cur.what)} (${cur.phase}) after ${seconds}s`);
    }
    if (!next || !key) return;
    if (this.current) {
      Object.assign(this.current, { detail: next.detail, blockers: next.blockers });
      if (now - this.current.loggedAt >= (this.options.logEveryMs ?? LOG_EVERY_MS)) {
        this.current.loggedAt = now;
        this.options.log.warn({ waitingFor: this.waitingFor() }, `still ${describeWait(this.waitingFor()!)}`);
      }
      return;
    }
    let since = next.since ?? now;
    const again = this.ended !== null && this.ended.key === key && now - this.ended.at <= CONTINUES_WITHIN_MS;
    if (again) since = Math.min(since, this.ended!.since);
    this.current = { ...next, key, since, loggedAt: now };
    const quiet = next.what === 'throttle' || next.what === 'postpone' || next.what === 'replica-lag';
    this.options.log[quiet ? 'info' : 'warn']({ waitingFor: this.waitingFor() }, `${again ? 'again ' : ''}${describeWait(this.waitingFor()!)}`);
  }
}

function label(what: WaitKind): string {
  return what.replace('-', ' ');
}

/** The job's tables, for a dialect that does not say which table a session waits for. */
export function jobTables(ref: TableRef | null, names: ArtefactNames | null): TableRef[] {
  if (!ref) return [];
  return [ref, ...(names ? [{ schema: ref.schema, name: names.shadow }, { schema: ref.schema, name: names.backup }] : [])];
}

/** What the job knows it waits for without asking the server. */
export function passiveWait(args: {
  phase: JobPhase;
  snapshotWait: { seconds: number; sessions: SnapshotHolder[] } | null;
  throttle: { signal: string; reason: string; since: number } | null;
  controls: JobControls;
}): Wait | null {
  const { phase, snapshotWait, throttle, controls } = args;
  if (snapshotWait?.sessions.length) {
    return {
      what: 'old-snapshots',
      phase,
      detail: "the cut-over waits, before its lock, for transactions whose snapshot is older than the new table's rows (--cutover-snapshot-wait)",
      blockers: snapshotWait.sessions.map(({ pid, ...s }) => ({ session: pid, ...s })),
      since: Date.now() - snapshotWait.seconds * 1000,
    };
  }
  if (phase === 'copying' && throttle) {
    return { what: throttle.signal === 'replica-lag' ? 'replica-lag' : 'throttle', phase, detail: `${throttle.signal}: ${throttle.reason}`, blockers: [], since: throttle.since };
  }
  if (phase === 'postponed') {
    const why = controls.postponedByCommand ? 'ctl postpone' : `postpone flag file ${controls.postponeFlagFile} exists`;
    return { what: 'postpone', phase, detail: `cut-over postponed: ${why} (remove it, or run \`shadowshift ctl cutover\`)`, blockers: [] };
  }
  return null;
}

/** One line: what the job waits for, since when, and who holds it up. */
export function describeWait(w: WaitingFor): string {
  const who = w.blockers
    .slice(0, 3)
    .map((b) => `session ${b.session} (${b.ageSeconds === null ? '?' : `${b.ageSeconds}s`}${b.user ? `, ${b.user}` : ''}, ${b.state ?? '?'}: ${b.query})`)
    .join('; ');
  const more = w.blockers.length > 3 ? `; and ${w.blockers.length - 3} more` : '';
  return `waiting ${w.seconds}s (since ${w.since}) for ${label(w.what)} in ${w.phase}: ${w.detail}${who ? `; blocked by ${who}${more}` : ''}`;
}
