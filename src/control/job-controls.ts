// What the operator has asked of a running job. The engine reads these at safe
// points; every change wakes whatever the engine is waiting on.

import { existsSync } from 'node:fs';
import { AbortedError } from '../util/errors.js';

export class JobControls {
  manualThrottle = false;
  /** `ctl postpone` holds the cut-over like the flag file does; `ctl cutover` releases both. */
  postponedByCommand = false;
  cutoverRequested = false;
  private abortReason: string | null = null;
  /** Signals keep a resumable job's state (a rescheduled pod comes back with --resume); `ctl abort` does not. */
  keepStateOnAbort = false;
  private waiters = new Set<() => void>();

  constructor(readonly postponeFlagFile?: string) {}

  get abortRequested(): boolean {
    return this.abortReason !== null;
  }

  abort(reason: string, options: { keepState?: boolean } = {}): void {
    if (this.abortReason === null) {
      this.abortReason = reason;
      this.keepStateOnAbort = options.keepState ?? false;
    }
    this.wake();
  }

  private failure: Error | null = null;

  /** Something outside the job's loop (a lost job lock) makes it fail at the next safe point. */
  fail(error: Error): void {
    if (this.failure === null) this.failure = error;
    this.wake();
  }

  throwIfAborted(): void {
    if (this.failure) throw this.failure;
    if (this.abortReason !== null) throw new AbortedError(`job aborted: ${this.abortReason}`);
  }

  /** True while the cut-over must wait: flag file present or `ctl postpone`, unless `ctl cutover` forced it. */
  cutoverPostponed(): boolean {
    if (this.cutoverRequested) return false;
    if (this.postponedByCommand) return true;
    return this.postponeFlagFile !== undefined && existsSync(this.postponeFlagFile);
  }

  wake(): void {
    for (const w of this.waiters) w();
    this.waiters.clear();
  }

  /** Sleeps up to `ms`, returning early when a control changes. */
  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.waiters.add(done);
    });
  }
}
