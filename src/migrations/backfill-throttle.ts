// The throttle a backfill obeys: the engine's own throttler and signals
// (src/control/throttle-signals.ts), so `migrate up` pauses on exactly what
// `alter` pauses on: flag file, throttle query, --max-load, replica lag (with
// its heartbeat) and --critical-load. Slot lag is left out: a backfill has no
// replication slot.
//
// The load and lag probes come from the dialect, opened once for the run
// (only when a signal needs them) under a pseudo job `migrate-<hex>`: its
// heartbeat row lives in the migrated database/schema, like an engine job's.
// Each backfill starts its own throttler and stops it when it ends, which
// closes the probes and removes the heartbeat row (and the heartbeat table once
// no job uses it).

import { randomBytes } from 'node:crypto';
import type { DialectSession, LoadProbes } from '../dialects/dialect.js';
import { openDialect } from '../dialects/open-dialect.js';
import { JobControls } from '../control/job-controls.js';
import { createJobThrottle, needsProbes, type LiveThrottleSettings, type ThrottleConfig } from '../control/throttle-signals.js';
import type { ConnectionConfig } from '../util/connection-url.js';
import type { Logger } from '../util/logger.js';
import type { BackfillThrottle } from './backfill.js';

export interface RunningBackfillThrottle extends BackfillThrottle {
  /** Set once critical load was crossed twice in a row (without --critical-load-hibernate): stop after the batch in flight. */
  stopReason(): string | null;
  /** Stops polling, closes the probes and removes the heartbeat row. */
  stop(): Promise<void>;
}

export interface BackfillThrottlesOptions {
  connection: ConnectionConfig;
  /** Database (MySQL) or schema (PostgreSQL) of the run: where the heartbeat table goes. */
  schema: string;
  config: Partial<ThrottleConfig>;
  /** Read at every poll: a change (e.g. a threshold removed) takes effect within a poll. */
  live: LiveThrottleSettings;
  log: Logger;
}

export class BackfillThrottles {
  /** The heartbeat key of this run; MySQL keeps it whole, PostgreSQL hashes it into its tag. */
  readonly jobId = `migrate-${randomBytes(4).toString('hex')}`;
  private session: Promise<DialectSession> | null = null;

  constructor(private readonly options: BackfillThrottlesOptions) {}

  /** True when any signal is configured; without one a backfill runs unthrottled. */
  get configured(): boolean {
    const { config, live } = this.options;
    return Boolean(config.flagFile) || needsProbes(config, live);
  }

  /**
   * Starts the throttle for one backfill and waits for its first reading, so the
   * first batch does not run before the signals were read. Undefined when no
   * signal is configured.
   */
  async start(label: string): Promise<RunningBackfillThrottle | undefined> {
    if (!this.configured) return undefined;
    const { config, live } = this.options;
    const probes = needsProbes(config, live) ? await this.openProbes() : undefined;
    let critical: string | null = null;
    const job = createJobThrottle({
      config,
      live,
      controls: new JobControls(),
      probes,
      log: this.options.log.child({ backfill: label }),
      onCritical: (reason) => {
        critical ??= `--critical-load: ${reason}`;
      },
    });
    await job.throttler.firstReading();
    return {
      reason: async () => job.throttler.reason(),
      stopReason: () => critical,
      stop: () => job.stop(),
    };
  }

  private async openProbes(): Promise<LoadProbes> {
    if (!this.session) {
      const opening = openDialect(this.options.connection, this.options.log);
      this.session = opening;
      opening.catch(() => {
        if (this.session === opening) this.session = null;
      });
    }
    const session = await this.session;
    // Artefact names of a pseudo job: only the heartbeat key and schema are used.
    return session.openProbes(session.artefactNames({ schema: this.options.schema, name: 'migrate' }, this.jobId));
  }

  /** Closes the dialect session the probes used (each backfill's probes are closed by its stop()). */
  async close(): Promise<void> {
    const session = this.session;
    this.session = null;
    if (session) await (await session.catch(() => null))?.close().catch(() => undefined);
  }
}
