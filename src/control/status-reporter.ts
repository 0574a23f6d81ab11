// Shows a running job's progress: on a terminal a live bar (cli-progress), off
// a terminal one JSON status line every --status-interval seconds, as a pino
// log line so it can be parsed like the rest of the output.

import cliProgress from 'cli-progress';
import type { Logger } from '../util/logger.js';
import type { JobStatus } from '../engine/job-state.js';
import { percent } from './progress.js';
import { describeWait } from '../engine/wait-watcher.js';

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

/** The phase in words: `building indexes`, `cutting over`, ... */
export function phaseLabel(s: Pick<JobStatus, 'phase' | 'state'>): string {
  return (s.phase ?? s.state).replace(/-/g, ' ');
}

/**
 * The progress line off a terminal. Percent, rate and ETA belong to the copy: in any
 * other phase the line names that phase and the copy's percent only as what was copied.
 * A wait outside the job (a lock, old snapshots, a throttle signal) follows, with whom.
 */
export function statusLine(s: JobStatus): string {
  const pct = percent(s.rowsCopied, s.rowsEstimated);
  const head =
    s.phase === 'copying'
      ? `copying ${pct}%${s.rowsPerSecond === null ? '' : `, ${Math.round(s.rowsPerSecond)} rows/s`}, ETA ${formatEta(s.etaSeconds)}`
      : `${phaseLabel(s)} (copied ${pct}%)`;
  return `${head}, backlog ${s.backlog}${s.waitingFor ? `; ${describeWait(s.waitingFor)}` : ''}`;
}

export function startStatusReporter(job: StatusSource, options: { tty: boolean; intervalSeconds: number; log: Logger }): () => void {
  if (options.tty) {
    const bar = new cliProgress.SingleBar(
      {
        format: '{state} |{bar}| {percentage}% {value}/{total} rows | {rate} rows/s | ETA {etaText} | lag {lag} | {throttle}{repairs}',
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
        state: phaseLabel(s).padEnd(16),
        rate: s.rowsPerSecond === null ? '--' : Math.round(s.rowsPerSecond),
        etaText: formatEta(s.etaSeconds),
        lag: s.lagSeconds === null ? '--' : `${s.lagSeconds.toFixed(1)}s`,
        throttle: s.waitingFor ? describeWait(s.waitingFor) : s.throttled ? `throttled (${s.throttled})` : 'running',
        repairs: s.repairedChunks ? ` | checksum REPAIRED ${s.repairedChunks} chunk(s): report it` : '',
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
    options.log.info({ status: s, percent: percent(s.rowsCopied, s.rowsEstimated) }, statusLine(s));
  };
  const timer = setInterval(report, options.intervalSeconds * 1000);
  timer.unref();
  // A last line when the job ends, so its final counts (repairs above all) are in the log even when it failed.
  return () => {
    clearInterval(timer);
    report();
  };
}
