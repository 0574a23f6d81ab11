import { describe, it, expect } from 'vitest';
import { ChangeQueue } from '../../src/dialects/change-queue.js';
import type { ChangeEvent } from '../../src/dialects/dialect.js';

type Item = { t: 'event'; event: ChangeEvent; bytes?: number } | { t: 'marker'; id: string };
const ev = (id: number, bytes?: number): Item => ({ t: 'event', event: { kind: 'insert', after: { id } }, ...(bytes ? { bytes } : {}) });

describe('ChangeQueue', () => {
  it('pauses its source when full and resumes it below the resume fraction', () => {
    const calls: string[] = [];
    const q = new ChangeQueue<Item>({ maxEvents: 4, resumeBelow: 0.5 }, () => ({ pause: () => calls.push('pause'), resume: () => calls.push('resume') }));
    for (let i = 0; i < 4; i++) q.push(ev(i));
    expect(calls).toEqual(['pause']);
    expect(q.isPaused).toBe(true);
    expect(q.take(1, () => true)).toHaveLength(1);
    expect(calls).toEqual(['pause']); // 3 left: not below half
    q.take(2, () => true);
    expect(calls).toEqual(['pause', 'resume']);
    expect(q.backlog()).toBe(1);
  });

  it('counts bytes towards the bound', () => {
    let paused = 0;
    const q = new ChangeQueue<Item>({ maxEvents: 100, maxBytes: 1000 }, () => ({ pause: () => paused++, resume: () => paused-- }));
    q.push(ev(1, 600));
    q.push(ev(2, 600));
    expect(paused).toBe(1);
    q.take(1, () => true);
    expect(paused).toBe(0);
  });

  it('stays consistent when a resumed source delivers at once (re-entering the bound check)', () => {
    let n = 0;
    let sourcePaused = false;
    const q: ChangeQueue<Item> = new ChangeQueue<Item>({ maxEvents: 4, resumeBelow: 0.5 }, () => ({
      pause: () => (sourcePaused = true),
      resume: () => {
        sourcePaused = false;
        for (let i = 0; i < 5; i++) q.push(ev(n++));
      },
    }));
    for (let i = 0; i < 4; i++) q.push(ev(n++));
    q.take(10, () => true);
    expect(sourcePaused).toBe(true);
    expect(q.isPaused).toBe(true);
  });

  it('ends a batch where the visitor says, and wakes waiters on push and on failure', async () => {
    const q = new ChangeQueue<Item>({ maxEvents: 100 }, () => null);
    const waited = q.waitForData(10_000);
    q.push(ev(1));
    await waited;
    q.push({ t: 'marker', id: 'm' });
    q.push(ev(2));
    const seen: string[] = [];
    expect(q.take(10, (i) => (seen.push(i.t), i.t !== 'marker'))).toHaveLength(1);
    expect(seen).toEqual(['event', 'marker']);
    expect(q.backlog()).toBe(1);
    q.take(10, () => true);
    const again = q.waitForData(10_000);
    q.fail(new Error('gone'));
    await again;
    await expect(q.failed).rejects.toThrow('gone');
  });
});
