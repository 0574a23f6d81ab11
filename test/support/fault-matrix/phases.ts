// The phases of a job, each reached by waiting for a condition (never a sleep) and held
// open until released: a gate hook, a flag file, a lock or snapshot held by another
// session, tiny chunks.

import { rmSync, writeFileSync } from 'node:fs';
import type { CaseContext, Phase } from './context.js';
import { gate, type GateEvent } from './job-run.js';
import { holdAgainstRename, holdReadOnly, holdSnapshot, holdWriteLock } from './holders.js';
import { indexBuildWaits, jobHoldsWriteLock, jobWaitsForTable } from './sessions.js';

const TABLE = 'orders';

async function releaseHolders(ctx: CaseContext): Promise<void> {
  for (const h of ctx.holders.splice(0)) await h.release();
}

/** Stops the job at `event`, runs `setUp` (given the shadow's name) and lets it go. */
async function throughGate(ctx: CaseContext, event: GateEvent, setUp: (shadow: string) => Promise<void>): Promise<void> {
  const s = await ctx.job.waitFor(`the ${event} gate`, () => gate.reached(ctx.files, event));
  await setUp(s.shadowTable!);
  gate.open(ctx.files, event);
}

const ALL = ['mysql', 'postgres'] as const;

export const PHASES: Phase[] = [
  {
    name: 'copying',
    dialects: [...ALL],
    // ~600 chunks of 5 rows: the copy is still going when the fault comes.
    args: ['--chunk-size', '5'],
    reach: async (ctx) => void (await ctx.job.waitFor('the copy to be under way', (s) => s.state === 'copying' && s.rowsCopied > 0)),
    release: async () => undefined,
    inCutover: false,
  },
  {
    name: 'catching-up',
    dialects: [...ALL],
    args: [],
    before: async (ctx) => gate.arm(ctx.files, 'on-copy-complete'),
    // The shadow is read-only for a while: the catch-up's apply waits with events pending.
    reach: async (ctx) => {
      let shadow = '';
      const db = await ctx.sql();
      await throughGate(ctx, 'on-copy-complete', async (name) => {
        shadow = name;
        ctx.holders.push(await holdReadOnly(ctx.adminUrl, name));
        // The stream's apply is blocked before the copy may end: the catch-up then cannot
        // finish (and go on to the checksum) for want of a pending event.
        await ctx.job.waitFor('the apply to wait on the shadow', async () => jobWaitsForTable(db, ctx.server.jobUser, name));
      });
      await ctx.job.waitFor(
        'the catch-up to wait on the shadow',
        async (s) => s.state === 'catching-up' && (await jobWaitsForTable(db, ctx.server.jobUser, shadow)) && !(await jobHoldsWriteLock(db, ctx.server.jobUser, TABLE)),
      );
    },
    release: releaseHolders,
    inCutover: false,
  },
  {
    name: 'checksum',
    dialects: [...ALL],
    args: [],
    before: async (ctx) => gate.arm(ctx.files, 'on-copy-complete'),
    // A writer's open transaction: the checksum's snapshot lock on the original waits for it.
    reach: async (ctx) => {
      await throughGate(ctx, 'on-copy-complete', async () => void ctx.holders.push(await holdWriteLock(ctx.adminUrl, TABLE)));
      const db = await ctx.sql();
      await ctx.job.waitFor('the checksum to wait for its snapshot lock', async (s) => s.state === 'catching-up' && (await jobWaitsForTable(db, ctx.server.jobUser, TABLE)));
    },
    release: releaseHolders,
    inCutover: false,
  },
  {
    name: 'postponed',
    dialects: [...ALL],
    args: [],
    before: async (ctx) => writeFileSync(ctx.files.postponeFlag, ''),
    reach: async (ctx) => void (await ctx.job.waitFor('the cut-over to be postponed', (s) => s.state === 'postponed')),
    release: async (ctx) => rmSync(ctx.files.postponeFlag, { force: true }),
    inCutover: false,
  },
  {
    name: 'index-build',
    dialects: ['postgres'],
    args: [],
    // A snapshot older than the job: CREATE INDEX CONCURRENTLY waits for it.
    before: async (ctx) => void ctx.holders.push(await holdSnapshot(ctx.adminUrl)),
    reach: async (ctx) => {
      const db = await ctx.sql();
      await ctx.job.waitFor('the deferred index build to wait for an older snapshot', async (s) => s.state === 'copying' && (await indexBuildWaits(db)));
    },
    release: releaseHolders,
    inCutover: false,
  },
  {
    name: 'cutover-waiting',
    dialects: [...ALL],
    args: [],
    before: async (ctx) => writeFileSync(ctx.files.postponeFlag, ''),
    // A writer's open transaction on the original: the cut-over's lock request waits for it.
    reach: async (ctx) => {
      await ctx.job.waitFor('the cut-over to be postponed', (s) => s.state === 'postponed');
      ctx.holders.push(await holdWriteLock(ctx.adminUrl, TABLE));
      rmSync(ctx.files.postponeFlag);
      const db = await ctx.sql();
      await ctx.job.waitFor('the cut-over to wait for its lock', async (s) => s.state === 'cutting-over' && (await jobWaitsForTable(db, ctx.server.jobUser, TABLE)));
    },
    release: releaseHolders,
    inCutover: true,
  },
  {
    name: 'cutover-holding',
    dialects: [...ALL],
    args: [],
    before: async (ctx) => gate.arm(ctx.files, 'on-before-cutover'),
    // The job gets its lock on the original, then waits on the shadow while holding it:
    // MySQL's drain cannot apply to a read-only shadow, PostgreSQL's rename of the shadow
    // waits for a reader's lock.
    reach: async (ctx) => {
      let shadow = '';
      await throughGate(ctx, 'on-before-cutover', async (name) => {
        shadow = name;
        ctx.holders.push(await (ctx.dialect === 'mysql' ? holdReadOnly : holdAgainstRename)(ctx.adminUrl, name));
        // MySQL: the drain must have something to apply, or it ends at once and the
        // attempt gives up on the reader instead of waiting. Nothing is applied while the
        // gate holds the job, so writes acknowledged from here on are still pending then.
        const writes = ctx.appWrites();
        if (ctx.dialect === 'mysql') await ctx.job.waitFor('the application to write to the original', () => ctx.appWrites() >= writes + 3);
      });
      const db = await ctx.sql();
      await ctx.job.waitFor(
        'the cut-over to hold its lock on the original',
        async (s) => s.state === 'cutting-over' && (await jobHoldsWriteLock(db, ctx.server.jobUser, TABLE)) && (await jobWaitsForTable(db, ctx.server.jobUser, shadow)),
      );
    },
    release: releaseHolders,
    inCutover: true,
  },
];
