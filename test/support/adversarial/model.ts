// The model of the adversarial table: the rows that must be there after every
// ACKNOWLEDGED transaction, keyed by (tenant_id, k), each row as the exact text
// of every column. Pure logic, no database.
//
// A transaction is planned against a TxView (the model plus its own changes so
// far) over keys no other transaction holds, so transactions on the model never
// interleave. Its changes reach the model only when COMMIT was acknowledged; a
// rollback leaves the model alone. When the outcome is unknown (the connection
// was lost around COMMIT) the transaction's keys form an UnknownGroup: the table
// must then show all of them as before or all of them as after (a transaction
// is atomic), and the workload never touches them again.

export type Row = Record<string, string | null>;

export const keyOf = (tenant: string, k: string): string => JSON.stringify([tenant, k]);
export const rowKey = (row: Row): string => keyOf(row.tenant_id!, row.k!);

export interface UnknownGroup {
  keys: string[];
  before: Map<string, Row | null>;
  after: Map<string, Row | null>;
}

export type KeyState = { kind: 'present'; row: Row } | { kind: 'absent' } | { kind: 'unknown'; group: UnknownGroup };

export interface Diff {
  key: string;
  kind: 'missing' | 'extra' | 'value' | 'unknown-group';
  column?: string;
  expected?: string | null;
  actual?: string | null;
  note?: string;
}

export class AdvModel {
  private readonly rows = new Map<string, Row>();
  private readonly unknown = new Map<string, UnknownGroup>();
  readonly groups: UnknownGroup[] = [];

  constructor(seed: Iterable<Row> = []) {
    for (const r of seed) this.rows.set(rowKey(r), r);
  }

  state(key: string): KeyState {
    const g = this.unknown.get(key);
    if (g) return { kind: 'unknown', group: g };
    const row = this.rows.get(key);
    return row ? { kind: 'present', row } : { kind: 'absent' };
  }

  get size(): number {
    return this.rows.size;
  }

  presentKeys(): IterableIterator<string> {
    return this.rows.keys();
  }

  /** Applies a committed transaction's net changes (null = the key has no row). */
  commit(changes: Map<string, Row | null>): void {
    for (const [key, row] of changes) {
      if (this.unknown.has(key)) throw new Error(`model: ${key} is unknown and must not be written`);
      if (row) this.rows.set(key, row);
      else this.rows.delete(key);
    }
  }

  /** The transaction may or may not have committed. */
  markUnknown(before: Map<string, Row | null>, after: Map<string, Row | null>): void {
    const group: UnknownGroup = { keys: [...after.keys()], before, after };
    this.groups.push(group);
    for (const key of group.keys) {
      this.rows.delete(key);
      this.unknown.set(key, group);
    }
  }

  /**
   * Compares the table's rows (key → row text) with the model, column by column.
   * Every row the model requires must be there with exactly these values; no
   * other row may be; each unknown group must match entirely before or entirely after.
   */
  diff(actual: Map<string, Row>, columns: readonly string[], limit = 30): { count: number; diffs: Diff[]; unknownCommitted: number } {
    const diffs: Diff[] = [];
    let count = 0;
    const add = (d: Diff) => {
      count++;
      if (diffs.length < limit) diffs.push(d);
    };
    const rowDiffs = (key: string, expected: Row, got: Row): Diff[] =>
      columns.filter((c) => expected[c] !== got[c]).map((c) => ({ key, kind: 'value' as const, column: c, expected: expected[c], actual: got[c] }));

    for (const [key, expected] of this.rows) {
      const got = actual.get(key);
      if (!got) add({ key, kind: 'missing' });
      else for (const d of rowDiffs(key, expected, got)) add(d);
    }
    for (const key of actual.keys()) if (!this.rows.has(key) && !this.unknown.has(key)) add({ key, kind: 'extra' });
    let unknownCommitted = 0;
    for (const g of this.groups) {
      const matches = (side: Map<string, Row | null>) =>
        g.keys.every((key) => {
          const want = side.get(key) ?? null;
          const got = actual.get(key) ?? null;
          return want === null ? got === null : got !== null && rowDiffs(key, want, got).length === 0;
        });
      // A transaction that changed nothing matches both; count it as not committed.
      if (matches(g.before)) continue;
      if (matches(g.after)) unknownCommitted++;
      else add({ key: g.keys.join(' '), kind: 'unknown-group', note: 'an unacknowledged transaction matches neither all-before nor all-after' });
    }
    return { count, diffs, unknownCommitted };
  }
}

/** One transaction's view: the model plus the transaction's own changes. */
export class TxView {
  private readonly changes = new Map<string, Row | null>();

  constructor(private readonly model: AdvModel) {}

  get(key: string): Row | null {
    if (this.changes.has(key)) return this.changes.get(key)!;
    const s = this.model.state(key);
    if (s.kind === 'unknown') throw new Error(`workload bug: transaction reads unknown key ${key}`);
    return s.kind === 'present' ? s.row : null;
  }

  insert(row: Row): void {
    const key = rowKey(row);
    if (this.get(key)) throw new Error(`workload bug: insert of existing key ${key}`);
    this.changes.set(key, row);
  }

  /** Updates a row; a new tenant_id/k moves it (the target key must be free). Returns the new key. */
  update(key: string, set: Row): string {
    const before = this.get(key);
    if (!before) throw new Error(`workload bug: update of missing key ${key}`);
    const after = { ...before, ...set };
    const newKey = rowKey(after);
    if (newKey !== key) {
      if (this.get(newKey)) throw new Error(`workload bug: move onto existing key ${newKey}`);
      this.changes.set(key, null);
    }
    this.changes.set(newKey, after);
    return newKey;
  }

  delete(key: string): void {
    if (!this.get(key)) throw new Error(`workload bug: delete of missing key ${key}`);
    this.changes.set(key, null);
  }

  /** Keys this transaction wrote, with their final rows. */
  get written(): Map<string, Row | null> {
    return new Map(this.changes);
  }

  commit(): void {
    this.model.commit(this.changes);
  }

  markUnknown(): void {
    const before = new Map<string, Row | null>();
    for (const key of this.changes.keys()) {
      const s = this.model.state(key);
      before.set(key, s.kind === 'present' ? s.row : null);
    }
    this.model.markUnknown(before, this.written);
  }
}
