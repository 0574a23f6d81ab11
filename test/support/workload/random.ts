// The workload's only source of randomness: one seeded PRNG, drawn from in a
// fixed order, so a seed replays the same operations, ids and values.

import { mulberry32 } from '../../../src/util/random.js';
import { formatCents, STATUSES, type WorkloadRow } from './schema.js';

export { mulberry32 };

const NOTE_PIECES = ['order', "it's", 'naïve', 'Ünïcødé', '€', '日本語', '🚀', 'back\\slash', '"quoted"', 'tab\there', '  '];

/** Random column values for written rows. */
export class RandomValues {
  constructor(readonly next: () => number) {}

  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  amount(): string {
    return formatCents(BigInt(this.int(0, 999_999_999)));
  }

  status(): string {
    return STATUSES[this.int(0, STATUSES.length - 1)]!;
  }

  userId(): string {
    return String(this.int(1, 2_000_000_000));
  }

  note(): string | null {
    const r = this.next();
    if (r < 0.1) return null;
    if (r < 0.13) return '';
    const parts: string[] = [];
    const n = this.int(1, 6);
    for (let i = 0; i < n; i++) parts.push(NOTE_PIECES[this.int(0, NOTE_PIECES.length - 1)]!);
    parts.push(String(this.int(0, 1e6)));
    return parts.join(' ').slice(0, 200);
  }

  createdAt(): string {
    const p2 = (n: number) => String(n).padStart(2, '0');
    return `${this.int(2000, 2037)}-${p2(this.int(1, 12))}-${p2(this.int(1, 28))} ${p2(this.int(0, 23))}:${p2(this.int(0, 59))}:${p2(this.int(0, 59))}.${String(this.int(0, 999_999)).padStart(6, '0')}`;
  }

  payload(): string {
    const len = this.int(180, 220);
    const b = Buffer.alloc(len);
    for (let i = 0; i < len; i++) b[i] = this.int(0, 255);
    return b.toString('hex').toUpperCase();
  }

  row(id: number): WorkloadRow {
    return {
      id: String(id),
      user_id: this.userId(),
      amount: this.amount(),
      status: this.status(),
      note: this.note(),
      created_at: this.createdAt(),
      payload: this.payload(),
    };
  }
}
