import { ph } from '../../db.js';
import { normalizeDatetime, WORKLOAD_COLUMNS } from '../schema.js';
import { takeLive, type LiveTarget, type Operation } from './op.js';

/** Reads a live row as text and compares it with the model. */
export const select: Operation<LiveTarget> = {
  kind: 'select',
  write: false,
  target: takeLive,
  sampleId: (t) => t.before.id,
  statement(ctx, { id }) {
    const d = ctx.dialect;
    const q = (c: string) => ctx.quote(c);
    const exprs =
      d === 'mysql'
        ? WORKLOAD_COLUMNS.map((c) => `${c === 'payload' ? `HEX(${q(c)})` : `CAST(${q(c)} AS CHAR)`} AS ${q(c)}`)
        : WORKLOAD_COLUMNS.map((c) => `${c === 'payload' ? `upper(encode(${q(c)}, 'hex'))` : `${q(c)}::text`} AS ${q(c)}`);
    return { sql: `SELECT ${exprs.join(', ')} FROM ${ctx.table} WHERE ${q('id')} = ${ph(d, 1)}`, params: [id] };
  },
  ok(ctx, { id, before }, rows) {
    ctx.ids.live.add(id);
    const got = rows[0];
    if (!got) return ctx.stats.readMismatch('select', before.id, 'row missing');
    for (const c of WORKLOAD_COLUMNS) {
      const v = got[c] === null || got[c] === undefined ? null : String(got[c]);
      const actual = c === 'created_at' && v !== null ? normalizeDatetime(v) : v;
      if (actual !== before[c]) return ctx.stats.readMismatch('select', before.id, `${c}: expected ${JSON.stringify(before[c])}, got ${JSON.stringify(actual)}`);
    }
  },
  failed(ctx, { id }) {
    ctx.ids.live.add(id);
  },
  unknown(ctx, { id }) {
    ctx.ids.live.add(id);
  },
};
