// The deferred index build's order against the stream (engine/index-build.ts). After a
// copy under row locks the stream is applied up to now before the build (the last chunks
// read rows ahead of it); after a copy wholly at the stream's start the build starts at
// once and the stream is applied up to now after it, unless a constraint the original
// does not enforce is among the indexes. Checked against a recording pump and session;
// the real servers' side: test/postgres/deferred-unique-read-ahead.test.ts and
// test/postgres/snapshot-copy.test.ts.

import { describe, expect, it } from 'vitest';
import type { CopyPlan, DialectSession, TableInfo } from '../../src/dialects/dialect.js';
import type { EventPump } from '../../src/engine/event-pump.js';
import { buildDeferredIndexes, buildsBeforeDrain } from '../../src/engine/index-build.js';
import { JobControls } from '../../src/control/job-controls.js';
import { DataLossError } from '../../src/util/errors.js';
import { silentLogger } from '../../src/util/logger.js';

const plan = { shadow: { ref: { schema: 's', name: 'shadow' }, indexes: [] } } as unknown as CopyPlan;

/** Runs the build; `failWith` makes finishShadow (`build`) or the stream's apply alongside it (`apply`) fail. */
async function build(buildFirst: boolean, failWith?: { build?: Error; apply?: Error }): Promise<{ steps: string[]; error: unknown }> {
  const steps: string[] = [];
  const pump = {
    applyUntilNow: async () => void steps.push('drain'),
    applyWhile: async (condition: () => boolean) => {
      if (failWith?.apply) throw failWith.apply;
      while (condition()) await new Promise((r) => setTimeout(r, 1));
    },
  } as unknown as EventPump;
  const session = {
    finishShadow: async (): Promise<TableInfo> => {
      steps.push('build');
      if (failWith?.build) throw failWith.build;
      return { indexes: [{ name: 'i' }] } as unknown as TableInfo;
    },
  } as unknown as DialectSession;
  let error: unknown = null;
  await buildDeferredIndexes(session, plan, {
    buildFirst,
    pump,
    controls: new JobControls(),
    jobId: 'j',
    log: silentLogger(),
    enterPhase: async () => void steps.push('phase'),
    run: (work) => work(),
  }).catch((err: unknown) => (error = err));
  return { steps, error };
}

describe('deferred index build: when the stream is applied up to now', () => {
  it('after a copy under row locks: before the build', async () => {
    expect(await build(false)).toEqual({ steps: ['drain', 'phase', 'build'], error: null });
  });

  it('after a copy at the stream start: after the build, which starts at once', async () => {
    expect(await build(true)).toEqual({ steps: ['phase', 'build', 'drain'], error: null });
  });

  it('a failed build fails the job, and nothing is applied past it', async () => {
    const { steps, error } = await build(true, { build: new DataLossError('duplicate') });
    expect(steps).toEqual(['phase', 'build']);
    expect((error as Error).message).toBe('duplicate');
  });

  it('a change the stream cannot apply during the build fails the job, never taken for a bad index', async () => {
    const { steps, error } = await build(true, { apply: new DataLossError('null into NOT NULL') });
    expect(steps).toEqual(['phase', 'build']);
    expect((error as Error).message).toBe('null into NOT NULL');
  });
});

describe('deferred index build: whether it may come first', () => {
  const preview = (definitions: string[], newUniqueIndexes: string[] = []) => ({ newUniqueIndexes, shadow: { definitions } as TableInfo });
  it('only after a copy read wholly at the stream start', () => {
    expect(buildsBeforeDrain(true, preview(['constraint PRIMARY KEY (id)', 'index USING btree (v)']))).toBe(true);
    expect(buildsBeforeDrain(false, preview(['constraint PRIMARY KEY (id)']))).toBe(false);
    expect(buildsBeforeDrain(true, null)).toBe(false);
  });

  it('not with a UNIQUE the original does not enforce: the changes since may be what makes the rows unique', () => {
    expect(buildsBeforeDrain(true, preview(['constraint UNIQUE (v)'], ['t_v_key']))).toBe(false);
  });

  it('not with an EXCLUDE constraint, which the plan cannot tell new or carried', () => {
    expect(buildsBeforeDrain(true, preview(['constraint PRIMARY KEY (id)', 'constraint EXCLUDE USING gist (r WITH &&)', 'index USING gist (r)']))).toBe(false);
  });
});
