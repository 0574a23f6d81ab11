// The PostgreSQL applier's coalescing (a pure function): the exact groups for the key
// change chains that used to leave ghost rows, and a model check that applying the
// groups the way the applier does gives the table that applying every event in order
// gives, without ever needing to read the original.

import { describe, expect, it } from 'vitest';
import { coalesce, type Action } from '../../src/dialects/postgres/postgres-coalesce.js';
import type { PlanColumn, PlanSql } from '../../src/dialects/postgres/postgres-plan-sql.js';
import type { RowChange, Row } from '../../src/dialects/dialect.js';
import { mulberry32 } from '../../src/util/random.js';

const column = (name: string): PlanColumn => ({ source: name, target: name, sourceType: 'text', targetType: 'text', targetBase: 'text', targetTypeOid: 25, identityAlways: false, lossyCheck: false });
const columns = ['id', 'v', 'body'].map(column);
const P: PlanSql = { original: 'o', shadow: 's', columns, key: [columns[0]!], bySource: new Map(columns.map((c) => [c.source, c])), overriding: false };

const U = undefined; // an unchanged TOAST value
const ins = (id: number, v = `v${id}`, body = `b${id}`): RowChange => ({ kind: 'insert', after: { id: String(id), v, body } });
/** An UPDATE of the row at `from` (to `to`, a key change when they differ); body U = unchanged TOAST. */
const upd = (from: number, to: number, v: string, body?: string): RowChange => ({
  kind: 'update',
  before: from === to ? null : { id: String(from) },
  after: { id: String(to), v, body },
});
const del = (id: number): RowChange => ({ kind: 'delete', before: { id: String(id) } });

/** Groups with their actions in key order, keys and rows in short form. */
function show(groups: Action[][]): string[][] {
  const text = (a: Action) => {
    const row = 'row' in a ? ` (${a.row.v},${a.row.body === undefined ? 'U' : a.row.body})` : '';
    return a.op === 'move' ? `move ${a.from.join()}→${a.key.join()}${row}` : `${a.op} ${a.key.join()}${row}`;
  };
  return groups.map((g) => [...g].sort((x, y) => Number(x.key[0]) - Number(y.key[0])).map(text));
}

describe('coalesce: moves replaced later in the batch', () => {
  const cases: Array<[string, RowChange[], string[][]]> = [
    ['move, then delete of the new key', [upd(1, 2, 'a', U), del(2)], [['delete 1', 'delete 2']]],
    ['move, then a full image of the new key', [upd(1, 2, 'a', U), upd(2, 2, 'b', 'B')], [['delete 1', 'upsert 2 (b,B)']]],
    ['move, then a partial update of the new key', [upd(1, 2, 'a', U), upd(2, 2, 'b', U)], [['move 1→2 (b,U)']]],
    ['move, partial update, delete', [upd(1, 2, 'a', U), upd(2, 2, 'b', U), del(2)], [['delete 1', 'delete 2']]],
    ['chain 1→2→3', [upd(1, 2, 'a', U), upd(2, 3, 'b', U)], [['delete 2', 'move 1→3 (b,U)']]],
    ['chain 1→2→3, then delete', [upd(1, 2, 'a', U), upd(2, 3, 'b', U), del(3)], [['delete 1', 'delete 2', 'delete 3']]],
    ['chain 1→2→3, then a full image', [upd(1, 2, 'a', U), upd(2, 3, 'b', U), upd(3, 3, 'c', 'C')], [['delete 1', 'delete 2', 'upsert 3 (c,C)']]],
    ['chain ending in a full image with a key change', [upd(1, 2, 'a', U), upd(2, 3, 'b', 'B')], [['delete 1', 'delete 2', 'upsert 3 (b,B)']]],
    ['1→2, then 2→1', [upd(1, 2, 'a', U), upd(2, 1, 'b', U)], [['move 1→2 (a,U)'], ['move 2→1 (b,U)']]],
    ['1→2, then 2→1, then delete', [upd(1, 2, 'a', U), upd(2, 1, 'b', U), del(1)], [['move 1→2 (a,U)'], ['delete 1', 'delete 2']]],
    ['move, then insert of the old key', [upd(1, 2, 'a', U), ins(1)], [['move 1→2 (a,U)'], ['upsert 1 (v1,b1)']]],
    ['move, then insert and delete of the old key', [upd(1, 2, 'a', U), ins(1), del(1)], [['move 1→2 (a,U)'], ['delete 1']]],
    ['move onto a key freed in the batch, then on', [del(2), upd(1, 2, 'a', U), upd(2, 3, 'b', U)], [['delete 2', 'move 1→3 (b,U)']]],
    ['swap through a spare key', [upd(1, 0, 'a', U), upd(2, 1, 'b', U), upd(0, 2, 'c', U)], [['move 1→0 (a,U)'], ['move 2→1 (b,U)'], ['move 0→2 (c,U)']]],
    ['another row moved onto the old key, then the first deleted', [upd(1, 2, 'a', U), upd(3, 1, 'b', U), del(2)], [['move 1→2 (a,U)'], ['move 3→1 (b,U)', 'delete 2']]],
    ['insert, then a move: a full image', [ins(1, 'a', 'B'), upd(1, 2, 'b', U)], [['delete 1', 'upsert 2 (b,B)']]],
    ['partial updates in place merge', [upd(1, 1, 'a', U), upd(1, 1, 'b', U)], [['update 1 (b,U)']]],
  ];
  for (const [name, events, expected] of cases) {
    it(name, () => {
      expect(show(coalesce(P, events))).toEqual(expected);
    });
  }
});

