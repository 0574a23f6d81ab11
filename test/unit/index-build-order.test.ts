// The deferred index build's order against the stream (engine/index-build.ts), against a
// recording pump and session: after a copy under row locks the stream is applied up to
// now before the build (the last chunks read rows ahead of it); after a copy wholly at
// the stream's start the build starts at once, and only a constraint the rows as of the
// start break sends it back to apply the stream and build again. The real servers'
// side: test/postgres/deferred-unique-read-ahead.test.ts and test/postgres/snapshot-copy.test.ts.

import { describe, expect, it } from 'vitest';
import type { CopyPlan, DialectSession, TableInfo } from '../../src/dialects/dialect.js';
import type { EventPump } from '../../src/engine/event-pump.js';
import { buildDeferredIndexes } from '../../src/engine/index-build.js';
import { JobControls } from '../../src/control/job-controls.js';
import { DataLossError, ShadowshiftError } from '../../src/util/errors.js';
import { silentLogger } from '../../src/util/logger.js';

const plan = { shadow: { ref: { schema: 's', name: 'shadow' }, indexes: [] } } as unknown as CopyPlan;

/** Runs the build with `outcomes` as finishShadow's successive results; returns what happened, in order. */
async function build(shadowAtStreamStart: boolean, outcomes: Array<Error | null>): Promise<{ steps: string[]; error: unknown }> {
  const steps: string[] = [];
  const pump = {
    applyUntilNow: async () => void steps.push('drain'),
    applyWhile: async (condition: () => boolean) => {
      while (condition()) await new Promise((r) => setTimeout(r, 1));
    },
  } as unknown as EventPump;
  const session = {
    finishShadow: async (): Promise<TableInfo> => {
      steps.push('build');
      const outcome = outcomes.shift();
      if (outcome) throw outcome;
      return { indexes: [{ name: 'i' }] } as unknown as TableInfo;
    },
  } as unknown as DialectSession;
  let error: unknown = null;
  await buildDeferredIndexes(session, plan, {
    shadowAtStreamStart,
    pump,
    controls: new JobControls(),
    jobId: 'j',
    log: silentLogger(),
    enterPhase: async () => void steps.push('phase'),
    run: (work) => work(),
  }).catch((err: unknown) => (error = err));
  return { steps, error };
}

describe('deferred index build: when the stream is applied first', () => {
  it('after a copy under row locks: the stream up to now, then the build', async () => {
    expect(await build(false, [null])).toEqual({ steps: ['drain', 'phase', 'build'], error: null });
  });

  it('after a copy at the stream start: the build at once, the stream applied alongside it', async () => {
    expect(await build(true, [null])).toEqual({ steps: ['phase', 'build'], error: null });
  });

  it('a duplicate among the rows as of the start: the stream up to now, then a second build', async () => {
    expect(await build(true, [new DataLossError('duplicate'), null])).toEqual({ steps: ['phase', 'build', 'drain', 'build'], error: null });
  });

  it('a duplicate still there after the stream is applied fails the job', async () => {
    const { steps, error } = await build(true, [new DataLossError('first'), new DataLossError('second')]);
    expect(steps).toEqual(['phase', 'build', 'drain', 'build']);
    expect((error as Error).message).toBe('second');
  });

  it('a duplicate after a copy under row locks is final at once', async () => {
    const { steps, error } = await build(false, [new DataLossError('dup')]);
    expect(steps).toEqual(['drain', 'phase', 'build']);
    expect(error).toBeInstanceOf(DataLossError);
  });

  it('any other failure is not retried by applying the stream', async () => {
    const { steps, error } = await build(true, [new ShadowshiftError('cancelled')]);
    expect(steps).toEqual(['phase', 'build']);
    expect((error as Error).message).toBe('cancelled');
  });
});
