// Small helpers to print benchmark results in the FIELD-NOTES columns.

import type { WorkloadStats } from '../../test/support/workload/index.js';

export function median(values: number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function ms(v: number): string {
  return v >= 1000 ? `${(v / 1000).toFixed(1)} s` : `${Math.round(v)} ms`;
}

/** One line: achieved rate, p50/p99 from scheduled start, longest write stall, errors by code. */
export function formatStats(s: WorkloadStats): string {
  const errs = Object.entries(s.errorsByKey)
    .map(([k, n]) => `${k}×${n}`)
    .join(' ');
  return [
    `${s.opsPerSec.toFixed(0)}/${s.targetRate} ops/s`,
    `writes ${s.writesPerSec.toFixed(0)}/s`,
    `p50 ${ms(s.latency.p50)}`,
    `p99 ${ms(s.latency.p99)}`,
    `max write ${ms(s.maxWriteLatencyMs)}`,
    `longest write stall ${ms(s.longestWriteStallMs)}`,
    `errors ${s.errors}${errs ? ` (${errs})` : ''}`,
    ...(s.unknownOutcomes ? [`unknown outcomes ${s.unknownOutcomes}`] : []),
    ...(s.anomalies ? [`ANOMALIES ${s.anomalies}`] : []),
    ...(s.readMismatches ? [`READ MISMATCHES ${s.readMismatches}`] : []),
    ...(s.backlogAtStop ? [`backlog at stop ${s.backlogAtStop}`] : []),
  ].join(', ');
}

/** A markdown table from rows of cells. */
export function markdownTable(header: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}