describe('coalesce: the transaction a move left its key in', () => {
  // The applier trusts the shadow row at `from` only if no read of the original can have
  // seen the transaction in which the row left `from` (postgres-original-reads.ts).
  const inTx = (xid: number, e: RowChange): RowChange => ({ ...e, xid }) as RowChange;
  const moves = (groups: Action[][]) => groups.flat().filter((a) => a.op === 'move').map((a) => a.op === 'move' && `${a.from.join()}→${a.key.join()} left in ${a.xid}`);

  it('a move: its own transaction', () => {
    expect(moves(coalesce(P, [inTx(7, upd(1, 2, 'a', U))]))).toEqual(['1→2 left in 7']);
  });
  it('a chain: the transaction of its first step, where it left the key it reads from', () => {
    expect(moves(coalesce(P, [inTx(7, upd(1, 2, 'a', U)), inTx(8, upd(2, 3, 'b', U)), inTx(9, upd(3, 4, 'c', U))]))).toEqual(['1→4 left in 7']);
  });
  it('a partial update of the new key keeps the move\'s', () => {
    expect(moves(coalesce(P, [inTx(7, upd(1, 2, 'a', U)), inTx(8, upd(2, 2, 'b', U))]))).toEqual(['1→2 left in 7']);
  });
  it('a partial update before the move merges into it: the move\'s transaction', () => {
    expect(moves(coalesce(P, [inTx(6, upd(1, 1, 'a', U)), inTx(7, upd(1, 2, 'b', U))]))).toEqual(['1→2 left in 7']);
  });
  it('back and forth: each group its own', () => {
    expect(moves(coalesce(P, [inTx(7, upd(1, 2, 'a', U)), inTx(8, upd(2, 1, 'b', U))]))).toEqual(['1→2 left in 7', '2→1 left in 8']);
  });
});

// --- model check -----------------------------------------------------------------

/** Deterministic, so a failure names a reproducible seed. */
const rng = mulberry32;

/** A valid history over keys 0..5: the events and the table it leaves. */
function history(seed: number, start: Map<string, Row>): { events: RowChange[]; truth: Map<string, Row> } {
  const r = rng(seed);
  const truth = new Map([...start].map(([k, v]) => [k, { ...v }]));
  const events: RowChange[] = [];
  const pick = <T>(xs: T[]) => xs[Math.floor(r() * xs.length)]!;
  const n = 1 + Math.floor(r() * 12);
  for (let i = 0; i < n; i++) {
    const used = [...truth.keys()].map(Number);
    const free = [0, 1, 2, 3, 4, 5].filter((k) => !truth.has(String(k)));
    const choice = r();
    const v = `v${seed}.${i}`;
    if (choice < 0.15 && free.length) {
      const k = pick(free);
      const e = ins(k, v, `b${seed}.${i}`);
      events.push(e);
      truth.set(String(k), { ...(e as { after: Row }).after });
    } else if (choice < 0.3 && used.length) {
      const k = pick(used);
      events.push(del(k));
      truth.delete(String(k));
    } else if (used.length) {
      const from = pick(used);
      const to = choice < 0.8 && free.length ? pick(free) : from;
      const body = r() < 0.8 ? U : `b${seed}.${i}`;
      events.push(upd(from, to, v, body));
      const row = truth.get(String(from))!;
      truth.delete(String(from));
      truth.set(String(to), { id: String(to), v, body: body ?? row.body });
    }
  }
  return { events, truth };
}

