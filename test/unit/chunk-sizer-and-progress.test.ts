import { describe, it, expect } from 'vitest';
import { ChunkSizer } from '../../src/engine/chunk-sizer.js';
import { CopyRate, percent } from '../../src/control/progress.js';

describe('ChunkSizer', () => {
  it('grows towards the target chunk time, at most doubling', () => {
    const s = new ChunkSizer({ targetMs: 500, initialSize: 1000 });
    s.observe(1000, 50); // 0.05 ms/row -> ideal 10000
    expect(s.size).toBe(2000);
    s.observe(2000, 100);
    expect(s.size).toBe(4000);
  });
  it('shrinks when chunks are slow', () => {
    const s = new ChunkSizer({ targetMs: 500, initialSize: 8000 });
    s.observe(8000, 4000); // 0.5 ms/row -> ideal 1000, capped at /4
    expect(s.size).toBe(2000);
  });
  it('stays fixed with --chunk-size', () => {
    const s = new ChunkSizer({ targetMs: 500, fixedSize: 300 });
    s.observe(300, 1);
    expect(s.size).toBe(300);
  });
});

describe('CopyRate', () => {
  it('gives no ETA until it has a few seconds of history', () => {
    const r = new CopyRate();
    r.record(0, 0);
    r.record(1000, 1000);
    expect(r.etaSeconds(1000, 10000)).toBeNull();
    r.record(4000, 4000);
    expect(r.rowsPerSecond()).toBe(1000);
    expect(r.etaSeconds(4000, 10000)).toBe(6);
  });
  it('never reports more than 100% or a negative ETA', () => {
    expect(percent(150, 100)).toBe(100);
    const r = new CopyRate();
    r.record(0, 0);
    r.record(5000, 5000);
    expect(r.etaSeconds(5000, 100)).toBe(0);
  });
});
