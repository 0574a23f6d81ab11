// Preflight, both dialects: nothing of an earlier job on the table may be left. A shadow
// left by a killed job made the next job fail only once it had started (MySQL: the
// shadow name `<t>_ssnew` exists), or carried index names the new job's ALTER asks for
// (PostgreSQL: `relation "items_code_key" already exists`); a kept slot holds WAL for as
// long as nobody notices. Named here, with the fix, before anything is changed.

import { LEFTOVER_LABELS, type Leftover, type PreflightCheck, type TableRef } from './dialect.js';

export function leftoversCheck(list: (table: TableRef) => Promise<Leftover[]>): PreflightCheck {
  return {
    name: 'no-leftovers',
    phase: 'table',
    async run(ctx) {
      const t = ctx.table;
      const r = ctx.resuming;
      const continued = new Set(r ? [r.shadow, r.changelog, r.extra.slot, r.extra.sentry].filter((n): n is string => Boolean(n)) : []);
      const mine = (await list(t)).filter(
        (l) =>
          // An old table kept after a cut-over is the user's backup, not in a new job's way.
          l.kind !== 'backup' &&
          // A revert point, and what it keeps (PostgreSQL: its slot and publication), are closed
          // by the next job itself, which says so (engine/job.ts).
          l.kind !== 'revert-point' &&
          !l.revertWindow &&
          l.table?.schema === t.schema &&
          l.table.name === t.name &&
          !(r && (continued.has(l.name) || l.kind === 'checkpoint')),
      );
      if (mine.length === 0) return { ok: true, message: 'nothing of an earlier job is left on the table' };
      const what = mine.map((l) => `${LEFTOVER_LABELS[l.kind]} ${l.name}`).join(', ');
      const table = `${t.schema}.${t.name}`;
      if (mine.some((l) => l.inUse)) {
        return {
          ok: false,
          message:
            `another shadowshift job is running on ${table}: it holds ${what} (its job lock is held or its replication slot is being read; ` +
            'a job killed a moment ago keeps its slot until the server notices). Wait for it to finish or stop it, then run again',
        };
      }
      if (mine.some((l) => l.resumable)) {
        return {
          ok: false,
          message:
            `an earlier job on ${table} kept its state for a resume: ${what}. To continue it, use --resume (with that job's --alter), ` +
            'or run `shadowshift cleanup --execute` to throw it away; then run again',
        };
      }
      return { ok: false, message: `an earlier job on ${table} left ${what}. Run \`shadowshift cleanup --execute\` to remove ${mine.length > 1 ? 'them' : 'it'}, then run again` };
    },
  };
}
