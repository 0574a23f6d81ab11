// Checksum before cut-over (Spirit's approach): compare original and shadow
// over one consistent snapshot (the whole tables in one pass, and key range by
// key range only when that pass differs), recopy the ranges that differ, check
// those again, then the whole tables again. Differences that do not go away
// fail the job before the cut-over, naming the key range.
//
// The snapshot is exact (the stream is drained under the lock it is taken in),
// so a difference is never expected: it means the copy or the stream lost a
// change. The repair saves this job, but it hides an engine bug unless it is
// reported, so every repair is a warning and is counted (invariant 10).

import type { Checksummer, CopyPlan, KeyRange, RowCopier, Value } from '../dialects/dialect.js';
import { CutoverAttemptError, ShadowshiftError } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import { sameKey } from './keys.js';

export interface VerifyOptions {
  checksummer: Checksummer;
  copier: RowCopier;
  plan: CopyPlan;
  chunkSize: number;
  lockTimeoutMs: number;
  /** Writes a marker and applies the stream up to it (the engine's pump). */
  drainUnderLock: () => Promise<void>;
  log: Logger;
  /** Rounds of recopy-and-check before giving up. */
  maxRounds?: number;
  /** Between rounds: let the engine apply the stream. */
  between?: () => Promise<void>;
  /** Tests only: after each compared range, the snapshot still open. */
  afterCompare?: (ranges: number) => Promise<void>;
  /** Totals over every run of the job, updated as they happen so a status read mid-run (or after a failure) sees them. */
  tally?: ChecksumTally;
}

export interface VerifyResult {
  chunks: number;
  repaired: number;
}

/** What a job's result says about its checksums. */
export interface ChecksumSummary {
  /** False with --no-checksum, on a dialect without one, or when the job ended before the copy did. */
  ran: boolean;
  /** Completed runs: the one after the copy and the periodic ones while the cut-over was postponed. */
  runs: number;
  /** Chunks compared over every run (rechecks of repaired chunks not counted). */
  chunksCompared: number;
}

/** One job run's checksum totals; a resumed job starts again from zero. */
export class ChecksumTally {
  runs = 0;
  chunksCompared = 0;
  /** Every recopy counts: a chunk recopied in two rounds counts twice. */
  repairedChunks = 0;

  summary(): ChecksumSummary {
    return { ran: this.runs > 0, runs: this.runs, chunksCompared: this.chunksCompared };
  }
}

interface Difference {
  range: KeyRange;
  originalRows: number;
  shadowRows: number;
}

function describe(range: KeyRange): string {
  const show = (k: Value[] | null, open: string) => (k === null ? open : `(${k.map((v) => (Buffer.isBuffer(v) ? `0x${v.toString('hex')}` : String(v))).join(', ')})`);
  return `key range ${show(range.after, '-inf')} < key <= ${show(range.upTo, '+inf')}`;
}

/**
 * Cut at the original's keys as read now (outside the snapshot), but open at both
 * ends: the shadow may hold rows outside the original's bounds (a delete of the
 * largest keys the stream lost, a stray row), and the original's bounds as read
 * now need not be the snapshot's. Closed ends would compare neither. An empty
 * original is one range over everything, for the same reason.
 */
async function rangesOf(copier: RowCopier, plan: CopyPlan, size: number): Promise<KeyRange[]> {
  const bounds = await copier.keyBounds(plan);
  if (!bounds) return [{ after: null, upTo: null }];
  const ranges: KeyRange[] = [];
  let after: Value[] | null = null;
  for (;;) {
    const upTo = await copier.chunkEnd(plan, after, size, bounds.max);
    if (sameKey(upTo, bounds.max)) {
      ranges.push({ after, upTo: null });
      return ranges;
    }
    ranges.push({ after, upTo });
    after = upTo;
  }
}

const EVERYTHING: KeyRange = { after: null, upTo: null };

const OPEN_ATTEMPTS = 5;

/** The snapshot needs a brief write lock; like the cut-over, a busy table means wait and try again. */
async function openView(options: VerifyOptions) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await options.checksummer.open(options.plan, { lockTimeoutMs: options.lockTimeoutMs, drainUnderLock: options.drainUnderLock });
    } catch (err) {
      if (!(err instanceof CutoverAttemptError) || attempt >= OPEN_ATTEMPTS) throw err;
      options.log.warn({ attempt, reason: err.message }, 'checksum: could not take the snapshot; retrying');
      await options.between?.();
      await new Promise((r) => setTimeout(r, 250 * 2 ** attempt));
    }
  }
}

