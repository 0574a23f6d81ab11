import { ph } from '../../db.js';
import { bindValue, type WorkloadColumn, type WorkloadRow } from '../schema.js';
import { takeLive, type LiveTarget, type Operation } from './op.js';

interface Target extends LiveTarget {
  after: WorkloadRow;
  cols: WorkloadColumn[];
}

export const update: Operation<Target> = {
  kind: 'update',
  write: true,
  target(ctx) {
    const { id, before } = takeLive(ctx);
    const r = ctx.random;
    const variant = r.int(0, 3);
    const changes: Partial<WorkloadRow> =
      variant === 0
        ? { amount: r.amount(), status: r.status() }
        : variant === 1
          ? { note: r.note(), payload: r.payload() }
          : variant === 2
            ? { user_id: r.userId(), created_at: r.createdAt() }
            : (({ id: _id, ...rest }) => rest)(r.row(id));
    return { id, before, after: { ...before, ...changes }, cols: Object.keys(changes) as WorkloadColumn[] };
  },
  sampleId: (t) => t.before.id,
  statement(ctx, { id, after, cols }) {
    const d = ctx.dialect;
    return {
      sql: `UPDATE ${ctx.table} SET ${cols.map((c, i) => `${ctx.quote(c)} = ${ph(d, i + 1)}`).join(', ')} WHERE ${ctx.quote('id')} = ${ph(d, cols.length + 1)}`,
      params: [...cols.map((c) => bindValue(c, after)), id],
    };
  },
  ok(ctx, { id, after }) {
    ctx.model.setPresent(after);
    ctx.ids.live.add(id);
  },
  failed(ctx, { id }) {
    ctx.ids.live.add(id);
  },
  unknown(ctx, { id, before, after }) {
    ctx.model.setUnknown(id, [before, after]);
  },
};
