// The application's own record of what the demo's `orders` table must hold:
// the seed rows (a pure function of the id, so a million of them cost no
// memory) plus every write the database acknowledged. After the migration the
// table is compared with this record (orders-table.ts), which knows nothing
// of the engine: it is how the demo shows that no acknowledged write was lost.

export const ORDER_COLUMNS = ['id', 'customer_id', 'amount', 'status', 'note', 'created_at'] as const;
export type OrderColumn = (typeof ORDER_COLUMNS)[number];

/** A row as exact text: amount as the server prints numeric(12,2), created_at with 6 fraction digits. */
export interface OrderRow {
  id: string;
  customer_id: string;
  amount: string;
  status: string;
  note: string | null;
  created_at: string;
}

export const STATUSES = ['new', 'paid', 'shipped', 'cancelled', 'refunded'] as const;

const SEED_EPOCH_SECONDS = Date.UTC(2024, 0, 1) / 1000;

export function formatCents(cents: bigint): string {
  return `${cents / 100n}.${String(cents % 100n).padStart(2, '0')}`;
}

/** Whole seconds since the epoch plus microseconds -> 'YYYY-MM-DD HH:MM:SS.ffffff' (no zone). */
export function formatTimestamp(seconds: number, micros: number): string {
  const iso = new Date(seconds * 1000).toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)}.${String(micros).padStart(6, '0')}`;
}

/** Seed row `id`: the same function the seeding SQL computes on the server (orders-table.ts). */
export function seedRow(id: number): OrderRow {
  const n = BigInt(id);
  return {
    id: String(id),
    customer_id: String(((n * 7919n) % 100000n) + 1n),
    amount: formatCents((n * 37n) % 1000000n),
    status: STATUSES[Number(n % 5n)]!,
    note: n % 10n === 0n ? null : `order ${id}`,
    created_at: formatTimestamp(SEED_EPOCH_SECONDS + id, Number((n * 7919n) % 1000000n)),
  };
}

/**
 * present: exactly this row; absent: no row; unknown: a write failed without
 * saying whether it committed (lost connection, timeout), so any candidate is
 * right (null = no row) and the workload leaves the id alone from then on.
 */
export type RowState = { kind: 'present'; row: OrderRow } | { kind: 'absent' } | { kind: 'unknown'; candidates: Array<OrderRow | null> };

const ABSENT: RowState = Object.freeze({ kind: 'absent' }) as RowState;

export class OrdersModel {
  private readonly changed = new Map<number, RowState>();

  /** Ids 1..seedRows start as seedRow(id); every other id starts absent. */
  constructor(readonly seedRows: number) {}

  get(id: number): RowState {
    return this.changed.get(id) ?? (id >= 1 && id <= this.seedRows ? { kind: 'present', row: seedRow(id) } : ABSENT);
  }

  kind(id: number): RowState['kind'] {
    return this.changed.get(id)?.kind ?? (id >= 1 && id <= this.seedRows ? 'present' : 'absent');
  }

  setPresent(row: OrderRow): void {
    this.changed.set(Number(row.id), { kind: 'present', row });
  }

  setAbsent(id: number): void {
    this.changed.set(id, ABSENT);
  }

  setUnknown(id: number, candidates: Array<OrderRow | null>): void {
    this.changed.set(id, { kind: 'unknown', candidates });
  }

  /** Ids the application wrote (or tried to), ascending. */
  touchedIds(): number[] {
    return [...this.changed.keys()].sort((a, b) => a - b);
  }

  /** Rows that must exist (ids in state present). */
  expectedRows(): number {
    let n = this.seedRows;
    for (const [id, s] of this.changed) {
      const seeded = id >= 1 && id <= this.seedRows;
      if (s.kind === 'present' && !seeded) n++;
      if (s.kind !== 'present' && seeded) n--;
    }
    return n;
  }

  unknownIds(): number {
    let n = 0;
    for (const s of this.changed.values()) if (s.kind === 'unknown') n++;
    return n;
  }
}

export function sameRow(a: OrderRow | null, b: OrderRow | null): boolean {
  if (a === null || b === null) return a === b;
  return ORDER_COLUMNS.every((c) => a[c] === b[c]);
}
