// The model holds, per id, the row that must be there after every
// ACKNOWLEDGED write: seed rows are a pure function of the id (seedRow), so
// only changed ids are stored.

import { createHash } from 'node:crypto';
import { formatCents, formatMicros, STATUSES, type WorkloadRow } from './schema.js';

const SEED_EPOCH_MS = Date.UTC(2024, 0, 1);

/** The seed row for id (1..N): the same function the seeding SQL (seed.ts) computes server-side. */
export function seedRow(id: number): WorkloadRow {
  const n = BigInt(id);
  const cents = (n * 37n) % 100000000n;
  const micros = n * 1000000n + ((n * 7919n) % 1000000n);
  const h1 = createHash('sha256').update(`p${id}`).digest('hex');
  const h2 = createHash('sha256').update(`q${id}`).digest('hex');
  return {
    id: String(id),
    user_id: String(((n * 7919n) % 1000000n) + 1n),
    amount: formatCents(cents),
    status: STATUSES[Number(n % 5n)]!,
    note: n % 10n === 0n ? null : `seed ${id} ünïcødé €`,
    created_at: formatMicros(BigInt(SEED_EPOCH_MS) * 1000n + micros),
    payload: (h1.repeat(6) + h2.slice(0, 16)).toUpperCase(),
  };
}

/**
 * What one id must look like in the table:
 *  - present: exactly this row;
 *  - absent: no row;
 *  - unknown: an operation on it failed without telling whether it committed
 *    (connection lost, client timeout). Any candidate is acceptable (null =
 *    no row). The workload never touches the id again.
 */
export type ModelState =
  | { kind: 'present'; row: WorkloadRow }
  | { kind: 'absent' }
  | { kind: 'unknown'; candidates: Array<WorkloadRow | null> };

const ABSENT: ModelState = Object.freeze({ kind: 'absent' }) as ModelState;

export class WorkloadModel {
  private readonly overrides = new Map<number, ModelState>();

  /** ids 1..seedRows start as seedRow(id); every other id starts absent. */
  constructor(readonly seedRows = 0) {}

  get(id: number): ModelState {
    const o = this.overrides.get(id);
    if (o) return o;
    if (Number.isInteger(id) && id >= 1 && id <= this.seedRows) return { kind: 'present', row: seedRow(id) };
    return ABSENT;
  }

  /** The kind of state of id, without building the row. */
  kindOf(id: number): ModelState['kind'] {
    const o = this.overrides.get(id);
    if (o) return o.kind;
    return Number.isInteger(id) && id >= 1 && id <= this.seedRows ? 'present' : 'absent';
  }

  setPresent(row: WorkloadRow): void {
    this.overrides.set(Number(row.id), { kind: 'present', row });
  }

  setAbsent(id: number): void {
    this.overrides.set(id, ABSENT);
  }

  setUnknown(id: number, candidates: Array<WorkloadRow | null>): void {
    this.overrides.set(id, { kind: 'unknown', candidates });
  }

  /** Ids whose state is unknown, ascending. */
  unknownIds(): number[] {
    return [...this.overrides].filter(([, s]) => s.kind === 'unknown').map(([id]) => id).sort((a, b) => a - b);
  }

  /** Ascending ids that are present or unknown (i.e. may have a row). */
  *candidateIds(): Generator<number> {
    const extra = [...this.overrides.keys()].sort((a, b) => a - b);
    let j = 0;
    let i = 1;
    for (;;) {
      const nextSeed = i <= this.seedRows ? i : Infinity;
      const nextExtra = j < extra.length ? extra[j]! : Infinity;
      if (nextSeed === Infinity && nextExtra === Infinity) return;
      let id: number;
      if (nextSeed < nextExtra) {
        id = nextSeed;
        i++;
      } else {
        id = nextExtra;
        j++;
        if (nextSeed === nextExtra) i++;
      }
      if (this.kindOf(id) !== 'absent') yield id;
    }
  }

  /** Ids that must have a row (state present), ascending. */
  *presentIds(): Generator<number> {
    for (const id of this.candidateIds()) if (this.kindOf(id) === 'present') yield id;
  }

  /** Number of rows that must exist, and the number of unknown ids. */
  counts(): { present: number; unknown: number } {
    let present = this.seedRows;
    let unknown = 0;
    for (const [id, s] of this.overrides) {
      const seeded = id >= 1 && id <= this.seedRows && Number.isInteger(id);
      if (s.kind === 'present' && !seeded) present++;
      if (s.kind !== 'present' && seeded) present--;
      if (s.kind === 'unknown') unknown++;
    }
    return { present, unknown };
  }

  /** Largest id the model has ever seen (seed range included). */
  maxId(): number {
    let max = this.seedRows;
    for (const id of this.overrides.keys()) if (id > max) max = id;
    return max;
  }

  /** Ids with state absent that were once written (deleted, or moved away by a PK change). */
  absentIds(): number[] {
    return [...this.overrides].filter(([, s]) => s.kind === 'absent').map(([id]) => id);
  }
}
