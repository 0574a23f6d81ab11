// pgoutput messages, as pg-logical-replication 2.5 parses them, turned into the items the
// change stream queues (../change-queue.ts), a transaction at a time:
//  - values stay text: the parser's per-type conversion (dates, JSON.parse, …) and its
//    BOM-stripping text decoder are replaced by a pass-through of the raw text.
//  - unchanged TOAST columns stay `undefined`.
//  - every event carries its transaction's id (from BEGIN): the applier waits for it
//    to become visible before it reads the original for that event.
//  - a transaction is queued at its commit; after a reconnect, transactions already
//    queued are skipped by their commit LSN.
//  - LSNs are compared as BigInt.

import type { Pgoutput, PgoutputPlugin } from 'pg-logical-replication';
import type { RowChange, CopyPlan, Row, StreamPosition } from '../dialect.js';
import type { ChangeQueue } from '../change-queue.js';
import { ShadowshiftError } from '../../util/errors.js';

export function parseLsn(lsn: string): bigint {
  const m = /^([0-9A-Fa-f]+)\/([0-9A-Fa-f]+)$/.exec(lsn.trim());
  if (!m) throw new Error(`not an LSN: ${lsn}`);
  return (BigInt('0x' + m[1]) << 32n) | BigInt('0x' + m[2]);
}

export function formatLsn(v: bigint): string {
  return `${(v >> 32n).toString(16).toUpperCase()}/${(v & 0xffffffffn).toString(16).toUpperCase()}`;
}

const exactDecoder = new TextDecoder('utf-8', { ignoreBOM: true });

/** Replaces the parser's tuple reader: raw text, no type parsers, BOM kept, unchanged TOAST = undefined. */
export function patchParser(plugin: PgoutputPlugin): void {
  const parser = (plugin as unknown as { parser: Record<string, unknown> }).parser;
  parser.readTuple = function readTuple(
    reader: { readInt16(): number; readUint8(): number; readInt32(): number; read(n: number): Uint8Array },
    relation: { columns: Array<{ name: string }> },
    unchangedToastFallback?: Record<string, unknown> | null,
  ) {
    const n = reader.readInt16();
    const tuple: Record<string, unknown> = Object.create(null);
    for (let i = 0; i < n; i++) {
      const name = relation.columns[i]!.name;
      const kind = reader.readUint8();
      if (kind === 0x74 /* t */ || kind === 0x62 /* b */) {
        const size = reader.readInt32();
        const buf = reader.read(size);
        tuple[name] = kind === 0x74 ? exactDecoder.decode(buf) : Buffer.from(buf);
      } else if (kind === 0x6e /* n */) {
        tuple[name] = null;
      } else if (kind === 0x75 /* u */) {
        tuple[name] = unchangedToastFallback?.[name];
      } else {
        throw new Error(`unknown pgoutput attribute kind ${String.fromCharCode(kind)}`);
      }
    }
    return tuple;
  };
}

export type PgItem =
  | { t: 'event'; event: RowChange; bytes: number }
  | { t: 'marker'; id: string }
  | { t: 'commit'; position: StreamPosition; commitTimeMs: number };

export class PgoutputDecoder {
  /** Between a BEGIN and its COMMIT. */
  inTx = false;
  private skipTx = false;
  /** The transaction being received (the library reads it as a signed 32-bit number). */
  private xid = 0;
  private pending: PgItem[] = [];
  /** Commit LSN (end) of the last transaction queued; a reconnect skips up to it. */
  lastQueued = 0n;

  constructor(
    private readonly queue: ChangeQueue<PgItem>,
    private readonly plan: CopyPlan,
    private readonly markerPrefix: string,
    /** The queue's bound: a transaction half that big is queued before its commit. */
    private readonly maxEvents: number,
    private readonly fail: (err: Error) => void,
  ) {}

  /** A new connection: anything received but not committed is discarded. */
  reconnected(): void {
    this.pending = [];
    this.inTx = false;
  }

  onMessage(msg: Pgoutput.Message): void {
    switch (msg.tag) {
      case 'begin': {
        this.inTx = true;
        this.pending = [];
        this.xid = msg.xid >>> 0;
        // Already queued before a reconnect: skip it.
        this.skipTx = msg.commitLsn !== null && parseLsn(msg.commitLsn) < this.lastQueued;
        return;
      }
      case 'commit': {
        this.inTx = false;
        const end = parseLsn(msg.commitEndLsn ?? msg.commitLsn ?? '0/0');
        if (!this.skipTx) {
          const commitTimeMs = Number((msg.commitTime as bigint) / 1000n);
          this.queue.pushAll(this.pending);
          this.queue.push({ t: 'commit', position: formatLsn(end), commitTimeMs });
          this.lastQueued = end;
        }
        this.pending = [];
        this.skipTx = false;
        this.queue.wake();
        return;
      }
      case 'insert':
        this.add({ kind: 'insert', after: row(msg.new), xid: this.xid });
        return;
      case 'update': {
        const before = msg.key ?? msg.old;
        this.add({ kind: 'update', before: before ? row(before) : null, after: row(msg.new), xid: this.xid });
        return;
      }
      case 'delete': {
        const before = msg.key ?? msg.old;
        if (before) this.add({ kind: 'delete', before: row(before), xid: this.xid });
        return;
      }
      case 'truncate':
        this.add({ kind: 'truncate' });
        return;
      case 'message': {
        if (msg.prefix !== this.markerPrefix) return;
        const id = exactDecoder.decode(msg.content);
        if (!this.inTx) this.queue.push({ t: 'marker', id });
        else if (!this.skipTx) this.pending.push({ t: 'marker', id });
        return;
      }
      case 'relation':
        this.checkRelation(msg);
        return;
      default:
        return; // type, origin
    }
  }

  /** Someone altered the original while the job runs: the copy plan no longer fits. */
  private checkRelation(msg: Pgoutput.MessageRelation): void {
    const expected = this.plan.original.columns.filter((c) => !c.generated).map((c) => c.name);
    const got = msg.columns.map((c) => c.name);
    if (msg.schema === this.plan.original.ref.schema && msg.name === this.plan.original.ref.name && got.join('\u0000') !== expected.join('\u0000')) {
      this.fail(
        new ShadowshiftError(
          `the columns of ${msg.name} changed while the job ran (now: ${got.join(', ')}; at the start: ${expected.join(', ')}). ` +
            `Someone else altered the table; the job stops and the original is as that ALTER left it. Run the job again.`,
        ),
      );
    }
  }

  private add(event: RowChange): void {
    if (this.skipTx) return;
    let bytes = 64;
    if (event.kind !== 'truncate') {
      for (const r of [event.kind === 'delete' ? event.before : event.after, event.kind === 'update' ? event.before : null]) {
        if (r) for (const v of Object.values(r)) if (typeof v === 'string') bytes += v.length;
      }
    }
    this.pending.push({ t: 'event', event, bytes });
    // A very large transaction: make its events takeable before its commit arrives
    // (the position only moves at the commit, and re-applying is idempotent).
    if (this.pending.length >= this.maxEvents / 2) {
      this.queue.pushAll(this.pending);
      this.pending = [];
      this.queue.wake();
    }
  }
}

function row(tuple: Record<string, unknown>): Row {
  const row: Row = {};
  for (const [k, v] of Object.entries(tuple)) row[k] = v as Row[string];
  return row;
}
