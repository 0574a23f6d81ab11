import type { PreflightCheck } from '../../dialect.js';

export function hasKeyCheck(): PreflightCheck {
  return {
    name: 'has-key',
    phase: 'table',
    async run(ctx) {
      const info = ctx.info;
      if (!info) return { ok: true, message: 'table not found (another check reports it)' };
      const notNull = (c: string) => info.columns.find((x) => x.name.toLowerCase() === c.toLowerCase())?.nullable === false;
      const key = info.indexes.find((i) => i.primary) ?? info.indexes.find((i) => i.unique && i.columns.every(notNull));
      if (key) return { ok: true, message: `rows are identified by ${key.primary ? 'the primary key' : `the unique key ${key.name}`} (${key.columns.join(', ')})` };
      return {
        ok: false,
        message: `${info.ref.name} has no primary key and no unique key over NOT NULL columns, so rows cannot be chunked or matched. Add one first (ALTER TABLE ${info.ref.name} ADD PRIMARY KEY (...)).`,
      };
    },
  };
}
