// Runs a single-table UPDATE/DELETE in primary-key-range batches, one short
// transaction each, pausing while the throttle says so (the engine's own
// throttler and signals, see backfill-throttle.ts), and reporting the cursor
// after every batch so a failed or interrupted run resumes from the last batch.

import type { MigrationStore } from './migration-store.js';
import { AbortedError } from '../util/errors.js';
import { syntaxOf } from '../dialects/registry.js';

export type KeyValue = string | number | null;

export interface BackfillTarget {
  /** `schema.table` or `table`. */
  table: string;
  key: string[];
  /** `UPDATE t SET ...` / `DELETE FROM t` without WHERE. */
  head: string;
  /** The statement's own condition, or null. */
  where: string | null;
}

export interface BackfillThrottle {
  /** The reason to pause now, or null. */
  reason(): Promise<string | null>;
}

export interface BackfillOptions {
  batchSize: number;
  /** Resume after this key (from a saved cursor), or null to start at the beginning. */
  resumeAfter: KeyValue[] | null;
  /** Called after each batch commits, with the last key it covered; save it to resume. */
  onBatch?: (cursor: KeyValue[], rowsAffected: number) => Promise<void>;
  throttle?: BackfillThrottle;
  /** Checked before every batch (and while throttled): a reason to stop, or null. The cursor of the last batch is saved. */
  stopRequested?: () => string | null;
  /** Told once when a pause begins (with the throttle's reason) and once when it ends. */
  onPause?: (reason: string) => void;
  onResume?: (pausedSeconds: number) => void;
  /** Sessions whose writes the expand/contract sync triggers ignore. */
  silenceSyncTriggers?: boolean;
}

export interface BackfillResult {
  batches: number;
  rowsAffected: number;
}

function qualified(store: MigrationStore, table: string): string {
  const dot = table.indexOf('.');
  return dot > 0 ? `${store.quoteIdent(table.slice(0, dot))}.${store.quoteIdent(table.slice(dot + 1))}` : store.quoteIdent(table);
}

function normaliseKey(values: unknown[]): KeyValue[] {
  return values.map((v) => (v === null || v === undefined ? null : typeof v === 'number' || typeof v === 'string' ? v : typeof v === 'bigint' ? v.toString() : Buffer.isBuffer(v) ? v.toString('binary') : String(v)));
}

export async function runBackfill(store: MigrationStore, target: BackfillTarget, options: BackfillOptions): Promise<BackfillResult> {
  const t = qualified(store, target.table);
  const keyCols = target.key.map((k) => store.quoteIdent(k));
  const tuple = keyCols.length === 1 ? keyCols[0]! : `(${keyCols.join(', ')})`;
  const order = keyCols.join(', ');
  const size = Math.max(1, Math.floor(options.batchSize));
  const ph = (from: number, n: number) => {
    const list = Array.from({ length: n }, (_, i) => store.placeholder(from + i));
    return n === 1 ? list[0]! : `(${list.join(', ')})`;
  };

  const marker = syntaxOf(store.dialect).backfillMarker;
  if (options.silenceSyncTriggers) await store.exec(marker.set);
  let cursor: KeyValue[] | null = options.resumeAfter;
  let batches = 0;
  let rowsAffected = 0;
  try {
    const checkStop = () => {
      const stop = options.stopRequested?.();
      if (stop) throw new AbortedError(`${stop}; the backfill stopped after its last committed batch and resumes there`);
    };
    for (;;) {
      checkStop();
      if (options.throttle) {
        let pausedAt = 0;
        for (;;) {
          checkStop();
          const why = await options.throttle.reason();
          if (!why) break;
          if (!pausedAt) {
            pausedAt = Date.now();
            options.onPause?.(why);
          }
          await new Promise((r) => setTimeout(r, 250));
        }
        if (pausedAt) options.onResume?.(Math.round((Date.now() - pausedAt) / 100) / 10);
      }
      // The key of the size-th row after the cursor; none = the last batch (open-ended, so
      // rows inserted meanwhile at the end are covered too).
      const params: unknown[] = cursor ? [...cursor] : [];
      const endRows = await store.query<Record<string, unknown>>(
        `SELECT ${order} FROM ${t}${cursor ? ` WHERE ${tuple} > ${ph(1, keyCols.length)}` : ''} ORDER BY ${order} LIMIT 1 OFFSET ${size - 1}`,
        params,
      );
      const end = endRows[0] ? normaliseKey(target.key.map((k) => endRows[0]![k])) : null;
      const conds: string[] = [];
      const bind: unknown[] = [];
      if (target.where) conds.push(`(${target.where})`);
      if (cursor) {
        conds.push(`${tuple} > ${ph(bind.length + 1, keyCols.length)}`);
        bind.push(...cursor);
      }
      if (end) {
        conds.push(`${tuple} <= ${ph(bind.length + 1, keyCols.length)}`);
        bind.push(...end);
      }
      const sql = `${target.head}${conds.length ? ` WHERE ${conds.join(' AND ')}` : ''}`;
      const r = await store.exec(sql, bind);
      batches++;
      rowsAffected += r.rowCount;
      if (!end) {
        // Last batch: the cursor is the current largest key, so a resume has nothing left.
        const last = await store.query<Record<string, unknown>>(`SELECT ${order} FROM ${t} ORDER BY ${target.key.map((k) => `${store.quoteIdent(k)} DESC`).join(', ')} LIMIT 1`);
        const lastKey = last[0] ? normaliseKey(target.key.map((k) => last[0]![k])) : cursor ?? [];
        await options.onBatch?.(lastKey, r.rowCount);
        break;
      }
      cursor = end;
      await options.onBatch?.(end, r.rowCount);
    }
  } finally {
    if (options.silenceSyncTriggers) await store.exec(marker.clear).catch(() => undefined);
  }
  return { batches, rowsAffected };
}
