// Shows a running job's progress: on a terminal a live bar (cli-progress), off
// a terminal one JSON status line every --status-interval seconds, as a pino
// log line so it can be parsed like the rest of the output.

import cliProgress from 'cli-progress';
import type { Logger } from '../util/logger.js';
import type { JobStatus } from '../engine/job-state.js';
import { percent } from './progress.js';

export interface StatusSource {
  status(): JobStatus;
}

function formatEta(seconds: number | null): string {
  if (seconds === null) return '--';
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : m > 0 ? `${m}m${String(s).padStart(2, '0')}s` : `${s}s`;
}

export function startStatusReporter(job: StatusSource, options: { tty: boolean; intervalSeconds: number; log: Logger }): () => void {
  if (options.tty) {
    const bar = new cliProgress.SingleBar(
      {
        format: '{state} |{bar}| {percentage}% {value}/{total} rows | {rate} rows/s | ETA {etaText} | lag {lag} | {throttle}',
        hideCursor: true,
        stream: process.stderr,
        etaBuffer: 1,
      },
      cliProgress.Presets.shades_classic,
    );
    let started = false;
    const render = () => {
      const s = job.status();
      const payload = {
        state: s.state.padEnd(12),
        rate: s.rowsPerSecond === null ? '--' : Math.round(s.rowsPerSecond),
        etaText: formatEta(s.etaSeconds),
        lag: s.lagSeconds === null ? '--' : `${s.lagSeconds.toFixed(1)}s`,
        throttle: s.throttled ? `throttled (${s.throttled})` : 'running',
      };
      const total = Math.max(1, s.rowsEstimated);
      if (!started) {
        bar.start(total, Math.min(s.rowsCopied, total), payload);
        started = true;
      } else {
        bar.setTotal(total);
        bar.update(Math.min(s.rowsCopied, total), payload);
      }
    };
    const timer = setInterval(render, 500);
    timer.unref();
    return () => {
      clearInterval(timer);
      if (started) {
        render();
        bar.stop();
      }
    };
  }
  const report = () => {
    const s = job.status();
    const pct = percent(s.rowsCopied, s.rowsEstimated);
    const rate = s.rowsPerSecond === null ? '' : `, ${Math.round(s.rowsPerSecond)} rows/s`;
    options.log.info({ status: s, percent: pct }, `${s.state} ${pct}%${rate}, ETA ${formatEta(s.etaSeconds)}, backlog ${s.backlog}`);
  };
  const timer = setInterval(report, options.intervalSeconds * 1000);
  timer.unref();
  return () => clearInterval(timer);
}