/** What the applier does with the groups, on a model of the shadow; `reverse` applies each group's steps backwards. */
function applyModel(shadow: Map<string, Row>, groups: Action[][], reverse: boolean): { shadow: Map<string, Row>; reads: number } {
  const s = new Map([...shadow].map(([k, v]) => [k, { ...v }]));
  let reads = 0;
  const merge = (base: Row, over: Row): Row => {
    const m = { ...base };
    for (const [k, v] of Object.entries(over)) if (v !== undefined) m[k] = v;
    return m;
  };
  for (const group of groups) {
    const order = (xs: Action[]) => (reverse ? [...xs].reverse() : xs);
    for (const a of order(group.filter((x) => x.op === 'delete'))) s.delete(String(a.key[0]));
    for (const a of order(group.filter((x) => x.op === 'update' || x.op === 'move'))) {
      const k = String(a.key[0]);
      if (a.op === 'move') {
        s.delete(k);
        const r = s.get(String(a.from[0]));
        if (!r) reads++;
        else {
          s.delete(String(a.from[0]));
          s.set(k, merge(r, a.row));
        }
      } else if (a.op === 'update') {
        const r = s.get(k);
        if (!r) reads++;
        else s.set(k, merge(r, a.row));
      }
    }
    for (const a of order(group.filter((x) => x.op === 'upsert'))) if (a.op === 'upsert') s.set(String(a.key[0]), { ...a.row });
  }
  return { shadow: s, reads };
}

const sorted = (m: Map<string, Row>) => [...m].sort(([a], [b]) => a.localeCompare(b)).map(([, row]) => row);

describe('coalesce: model check against applying every event in order', () => {
  it('gives the original table for 5000 random histories, whatever the order within a group, without reading the original', () => {
    const start = new Map<string, Row>();
    for (const k of [0, 1, 2, 3]) start.set(String(k), { id: String(k), v: `v${k}`, body: `b${k}` });
    for (let seed = 1; seed <= 5_000; seed++) {
      const { events, truth } = history(seed, start);
      const groups = coalesce(P, events);
      for (const reverse of [false, true]) {
        const { shadow, reads } = applyModel(start, groups, reverse);
        if (reads || JSON.stringify(sorted(shadow)) !== JSON.stringify(sorted(truth))) {
          expect({ seed, reverse, events, groups: show(groups), reads, shadow: sorted(shadow) }).toEqual({ seed, reverse, events, groups: show(groups), reads: 0, shadow: sorted(truth) });
        }
      }
      // The fallback (one event at a time) is exact too.
      const single = applyModel(start, events.flatMap((e) => coalesce(P, [e])), false);
      expect(single.reads).toBe(0);
      expect(sorted(single.shadow)).toEqual(sorted(truth));
    }
  });
});

// --- reads ahead of the stream (issue 10) ------------------------------------------
//
// The shadow as the copy and the applier's own reads leave it: a row under a key may be
// the original's row as it was AFTER some of the batch's transactions (read ahead). The
// applier's rule (postgres-original-reads.ts): a move whose transaction the newest read
// saw deletes the row under its old key and completes its image at the new key from the
// original (the values it lacks, from whatever row is there now); any read during the
// batch sees every transaction of the batch (it waits for them). Modelled with
// transactions 0, 1, ... of one or more events each, and a read "at τ" seeing 0..τ-1.

/** The table after the first τ transactions, for τ = 0..(last xid + 1). */
function statesOf(start: Map<string, Row>, events: RowChange[]): Array<Map<string, Row>> {
  const states = [new Map(start)];
  let t = new Map(start);
  events.forEach((e, i) => {
    t = new Map(t);
    if (e.kind === 'insert') t.set(String(e.after.id), { ...e.after });
    else if (e.kind === 'delete') t.delete(String(e.before.id));
    else if (e.kind === 'update') {
      const from = String((e.before ?? e.after).id);
      const row = t.get(from)!;
      t.delete(from);
      t.set(String(e.after.id), { ...row, ...Object.fromEntries(Object.entries(e.after).filter(([, v]) => v !== undefined)) });
    }
    const next = events[i + 1];
    if (!next || (next as { xid?: number }).xid !== (e as { xid?: number }).xid) states.push(t);
  });
  return states;
}

/**
 * What the applier does with one batch's groups, on a model of the shadow `s` (changed in
 * place). A read during the batch sees at least the batch's transactions (it waits for
 * them) and possibly later ones: at τ from `tau(min)`, never older than the newest read.
 */
