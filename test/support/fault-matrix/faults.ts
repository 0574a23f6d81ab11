// The faults, one small function each. A new kind (SIGKILL then --resume) is one more
// entry: deliver() may replace ctx.job with ctx.startJob(['--resume']).

import type { Fault, Phase } from './context.js';
import { isStreamSession, killJobSessions } from './sessions.js';

/** An abort before the cut-over leaves the original; once the cut-over has begun it finishes (or rolls back) first. */
const abortOutcomes = (phase: Phase) => (phase.inCutover ? (['untouched', 'applied'] as const) : (['untouched'] as const)).slice();

export const FAULTS: Fault[] = [
  {
    name: 'SIGTERM',
    deliver: async (ctx) => void ctx.job.child.kill('SIGTERM'),
    expected: abortOutcomes,
  },
  {
    name: 'ctl abort',
    deliver: (ctx) => ctx.job.command('abort'),
    expected: abortOutcomes,
  },
  {
    name: 'kill sessions',
    deliver: async (ctx) => {
      const killed = await killJobSessions(await ctx.sql(), ctx.server.jobUser);
      if (!killed.some(isStreamSession)) throw new Error(`the change stream's connection was not among the job's sessions: ${JSON.stringify(killed)}`);
    },
    // The job reconnects and goes on.
    expected: () => ['applied'],
  },
  {
    name: 'server restart',
    deliver: (ctx) => ctx.server.restart(),
    // Preferred over an exit naming leftovers: the job reconnects, and finishes.
    expected: () => ['applied'],
    hitsApplication: true,
  },
];
