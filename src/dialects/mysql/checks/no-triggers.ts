import type { PreflightCheck } from '../../dialect.js';

export function noTriggersCheck(): PreflightCheck {
  return {
    name: 'no-triggers',
    phase: 'table',
    async run(ctx) {
      const info = ctx.info;
      if (!info) return { ok: true, message: 'table not found (another check reports it)' };
      if (info.triggers.length === 0) return { ok: true, message: 'no triggers' };
      return {
        ok: false,
        message: `${info.ref.name} has triggers (${info.triggers.join(', ')}): they would not move to the new table, and rows they write would not be tracked. Drop them first (DROP TRIGGER ...) and re-create them after the change.`,
      };
    },
  };
}
