// Checksum before cut-over (Spirit's approach): compare original and shadow
// chunk by chunk over one consistent snapshot, recopy the chunks that differ,
// and check those again. Differences that do not go away fail the job before
// the cut-over, naming the key range.

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
}

export interface VerifyResult {
  chunks: number;
  repaired: number;
}

function describe(range: KeyRange): string {
  const show = (k: Value[] | null) => (k === null ? '-inf' : `(${k.map((v) => (Buffer.isBuffer(v) ? `0x${v.toString('hex')}` : String(v))).join(', ')})`);
  return `key range ${show(range.after)} < key <= ${show(range.upTo)}`;
}

async function rangesOf(copier: RowCopier, plan: CopyPlan, size: number): Promise<KeyRange[]> {
  const bounds = await copier.keyBounds(plan);
  if (!bounds) return [];
  const ranges: KeyRange[] = [];
  let after: Value[] | null = null;
  for (;;) {
    const upTo = await copier.chunkEnd(plan, after, size, bounds.max);
    ranges.push({ after, upTo });
    if (sameKey(upTo, bounds.max)) break;
    after = upTo;
  }
  return ranges;
}

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

async function differing(options: VerifyOptions, ranges: KeyRange[]): Promise<KeyRange[]> {
  const view = await openView(options);
  const bad: KeyRange[] = [];
  try {
    for (const range of ranges) {
      const r = await view.compare(range);
      if (!r.same) {
        options.log.warn({ range: describe(range), originalRows: r.originalRows, shadowRows: r.shadowRows }, 'checksum: chunk differs');
        bad.push(range);
      }
    }
  } finally {
    await view.close();
  }
  return bad;
}

export async function verifyShadow(options: VerifyOptions): Promise<VerifyResult> {
  // Rows past the last copied key came through the stream only; the final range reaches the current maximum.
  const ranges = await rangesOf(options.copier, options.plan, options.chunkSize);
  let bad = await differing(options, ranges);
  let repaired = 0;
  const maxRounds = options.maxRounds ?? 3;
  for (let round = 1; bad.length > 0; round++) {
    if (round > maxRounds) {
      throw new ShadowshiftError(
        `checksum: the shadow still differs from the original after ${maxRounds} repairs in ${bad.map(describe).join('; ')}. ` +
          'The original is untouched and the cut-over did not happen. Something else writes to the shadow, or a conversion in the ALTER changes values; ' +
          'investigate, or run with --no-checksum if the difference is expected',
      );
    }
    for (const range of bad) {
      await options.checksummer.recopy(options.plan, range);
      repaired++;
    }
    await options.between?.();
    bad = await differing(options, bad);
  }
  options.log.info({ chunks: ranges.length, repaired }, repaired ? `checksum: ${repaired} chunk(s) repaired; original and shadow match` : 'checksum: original and shadow match');
  return { chunks: ranges.length, repaired };
}
