// How a job's options become its throttle: the settings an operator can change while it
// runs (`ctl`, HTTP), and the signals started once the job's artefacts have names (the
// probes read the job's own slot). The policy itself is control/throttle-signals.ts.

import type { ArtefactNames, DialectSession } from '../dialects/dialect.js';
import type { JobControls } from '../control/job-controls.js';
import { createJobThrottle, needsProbes, type JobThrottle, type LiveThrottleSettings } from '../control/throttle-signals.js';
import type { Logger } from '../util/logger.js';
import type { AlterJobOptions } from './job.js';

/**
 * PostgreSQL: WAL the job's slot may hold back before the copy pauses (`--max-slot-lag`).
 * A running job keeps its slot near the server's position (it acknowledges what it applied,
 * and what the server sent while nothing was pending), so only a stalled apply gets here,
 * or a long copy at the stream's snapshot, which applies nothing: reaching the limit ends
 * that phase (copy-loop.ts).
 */
export const DEFAULT_MAX_SLOT_LAG_BYTES = 1024 ** 3;

type ThrottleOptions = Pick<AlterJobOptions, 'throttle' | 'maxLagSeconds' | 'maxLoad' | 'maxSlotLagBytes' | 'copySnapshotMaxSeconds' | 'copyNiceRatio'>;

export function liveThrottleSettings(options: ThrottleOptions): LiveThrottleSettings {
  return {
    maxLagSeconds: options.maxLagSeconds ?? 1.5,
    maxLoad: options.maxLoad ?? new Map(),
    maxSlotLagBytes: options.maxSlotLagBytes,
    copySnapshotMaxSeconds: options.copySnapshotMaxSeconds,
    niceRatio: options.copyNiceRatio,
  };
}

export function startJobThrottle(a: {
  session: DialectSession;
  names: ArtefactNames;
  options: ThrottleOptions;
  live: LiveThrottleSettings;
  controls: JobControls;
  log: Logger;
}): JobThrottle {
  // Bounded also without the flag: what the stream holds back fills the server's disk.
  if (a.session.streamHoldsServerLog && a.live.maxSlotLagBytes === undefined) a.live.maxSlotLagBytes = DEFAULT_MAX_SLOT_LAG_BYTES;
  const wanted = needsProbes(a.options.throttle ?? {}, a.live);
  const probes = wanted ? a.session.openProbes(a.names) : undefined;
  return createJobThrottle({ config: a.options.throttle ?? {}, live: a.live, controls: a.controls, probes, log: a.log });
}
