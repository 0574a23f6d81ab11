// --kill-blockers-after: the sessions that keep the cut-over from its lock, ended once
// they have held it up long enough (off by default). When to end whom is timing
// policy, the same for every dialect; a dialect only says who blocks its lock request
// and how a session is ended (LockBlockers in dialect.ts).

import type { BlockerPolicy, LockBlockers } from '../dialects/dialect.js';
import type { Logger } from '../util/logger.js';

/** How often the blockers are looked for once the threshold has passed. */
const POLL_MS = 100;

/**
 * One job's cut-over: while a swap's lock request waits, once the sessions blocking it
 * have held us up for `afterMs` (counted across the job's attempts, so a threshold
 * longer than the lock timeout still takes effect), end them, logging each one with its
 * statement redacted. Only sessions whose transaction (or statement) is at least that
 * old are ended, so an application write that merely happens to be running is never
 * killed; shadowshift's own sessions are never ended.
 */
export class BlockerKiller implements BlockerPolicy {
  /** Waited for the lock over this job's attempts so far. */
  private waitedMs = 0;

  constructor(private readonly opts: { afterMs: number; table: string; log: Logger }) {}

  watch(blockers: LockBlockers): { stop(): Promise<void> } {
    const { table, log } = this.opts;
    const afterMs = Math.max(0, this.opts.afterMs);
    const waitedBefore = this.waitedMs;
    const started = Date.now();
    let stopped = false;
    let wake: (() => void) | null = null;
    const sleep = (ms: number) =>
      new Promise<void>((resolve) => {
        const t = setTimeout(done, ms);
        function done() {
          clearTimeout(t);
          wake = null;
          resolve();
        }
        wake = done;
      });
    // Each session is logged (and ended) once an attempt, however often it is seen.
    const seen = new Set<number>();
    const run = async () => {
      await sleep(Math.max(0, afterMs - waitedBefore));
      try {
        while (!stopped) {
          const found = await blockers.find();
          if (stopped) break;
          for (const b of found) {
            // The lock may have been granted while the last one was ended: the rest block nothing now.
            if (stopped) break;
            if (seen.has(b.session) || b.ageSeconds === null || b.ageSeconds * 1000 < afterMs) continue;
            seen.add(b.session);
            const who = { [blockers.sessionLabel]: b.session, user: b.user, application: b.application, state: b.state, xactStart: b.since, query: b.query };
            if (b.ours) {
              log.warn({ table, ...who }, 'a shadowshift connection blocks the cut-over; not ending it');
              continue;
            }
            const ended = await blockers.end(b.session);
            log.warn({ table, blockedMs: waitedBefore + Date.now() - started, ended, ...who }, '--kill-blockers-after: ended a session that blocked the cut-over');
          }
          await sleep(POLL_MS);
        }
      } catch (err) {
        if (!stopped) log.warn({ err: (err as Error).message }, '--kill-blockers-after: could not look for or end blocking sessions');
      }
    };
    const running = run();
    return {
      stop: async () => {
        stopped = true;
        (wake as (() => void) | null)?.();
        await running;
        this.waitedMs = waitedBefore + Date.now() - started;
      },
    };
  }
}
