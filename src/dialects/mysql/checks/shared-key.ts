import type { PreflightCheck } from '../../dialect.js';

export function sharedKeyCheck(): PreflightCheck {
  return {
    name: 'shared-key',
    phase: 'alter',
    async run(ctx) {
      if (ctx.alter?.renamesTable) return { ok: true, message: 'not checked: the ALTER renames the table (another check reports it)' };
      if (ctx.alter?.partitionMaintenance !== undefined) return { ok: true, message: 'not checked: the ALTER maintains partitions (another check reports it)' };
      if (ctx.plan) return { ok: true, message: `rows are matched on ${ctx.plan.key.map((k) => k.source).join(', ')}` };
      return {
        ok: false,
        message:
          ctx.planProblem ??
          'after the ALTER the table shares no primary key or NOT NULL unique key with the original, so rows cannot be matched between them. Keep the primary key (or a NOT NULL unique key) in the ALTER, or add one first.',
      };
    },
  };
}
