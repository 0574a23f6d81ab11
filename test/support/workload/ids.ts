// Which ids operations may take. An id is never touched by two operations at
// once: it is taken out of its pool while an operation runs, so the order of
// acknowledged writes to one id is the order they ran in.

import type { WorkloadModel } from './model.js';

/** A pool of ids with O(1) random take and add. */
export class IdPool {
  private ids: number[] = [];
  private pos = new Map<number, number>();
  get size(): number {
    return this.ids.length;
  }
  add(id: number): void {
    if (this.pos.has(id)) return;
    this.pos.set(id, this.ids.length);
    this.ids.push(id);
  }
  take(rand: number): number | undefined {
    if (this.ids.length === 0) return undefined;
    const id = this.ids[Math.floor(rand * this.ids.length)]!;
    this.remove(id);
    return id;
  }
  remove(id: number): void {
    const i = this.pos.get(id);
    if (i === undefined) return;
    const last = this.ids.pop()!;
    if (last !== id) {
      this.ids[i] = last;
      this.pos.set(last, i);
    }
    this.pos.delete(id);
  }
}

/** Ids with a row no operation is working on (live), and ids once written that have none (dead). */
export class WorkloadIds {
  readonly live = new IdPool();
  readonly dead = new IdPool();
  private nextHighId: number;

  constructor(
    model: WorkloadModel,
    highIdStart: number,
    private readonly reuseShare: number,
    private readonly rand: () => number,
  ) {
    for (const id of model.presentIds()) this.live.add(id);
    for (const id of model.absentIds()) this.dead.add(id);
    this.nextHighId = Math.max(highIdStart, model.maxId() + 1);
  }

  /** An id without a row for an insert or a PK change: a deleted one (reused) or a fresh high one. */
  takeNewId(): { id: number; reused: boolean } {
    if (this.dead.size > 0 && this.rand() < this.reuseShare) return { id: this.dead.take(this.rand())!, reused: true };
    return { id: this.nextHighId++, reused: false };
  }
}
