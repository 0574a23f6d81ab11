import type { PreflightCheck } from '../../dialect.js';

export function noForeignKeysCheck(): PreflightCheck {
  return {
    name: 'no-foreign-keys',
    phase: 'table',
    async run(ctx) {
      const info = ctx.info;
      if (!info) return { ok: true, message: 'table not found (another check reports it)' };
      if (info.foreignKeys.length > 0) {
        return {
          ok: false,
          message: `${info.ref.name} declares foreign keys (${info.foreignKeys.join(', ')}): the shadow table would not keep them pointing right across the swap. Drop them first (ALTER TABLE ${info.ref.name} DROP FOREIGN KEY ...), or use a blocking ALTER.`,
        };
      }
      if (info.referencedBy.length > 0) {
        return {
          ok: false,
          message: `other tables' foreign keys point at ${info.ref.name} (${info.referencedBy.join(', ')}): after the swap they would reference the old table. Drop those foreign keys first, or use a blocking ALTER.`,
        };
      }
      return { ok: true, message: 'no foreign keys on either side' };
    },
  };
}
