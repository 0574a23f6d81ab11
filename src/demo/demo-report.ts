// What the demo found, as one object (`--json`) and as the summary a DBA reads.

import type { DemoEngine } from './demo-db.js';
import type { TableCheck } from './orders-table.js';
import type { PhaseStats } from './demo-workload.js';

export interface AppWindow {
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  errors: number;
  errorsByCode: Record<string, number>;
  ops: number;
  longestWriteStallMs: number;
  seconds: number;
}

export interface DemoReport {
  engine: DemoEngine;
  server: string;
  rows: number;
  /** The ALTER TABLE clauses. */
  alter: string;
  /** The `shadowshift alter` command the demo ran (same code path). */
  command: string;
  alterSeconds: number;
  /** Seconds the job spent in each state, in the order entered. */
  states: Record<string, number>;
  rowsCopied: number;
  /** Rows copied per second of the copying state. */
  rowsPerSecond: number;
  eventsApplied: number;
  cutoverAttempts: number;
  /** How long the cut-over held the application's writes (lock request to release). */
  cutoverLockedMs: number;
  checksum: { status: 'match' | 'off'; chunks: number; repaired: number };
  /** The final table equals the application's own record of its acknowledged writes. */
  tableMatches: boolean;
  tableCheck: TableCheck & { acknowledgedWrites: number; readMismatches: number; lostRowWrites: number; unknownOutcomes: number };
  app: { rate: number; connections: number; before: AppWindow; during: AppWindow; after: AppWindow };
  /** The same ALTER run natively on the kept original table, under the same workload; null with --no-compare-native. */
  native: { alterSeconds: number; app: AppWindow } | null;
  /** Wall seconds of each step of the demo. */
  timings: Record<string, number>;
  /** --keep: the database left running. */
  kept: { url: string; tryNext: string; stop: string } | null;
}

export function appWindow(p: PhaseStats | undefined): AppWindow {
  return {
    p50Ms: p?.p50Ms ?? 0,
    p99Ms: p?.p99Ms ?? 0,
    maxMs: p?.maxMs ?? 0,
    errors: p?.errors ?? 0,
    errorsByCode: p?.errorsByCode ?? {},
    ops: p?.ops ?? 0,
    longestWriteStallMs: p?.longestWriteStallMs ?? 0,
    seconds: p?.seconds ?? 0,
  };
}

const int = (n: number) => Math.round(n).toLocaleString('en-US');
const ms = (n: number) => (n >= 1000 ? `${(n / 1000).toFixed(2)} s` : `${n < 10 ? n.toFixed(1) : Math.round(n)} ms`);
const secs = (n: number) => `${n.toFixed(1)} s`;

function errorsText(w: AppWindow): string {
  if (w.errors === 0) return '0';
  return `${w.errors} (${Object.entries(w.errorsByCode).map(([k, v]) => `${k}: ${v}`).join(', ')})`;
}

function row(label: string, w: AppWindow, note = ''): string {
  return `    ${label.padEnd(24)}${ms(w.p50Ms).padStart(9)}${ms(w.p99Ms).padStart(10)}${ms(w.maxMs).padStart(10)}${ms(w.longestWriteStallMs).padStart(14)}   ${errorsText(w)}${note}`;
}

export function formatReport(r: DemoReport): string {
  const lines: string[] = [];
  lines.push('', `shadowshift demo: ${int(r.rows)} rows on ${r.server}`);
  lines.push(`  ALTER TABLE orders ${r.alter}`, `  ran as: ${r.command}`, '');
  lines.push(`  The application (${r.app.rate} ops/s, open loop over ${r.app.connections} connections; latency from each operation's intended start):`);
  lines.push(`    ${''.padEnd(24)}${'p50'.padStart(9)}${'p99'.padStart(10)}${'max'.padStart(10)}${'write stall'.padStart(14)}   errors`);
  lines.push(row(`before (${secs(r.app.before.seconds)})`, r.app.before));
  lines.push(row(`during shadowshift`, r.app.during));
  lines.push(row(`after (${secs(r.app.after.seconds)})`, r.app.after));
  if (r.native) lines.push(row('during native ALTER', r.native.app, `   <- ALTER TABLE itself, ${secs(r.native.alterSeconds)}`));
  lines.push('');
  const states = Object.entries(r.states).map(([s, v]) => `${s} ${secs(v)}`).join(', ');
  lines.push(`  shadowshift:  ${secs(r.alterSeconds)} in all (${states})`);
  lines.push(`                copied ${int(r.rowsCopied)} rows at ${int(r.rowsPerSecond)} rows/s; applied ${int(r.eventsApplied)} changes the application made meanwhile`);
  lines.push(`                cut-over held the application's writes for ${ms(r.cutoverLockedMs)} (${r.cutoverAttempts} attempt${r.cutoverAttempts === 1 ? '' : 's'})`);
  lines.push(
    r.checksum.status === 'match'
      ? `                checksum: original and new table matched (${r.checksum.chunks} chunks${r.checksum.repaired ? `, ${r.checksum.repaired} repaired` : ''})`
      : '                checksum: off',
  );
  if (r.native) {
    lines.push(`  native ALTER: ${secs(r.native.alterSeconds)}, the application's writes stalled up to ${ms(r.native.app.longestWriteStallMs)} (measured on the original table, kept as a backup by the cut-over, under the same workload)`);
  }
  const c = r.tableCheck;
  lines.push('');
  lines.push(
    r.tableMatches
      ? `  The table matches the application's own record of its ${int(c.acknowledgedWrites)} acknowledged writes: ${int(c.tableRows)} rows, none lost, none changed.`
      : `  THE TABLE DOES NOT MATCH the application's record: ${c.differences} difference(s), e.g. ${c.samples.slice(0, 3).join('; ')}`,
  );
  if (c.unknownOutcomes > 0) lines.push(`  (${c.unknownOutcomes} write(s) had an unknown outcome; either outcome was accepted for those rows)`);
  if (c.readMismatches > 0 || c.lostRowWrites > 0) lines.push(`  The application saw ${c.readMismatches} wrong read(s) and ${c.lostRowWrites} write(s) that found no row.`);
  lines.push('', `  demo total ${secs(r.timings.total ?? 0)}: ${Object.entries(r.timings).filter(([k]) => k !== 'total').map(([k, v]) => `${k} ${secs(v)}`).join(', ')}`);
  if (r.kept) {
    lines.push('', '  The database is still running (--keep). Try a change of your own:', `    export SHADOWSHIFT_URL='${r.kept.url}'`, `    ${r.kept.tryNext}`);
    lines.push('  Stop it and remove its files with:', `    ${r.kept.stop}`);
  }
  return lines.join('\n') + '\n';
}
