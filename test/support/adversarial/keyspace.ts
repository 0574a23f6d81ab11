// Which keys a transaction may use. A key belongs to at most one transaction at
// a time (busy), so the model's view of it cannot change under that transaction.
// New keys are drawn from the same families as the seeded ones: an insert or a
// move often lands right next to its case, normal-form or trailing-space twin,
// or reuses a key deleted a moment ago.

import type { AdvModel } from './model.js';
import { keyOf, type Row } from './model.js';
import { isBigRow } from './rows.js';
import { int, keyText, KEY_VARIANTS, type Rng } from './values.js';

/** Strings with O(1) random take, add and remove. */
export class Pool {
  private items: string[] = [];
  private pos = new Map<string, number>();

  get size(): number {
    return this.items.length;
  }

  has(x: string): boolean {
    return this.pos.has(x);
  }

  add(x: string): void {
    if (this.pos.has(x)) return;
    this.pos.set(x, this.items.length);
    this.items.push(x);
  }

  remove(x: string): void {
    const i = this.pos.get(x);
    if (i === undefined) return;
    const last = this.items.pop()!;
    if (last !== x) {
      this.items[i] = last;
      this.pos.set(last, i);
    }
    this.pos.delete(x);
  }

  peek(r: Rng): string | undefined {
    return this.items.length ? this.items[Math.floor(r() * this.items.length)] : undefined;
  }
}

export interface NewKey {
  key: string;
  tenant: number;
  k: string;
}

export class KeySpace {
  /** Present keys no transaction holds; `big` is the subset with large values. */
  private readonly live = new Pool();
  private readonly big = new Pool();
  private readonly busy = new Set<string>();
  private families: number;

  constructor(
    private readonly model: AdvModel,
    private readonly rand: Rng,
    private readonly tenants: number,
    seededFamilies: number,
  ) {
    this.families = seededFamilies;
    for (const key of model.presentKeys()) this.classify(key);
  }

  get liveCount(): number {
    return this.live.size;
  }

  get bigCount(): number {
    return this.big.size;
  }

  private classify(key: string): void {
    this.live.remove(key);
    this.big.remove(key);
    const s = this.model.state(key);
    if (s.kind !== 'present' || this.busy.has(key)) return;
    this.live.add(key);
    if (isBigRow(s.row)) this.big.add(key);
  }

  /** An existing row for a transaction to work on (one with large values if preferBig and there is one). */
  take(preferBig = false): { key: string; row: Row } | null {
    const key = (preferBig ? this.big.peek(this.rand) : undefined) ?? this.live.peek(this.rand);
    if (key === undefined) return null;
    this.busy.add(key);
    this.classify(key);
    const s = this.model.state(key);
    if (s.kind !== 'present') throw new Error(`workload bug: live key ${key} is ${s.kind}`);
    return { key, row: s.row };
  }

  /** A key with no row and no unknown outcome, held for the caller. */
  fresh(): NewKey {
    for (let attempt = 0; ; attempt++) {
      // Mostly a sibling of existing keys; now and then a new family.
      const family = attempt > 20 || this.rand() < 0.05 ? this.families++ : int(this.rand, 0, this.families - 1);
      const tenant = int(this.rand, 1, this.tenants);
      const k = keyText(family, int(this.rand, 0, KEY_VARIANTS.length - 1));
      const key = keyOf(String(tenant), k);
      if (this.busy.has(key) || this.model.state(key).kind !== 'absent') continue;
      this.busy.add(key);
      return { key, tenant, k };
    }
  }

  /** Gives keys back after the transaction ended (its changes, if any, already in the model). */
  release(keys: Iterable<string>): void {
    for (const key of keys) {
      this.busy.delete(key);
      this.classify(key);
    }
  }
}
