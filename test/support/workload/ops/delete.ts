import { ph } from '../../db.js';
import { takeLive, type LiveTarget, type Operation } from './op.js';

export const del: Operation<LiveTarget> = {
  kind: 'delete',
  write: true,
  target: takeLive,
  sampleId: (t) => t.before.id,
  statement(ctx, { id }) {
    return { sql: `DELETE FROM ${ctx.table} WHERE ${ctx.quote('id')} = ${ph(ctx.dialect, 1)}`, params: [id] };
  },
  ok(ctx, { id }) {
    ctx.model.setAbsent(id);
    ctx.ids.dead.add(id);
  },
  failed(ctx, { id }) {
    ctx.ids.live.add(id);
  },
  unknown(ctx, { id, before }) {
    ctx.model.setUnknown(id, [before, null]);
  },
};
