// Prometheus metrics for one job (prom-client), read from the job's status when
// scraped, so nothing on the hot path pays for them.

import { createServer, type Server } from 'node:http';
import { listen, parseListenAddress, type Listening } from './listen.js';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { JobStatus } from '../engine/job-state.js';
import { JOB_STATES } from '../engine/job-state.js';

export interface MetricsSource {
  status(): JobStatus;
  /** Seconds the copy spent throttled, by signal name. */
  throttledSeconds(): Map<string, number>;
  replicaLagSeconds(): number | null;
}

export class JobMetrics {
  readonly registry = new Registry();
  readonly chunkSeconds: Histogram;
  readonly cutoverAttempts: Counter;
  readonly cutoverBlockedSeconds: Histogram;
  readonly errors: Counter;

  constructor(source: MetricsSource) {
    const r = this.registry;
    const gauge = (name: string, help: string, read: (s: JobStatus) => number | null) =>
      new Gauge({
        name,
        help,
        registers: [r],
        collect() {
          const v = read(source.status());
          if (v !== null) this.set(v);
        },
      });
    gauge('shadowshift_rows_copied_total', 'Rows copied into the shadow table so far.', (s) => s.rowsCopied);
    gauge('shadowshift_rows_estimated', 'Estimated rows in the original table.', (s) => s.rowsEstimated);
    gauge('shadowshift_events_applied_total', 'Change-stream events applied to the shadow table.', (s) => s.eventsApplied);
    gauge('shadowshift_backlog_events', 'Change-stream events received and not yet applied.', (s) => s.backlog);
    gauge('shadowshift_stream_lag_seconds', 'Seconds between a change committing and it being received.', (s) => s.lagSeconds);
    gauge('shadowshift_replica_lag_seconds', 'Largest replica lag seen by the throttler.', () => source.replicaLagSeconds());
    gauge('shadowshift_throttled', '1 while the copy is throttled.', (s) => (s.throttled ? 1 : 0));
    gauge('shadowshift_eta_seconds', 'Estimated seconds until the copy is done.', (s) => s.etaSeconds);
    // Alert on anything above 0: a repaired chunk means the copy or the stream lost a change.
    gauge('shadowshift_checksum_repaired_chunks', 'Chunks the checksum found different and recopied (this process); anything above 0 is an engine bug.', (s) => s.repairedChunks);
    new Gauge({
      name: 'shadowshift_phase',
      help: '1 for the job state the job is in.',
      labelNames: ['state'],
      registers: [r],
      collect() {
        const state = source.status().state;
        for (const s of JOB_STATES) this.set({ state: s }, s === state ? 1 : 0);
      },
    });
    new Gauge({
      name: 'shadowshift_throttled_seconds_total',
      help: 'Seconds the copy was throttled, by reason.',
      labelNames: ['reason'],
      registers: [r],
      collect() {
        for (const [reason, seconds] of source.throttledSeconds()) this.set({ reason }, seconds);
      },
    });
    this.chunkSeconds = new Histogram({
      name: 'shadowshift_chunk_duration_seconds',
      help: 'Time to copy one chunk.',
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5],
      registers: [r],
    });
    this.cutoverAttempts = new Counter({ name: 'shadowshift_cutover_attempts_total', help: 'Cut-over attempts.', labelNames: ['result'], registers: [r] });
    this.cutoverBlockedSeconds = new Histogram({
      name: 'shadowshift_cutover_blocked_seconds',
      help: 'Time writes were blocked by one cut-over attempt.',
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10],
      registers: [r],
    });
    this.errors = new Counter({ name: 'shadowshift_errors_total', help: 'Errors, retried or fatal.', labelNames: ['where'], registers: [r] });
  }
}

/** Serves /metrics on host:port; binds loopback unless told otherwise. */
export async function serveMetrics(address: string, metrics: JobMetrics): Promise<Listening> {
  const { host, port } = parseListenAddress(address, '--metrics');
  const server: Server = createServer(async (req, res) => {
    if (req.method === 'GET' && req.url?.split('?')[0] === '/metrics') {
      res.setHeader('Content-Type', metrics.registry.contentType);
      res.end(await metrics.registry.metrics());
      return;
    }
    res.statusCode = 404;
    res.end('not found: try GET /metrics\n');
  });
  return listen(server, host, port);
}
