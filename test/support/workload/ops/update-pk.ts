import { ph } from '../../db.js';
import type { WorkloadRow } from '../schema.js';
import { takeLive, type LiveTarget, type Operation } from './op.js';

interface Target extends LiveTarget {
  newId: number;
  reused: boolean;
  after: WorkloadRow;
}

/** UPDATE ... SET id = newId: the row moves to an id without a row. */
export const updatePk: Operation<Target> = {
  kind: 'update-pk',
  write: true,
  target(ctx) {
    const { id, before } = takeLive(ctx);
    const { id: newId, reused } = ctx.ids.takeNewId();
    return { id, before, newId, reused, after: { ...before, id: String(newId), status: ctx.random.status() } };
  },
  sampleId: (t) => t.before.id,
  statement(ctx, { id, newId, after }) {
    const d = ctx.dialect;
    return {
      sql: `UPDATE ${ctx.table} SET ${ctx.quote('id')} = ${ph(d, 1)}, ${ctx.quote('status')} = ${ph(d, 2)} WHERE ${ctx.quote('id')} = ${ph(d, 3)}`,
      params: [newId, after.status, id],
    };
  },
  ok(ctx, { id, newId, after }) {
    ctx.model.setAbsent(id);
    ctx.model.setPresent(after);
    ctx.ids.dead.add(id);
    ctx.ids.live.add(newId);
  },
  failed(ctx, { id, newId, reused }) {
    ctx.ids.live.add(id);
    if (reused) ctx.ids.dead.add(newId);
  },
  unknown(ctx, { id, before, newId, after }) {
    ctx.model.setUnknown(id, [before, null]);
    ctx.model.setUnknown(newId, [null, after]);
  },
};
