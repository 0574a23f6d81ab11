// The engine's check after a swap (swap-proof.ts, EventPump.changesBeforeSwap) against
// a scripted stream: it passes only when the stream shows the swap with no write before
// it, names the writes it finds, and never claims success when it could not look.

import { describe, it, expect } from 'vitest';
import type { Applier, ChangeBatch, ChangeEvent, ChangeStream, CopyPlan } from '../../src/dialects/dialect.js';
import { EventPump } from '../../src/engine/event-pump.js';
import { proveSwap } from '../../src/engine/swap-proof.js';
import { ShadowshiftError, SwapUnverifiedError, TransientDatabaseError, WritesAfterDrainError } from '../../src/util/errors.js';
import { silentLogger } from '../../src/util/logger.js';

class ScriptedStream implements ChangeStream {
  readonly failed: Promise<never>;
  fail!: (err: Error) => void;
  batches: ChangeBatch[] = [];
  constructor(readonly seesSwap?: boolean) {
    this.failed = new Promise<never>((_, reject) => (this.fail = reject));
    this.failed.catch(() => undefined);
  }
  async start() {
    return 'f:1';
  }
  take() {
    return this.batches.shift() ?? null;
  }
  backlog() {
    return this.batches.reduce((n, b) => n + b.events.length, 0);
  }
  async waitForData(ms: number) {
    await new Promise((r) => setTimeout(r, Math.min(ms, 5)));
  }
  async acknowledge() {}
  async writeMarker() {}
  lagSeconds() {
    return null;
  }
  async stop() {}
}

const plan = { original: { ref: { schema: 'db', name: 't' } } } as unknown as CopyPlan;
const applied: ChangeEvent[][] = [];
const applier: Applier = { apply: async (_p, events) => void applied.push(events) };

async function pumpOver(stream: ScriptedStream): Promise<EventPump> {
  const pump = new EventPump(() => stream, applier, plan, silentLogger(), () => undefined);
  await pump.start();
  return pump;
}

const prove = (pump: EventPump, timeoutMs = 2000) => proveSwap({ pump, table: 'db.t', backup: 'db.t_ssold_j1', keyColumns: ['id'], log: silentLogger(), timeoutMs });
const batch = (events: ChangeEvent[], swap = false): ChangeBatch => ({ events, markers: [], position: 'f:2', ...(swap ? { swap, afterSwap: 'f:9' } : {}) });
const insert = (id: number): ChangeEvent => ({ kind: 'insert', after: { id, v: 1 } });

describe('proveSwap', () => {
  it('passes when the swap comes through with nothing before it, and says where the writes to the new table begin', async () => {
    const stream = new ScriptedStream(true);
    const pump = await pumpOver(stream);
    stream.batches.push(batch([], true));
    await expect(prove(pump)).resolves.toBe('f:9');
  });

  it('names every kind of write that reached the old table, the first ten keys, and the backup; exit 4; nothing applied', async () => {
    const stream = new ScriptedStream(true);
    const pump = await pumpOver(stream);
    applied.length = 0;
    stream.batches.push(batch([insert(5), { kind: 'update', before: { id: 6, v: 1 }, after: { id: 60, v: 2 } }, { kind: 'delete', before: { id: 'a\'b' } }]));
    stream.batches.push(batch([{ kind: 'update', before: null, after: { id: 7 } }, { kind: 'insert', after: { id: Buffer.from([1, 255]) } }, ...[20, 21, 22, 23, 24, 25, 26].map(insert)], true));
    const err = await prove(pump).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WritesAfterDrainError);
    const e = err as WritesAfterDrainError;
    expect(e.exitCode).toBe(4);
    expect(e.writes).toBe(12);
    expect(e.backupTable).toBe('db.t_ssold_j1');
    expect(e.message).toContain('12 writes reached the old table');
    expect(e.message).toContain("insert id=5, update id=6 -> id=60, delete id='a'b', update id=7, insert id=0x01ff, insert id=20");
    expect(e.message).toContain('insert id=24, and 2 more');
    expect(e.message).toContain('kept as db.t_ssold_j1');
    expect(applied).toEqual([]);
  });

  it('counts only what comes before the swap', async () => {
    const stream = new ScriptedStream(true);
    const pump = await pumpOver(stream);
    stream.batches.push(batch([insert(1)], true), batch([insert(2), insert(3)]));
    await expect(prove(pump)).rejects.toThrow(/1 write reached the old table[\s\S]*insert id=1\. /);
  });

  it('is unverified, not passed, when the stream fails before the swap comes through', async () => {
    const stream = new ScriptedStream(true);
    const pump = await pumpOver(stream);
    stream.fail(new TransientDatabaseError('binlog reader failed: connection lost'));
    await new Promise((r) => setImmediate(r));
    const err = await prove(pump).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SwapUnverifiedError);
    expect((err as Error).message).toMatch(/swapped[\s\S]*kept as db\.t_ssold_j1[\s\S]*could not check[\s\S]*connection lost/);
  });

  it('still judges a swap that was queued before the stream failed', async () => {
    const stream = new ScriptedStream(true);
    const pump = await pumpOver(stream);
    stream.batches.push(batch([], true));
    stream.fail(new TransientDatabaseError('binlog reader failed: connection lost'));
    await new Promise((r) => setImmediate(r));
    await expect(prove(pump)).resolves.toBe('f:9');
  });

  it('is unverified when the swap does not come through in time', async () => {
    const stream = new ScriptedStream(true);
    const pump = await pumpOver(stream);
    stream.batches.push(batch([insert(1)]));
    await expect(prove(pump, 100)).rejects.toThrow(SwapUnverifiedError);
  });

  it('does nothing for a stream that cannot see the swap (PostgreSQL)', async () => {
    const stream = new ScriptedStream();
    const pump = await pumpOver(stream);
    stream.batches.push(batch([insert(1)]));
    await expect(prove(pump)).resolves.toBeNull();
  });

  it('a swap outside the cut-over ends the job instead of applying past it', async () => {
    const stream = new ScriptedStream(true);
    const pump = await pumpOver(stream);
    stream.batches.push(batch([insert(1)], true));
    const err = await pump.applyAvailable(100).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ShadowshiftError);
    expect((err as Error).message).toMatch(/swapped with the shadow by a RENAME this job did not run/);
  });
});