function applyReadingAhead(s: Map<string, Row>, groups: Action[][], states: Array<Map<string, Row>>, reads: { newest: number; tau: (min: number) => number }, batchEnd: number): void {
  const merge = (base: Row, over: Row): Row => ({ ...base, ...Object.fromEntries(Object.entries(over).filter(([, v]) => v !== undefined)) });
  // completeFromOriginal: the image's own values, the missing ones from the original's row now at k.
  const read = (k: string, row: Row) => {
    reads.newest = Math.max(reads.newest, reads.tau(batchEnd));
    const t = states[reads.newest]!.get(k);
    if (t && !s.has(k)) s.set(k, merge(t, row));
  };
  for (const group of groups) {
    for (const a of group.filter((x) => x.op === 'delete')) s.delete(String(a.key[0]));
    for (const a of group.filter((x) => x.op === 'update' || x.op === 'move')) {
      const k = String(a.key[0]);
      if (a.op === 'move') {
        s.delete(k);
        const from = String(a.from[0]);
        if (a.xid === undefined || a.xid < reads.newest) {
          s.delete(from);
          read(k, a.row);
        } else {
          const r = s.get(from);
          if (!r) read(k, a.row);
          else {
            s.delete(from);
            s.set(k, merge(r, a.row));
          }
        }
      } else if (a.op === 'update') {
        const r = s.get(k);
        if (!r) read(k, a.row);
        else s.set(k, merge(r, a.row));
      }
    }
    for (const a of group.filter((x) => x.op === 'upsert')) if (a.op === 'upsert') s.set(String(a.key[0]), { ...a.row });
  }
}

describe('coalesce: model check with rows read ahead of the stream', () => {
  it('gives the original table for 5000 random histories when shadow rows were read after some of the batch or the next one', () => {
    const start = new Map<string, Row>();
    for (const k of [0, 1, 2, 3]) start.set(String(k), { id: String(k), v: `v${k}`, body: `b${k}` });
    let distrusted = 0;
    for (let seed = 1; seed <= 5_000; seed++) {
      const r = rng(seed * 7919);
      const { events: plain, truth } = history(seed, start);
      let xid = 0;
      const events = plain.map((e, i) => ({ ...e, xid: i > 0 && r() < 0.5 ? ++xid : xid }) as RowChange);
      const states = statesOf(start, events);
      expect(sorted(states[states.length - 1]!)).toEqual(sorted(truth));
      // Each key was last read (copied) at some τ: 0 is the state the stream expects.
      const shadow0 = new Map<string, Row>();
      let newest = -1;
      for (const k of ['0', '1', '2', '3', '4', '5']) {
        const tau = r() < 0.5 ? 0 : Math.floor(r() * states.length);
        if (tau > 0) newest = Math.max(newest, tau);
        const row = states[tau]!.get(k);
        if (row) shadow0.set(k, { ...row });
      }
      // Two batches (split anywhere, even inside a transaction), coalesced or one event at a time.
      const split = Math.floor(r() * (events.length + 1));
      const batches = [events.slice(0, split), events.slice(split)].filter((b) => b.length > 0);
      for (const oneByOne of [false, true]) {
        const s = new Map([...shadow0].map(([k, v]) => [k, { ...v }]));
        const reads = { newest, tau: (min: number) => min + Math.floor(r() * (states.length - min)) };
        for (const batch of batches) {
          const groups = oneByOne ? batch.flatMap((e) => coalesce(P, [e])) : coalesce(P, batch);
          distrusted += groups.flat().filter((a) => a.op === 'move' && a.xid! < reads.newest).length;
          applyReadingAhead(s, groups, states, reads, (batch[batch.length - 1] as { xid: number }).xid + 1);
        }
        if (JSON.stringify(sorted(s)) !== JSON.stringify(sorted(truth))) {
          expect({ seed, split, oneByOne, events, shadow: sorted(shadow0), got: sorted(s) }).toEqual({ seed, split, oneByOne, events, shadow: sorted(shadow0), got: sorted(truth) });
        }
      }
    }
    expect(distrusted).toBeGreaterThan(1000);
  });

  it('finds the bug when a move trusts a row read after it (the rule is what makes it exact)', () => {
    // Row 1 moves to 2, then row 3 moves into 1; the copy read key 1 after both.
    const start = new Map<string, Row>([['1', { id: '1', v: 'v1', body: 'b1' }], ['3', { id: '3', v: 'v3', body: 'b3' }]]);
    const events = [upd(1, 2, 'a', U), upd(3, 1, 'c', U)].map((e, i) => ({ ...e, xid: i }) as RowChange);
    const states = statesOf(start, events);
    const shadow = () => new Map([['1', { ...states[2]!.get('1')! }], ['3', { ...start.get('3')! }]]);
    const exact = shadow();
    applyReadingAhead(exact, coalesce(P, events), states, { newest: 2, tau: () => 2 }, 2);
    expect(sorted(exact)).toEqual(sorted(states[2]!));
    const trusting = shadow();
    applyReadingAhead(trusting, coalesce(P, events), states, { newest: -1, tau: () => -1 }, 2);
    expect(trusting.get('2')!.body).toBe('b3');
  });
});