/** Where a run's time went: taking the snapshot (the lock and the drain under it), and comparing. */
interface Spent {
  snapshotMs: number;
  compareMs: number;
}

/** What one snapshot's compare found, and how many chunks (key ranges, or the whole tables as one) it compared. */
interface Compared {
  bad: Difference[];
  chunks: number;
}

/**
 * Compares `ranges`, or with 'everything' the whole tables: in one pass (one full scan
 * per side), then, only if that differs, range by range to find where. Cutting the
 * ranges costs a walk over the key index, and on PostgreSQL a range is read through
 * the key index where the pass is a sequential scan. The ranges are cut while the
 * snapshot is open; that is as good as before it, as they are open at both ends.
 */
async function differing(options: VerifyOptions, ranges: KeyRange[] | 'everything', spent: Spent): Promise<Compared> {
  const opened = Date.now();
  const view = await openView(options);
  const comparing = Date.now();
  spent.snapshotMs += comparing - opened;
  const found: Compared = { bad: [], chunks: 0 };
  try {
    if (ranges === 'everything') {
      const whole = await view.compare(EVERYTHING);
      found.chunks++;
      await options.afterCompare?.(found.chunks);
      if (whole.same) return found;
    }
    for (const range of ranges === 'everything' ? await rangesOf(options.copier, options.plan, options.chunkSize) : ranges) {
      const r = await view.compare(range);
      if (!r.same) found.bad.push({ range, originalRows: r.originalRows, shadowRows: r.shadowRows });
      found.chunks++;
      await options.afterCompare?.(found.chunks);
    }
  } finally {
    await view.close();
    spent.compareMs += Date.now() - comparing;
  }
  return found;
}

function warnRepaired(log: Logger, d: Difference, round: number): void {
  const range = describe(d.range);
  log.warn(
    { range, originalRows: d.originalRows, shadowRows: d.shadowRows, round },
    `checksum: repaired ${range} (original ${d.originalRows} rows, shadow ${d.shadowRows} rows) by copying it again. ` +
      'A repair means the change stream or the copy missed a change (unless something else writes to the shadow table): a shadowshift bug, please report it with this log',
  );
}

export async function verifyShadow(options: VerifyOptions): Promise<VerifyResult> {
  const started = Date.now();
  const spent: Spent = { snapshotMs: 0, compareMs: 0 };
  const first = await differing(options, 'everything', spent);
  let bad = first.bad;
  if (options.tally) options.tally.chunksCompared += first.chunks;
  let repaired = 0;
  const maxRounds = options.maxRounds ?? 3;
  for (let round = 1; bad.length > 0; round++) {
    if (round > maxRounds) {
      throw new ShadowshiftError(
        `checksum: the shadow still differs from the original after ${maxRounds} repairs in ${bad.map((d) => describe(d.range)).join('; ')}. ` +
          'The original is untouched and the cut-over did not happen. Something else writes to the shadow, or a conversion in the ALTER changes values; ' +
          'investigate, or run with --no-checksum if the difference is expected',
      );
    }
    for (const d of bad) {
      await options.checksummer.recopy(options.plan, d.range);
      repaired++;
      if (options.tally) options.tally.repairedChunks++;
      warnRepaired(options.log, d, round);
    }
    await options.between?.();
    bad = (await differing(options, bad.map((d) => d.range), spent)).bad;
    // The repaired ranges now match; the whole tables must too. A recopy deletes the
    // shadow's rows by a key condition, and a row it removed outside its range (a bug,
    // or a shadow that orders its keys otherwise) would pass a check of that range.
    if (bad.length === 0) bad = (await differing(options, 'everything', spent)).bad;
  }
  if (options.tally) options.tally.runs++;
  const timing = { seconds: (Date.now() - started) / 1000, snapshotSeconds: spent.snapshotMs / 1000, compareSeconds: spent.compareMs / 1000 };
  if (repaired) options.log.warn({ chunks: first.chunks, repaired, ...timing }, `checksum: original and shadow match after ${repaired} repair(s); see the warnings above and report them`);
  else options.log.info({ chunks: first.chunks, repaired, ...timing }, 'checksum: original and shadow match');
  return { chunks: first.chunks, repaired };
}
