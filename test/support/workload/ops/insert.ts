import { ph } from '../../db.js';
import { bindValue, WORKLOAD_COLUMNS, type WorkloadRow } from '../schema.js';
import type { Operation } from './op.js';

interface Target {
  id: number;
  reused: boolean;
  row: WorkloadRow;
}

export const insert: Operation<Target> = {
  kind: 'insert',
  write: true,
  target(ctx) {
    const { id, reused } = ctx.ids.takeNewId();
    return { id, reused, row: ctx.random.row(id) };
  },
  sampleId: (t) => t.row.id,
  statement(ctx, { row }) {
    const cols = WORKLOAD_COLUMNS.map((c) => ctx.quote(c)).join(', ');
    return {
      sql: `INSERT INTO ${ctx.table} (${cols}) VALUES (${WORKLOAD_COLUMNS.map((_, i) => ph(ctx.dialect, i + 1)).join(', ')})`,
      params: WORKLOAD_COLUMNS.map((c) => bindValue(c, row)),
    };
  },
  ok(ctx, { id, row }) {
    ctx.model.setPresent(row);
    ctx.ids.live.add(id);
  },
  failed(ctx, { id, reused }) {
    if (reused) ctx.ids.dead.add(id);
  },
  unknown(ctx, { id, row }) {
    ctx.model.setUnknown(id, [null, row]);
  },
};
