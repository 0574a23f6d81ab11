// The transactions of the adversarial workload. Each recipe is aimed at a way
// the engine could go wrong: several rows of several tenants in one
// transaction; key changes of rows whose ~50 KB values stay untouched (unchanged
// TOAST in pgoutput) followed, in the same transaction, by a delete, a rewrite
// or another move of the new key; key swaps through a temporary key; sid swaps
// (transient unique conflicts when changes are reordered); a key deleted and
// inserted again; rollbacks; an expected duplicate-key error; COMMITs whose
// acknowledgement is deliberately lost.

import type { KeySpace } from './keyspace.js';
import { keyOf, TxView, type AdvModel, type Row } from './model.js';
import { isBigRow, rowOfCells, type Cells, type RowFactory, type Sql, type Statements } from './rows.js';
import { int, pick, type Cell, type Rng } from './values.js';

export type StepKind =
  | 'insert'
  | 'update-small'
  | 'update-small-toast'
  | 'update-big'
  | 'move'
  | 'move-big'
  | 'sid'
  | 'delete'
  | 'select'
  | 'dup-insert';

export interface Step extends Sql {
  kind: StepKind;
  /** Rows the statement must affect, or the error it must raise. */
  expect: number | 'duplicate';
  /** For a select: the row it must return (null: none). */
  check?: Row | null;
}

export interface TxPlan {
  recipe: Recipe;
  steps: Step[];
  end: 'commit' | 'rollback' | 'abandon';
  view: TxView;
  /** Keys held for the transaction: released when it ends. */
  held: string[];
}

export const RECIPE_WEIGHTS = {
  insert: 9,
  'update-small': 12,
  'update-big': 6,
  move: 8,
  sid: 3,
  delete: 6,
  multi: 14,
  'move-delete': 4,
  'move-rewrite': 4,
  'move-chain': 3,
  'swap-keys': 3,
  'swap-sids': 2,
  'delete-reinsert': 3,
  'move-reinsert': 3,
  'update-move': 3,
  rollback: 6,
  'dup-insert': 2,
  abandon: 1,
  select: 6,
} as const;

export type Recipe = keyof typeof RECIPE_WEIGHTS;

/** Recipes that write and commit: what rollback/abandon wrap. */
const WRITING: Recipe[] = ['insert', 'update-small', 'update-big', 'move', 'sid', 'delete', 'multi', 'move-delete', 'move-rewrite', 'move-chain', 'swap-keys', 'swap-sids', 'delete-reinsert', 'move-reinsert', 'update-move'];

const SINGLE: Recipe[] = ['insert', 'update-small', 'update-big', 'move', 'sid', 'delete', 'select'];

export function pickRecipe(r: Rng): Recipe {
  const entries = Object.entries(RECIPE_WEIGHTS) as Array<[Recipe, number]>;
  let x = r() * entries.reduce((s, [, w]) => s + w, 0);
  for (const [name, w] of entries) if ((x -= w) < 0) return name;
  return 'insert';
}

/** Builds one transaction against its own view of the model. */
class TxBuilder {
  readonly view: TxView;
  readonly steps: Step[] = [];
  readonly held: string[] = [];

  constructor(
    model: AdvModel,
    private readonly keys: KeySpace,
    private readonly rows: RowFactory,
    private readonly sql: Statements,
    private readonly rand: Rng,
  ) {
    this.view = new TxView(model);
  }

  private row(key: string): Row {
    const r = this.view.get(key);
    if (!r) throw new Error(`workload bug: ${key} has no row in this transaction`);
    return r;
  }

  take(preferBig: number): string | null {
    const t = this.keys.take(this.rand() < preferBig);
    if (!t) return null;
    this.held.push(t.key);
    return t.key;
  }

  fresh(): { tenant: number; k: string } {
    const n = this.keys.fresh();
    this.held.push(n.key);
    return n;
  }

  insertAt(tenant: number, k: string, pBig: number, kind: StepKind = 'insert'): string {
    const cells = this.rows.newRow(tenant, k, pBig);
    this.steps.push({ ...this.sql.insert([cells]), kind, expect: 1 });
    const row = rowOfCells(cells);
    this.view.insert(row);
    return keyOf(row.tenant_id!, row.k!);
  }

  insertNew(pBig = 0.1): string {
    const { tenant, k } = this.fresh();
    return this.insertAt(tenant, k, pBig);
  }

  private update(key: string, cells: Cells, kind: StepKind): string {
    const before = this.row(key);
    this.steps.push({ ...this.sql.update(before, cells), kind, expect: 1 });
    return this.view.update(key, rowOfCells(cells));
  }

  updateSmall(key: string): string {
    return this.update(key, this.rows.smallChanges(), isBigRow(this.row(key)) ? 'update-small-toast' : 'update-small');
  }

  updateBig(key: string, both: boolean): string {
    return this.update(key, this.rows.bigChanges(both), 'update-big');
  }

  /** Moves a row to (tenant, k), a key this transaction holds; sometimes changes an ordinary column too. */
  moveTo(key: string, tenant: number, k: string, alsoSmall = this.rand() < 0.4): string {
    const cells: Cells = new Map([
      ['tenant_id', { param: tenant, text: String(tenant) }],
      ['k', { param: k, text: k }],
    ]);
    if (alsoSmall) for (const [c, v] of this.rows.smallChanges()) cells.set(c, v);
    return this.update(key, cells, isBigRow(this.row(key)) ? 'move-big' : 'move');
  }

  move(key: string): string {
    const { tenant, k } = this.fresh();
    return this.moveTo(key, tenant, k);
  }

  setSid(key: string, sid: Cell): string {
    return this.update(key, new Map([['sid', sid]]), 'sid');
  }

  delete(key: string): void {
    this.steps.push({ ...this.sql.delete(this.row(key)), kind: 'delete', expect: 1 });
    this.view.delete(key);
  }

  select(key: string): void {
    const row = this.row(key);
    this.steps.push({ ...this.sql.select(row), kind: 'select', expect: -1, check: row });
  }

  current(key: string): Row {
    return this.row(key);
  }

  /** An INSERT that must fail: the key (or the sid) of an existing row. */
  duplicateOf(key: string): void {
    const existing = this.row(key);
    const cells = this.rows.newRow(Number(existing.tenant_id), existing.k!, 0);
    if (this.rand() < 0.5) {
      // Same sid under a fresh key: a duplicate on the unique sid, not on the primary key.
      const { tenant, k } = this.fresh();
      cells.set('tenant_id', { param: tenant, text: String(tenant) });
      cells.set('k', { param: k, text: k });
      cells.set('sid', { param: existing.sid, text: existing.sid });
    }
    this.steps.push({ ...this.sql.insert([cells]), kind: 'dup-insert', expect: 'duplicate' });
  }

  keyParts(key: string): { tenant: number; k: string } {
    const [t, k] = JSON.parse(key) as [string, string];
    return { tenant: Number(t), k };
  }
}

export class Planner {
  constructor(
    private readonly model: AdvModel,
    private readonly keys: KeySpace,
    private readonly rows: RowFactory,
    private readonly sql: Statements,
    private readonly rand: Rng,
  ) {}

  plan(recipe: Recipe): TxPlan {
    const b = new TxBuilder(this.model, this.keys, this.rows, this.sql, this.rand);
    let end: TxPlan['end'] = 'commit';
    let actual = recipe;
    if (recipe === 'rollback' || recipe === 'abandon') {
      end = recipe;
      this.build(b, pick(this.rand, WRITING));
    } else if (!this.build(b, recipe)) {
      actual = 'insert';
      this.build(b, 'insert');
    }
    if (actual === 'dup-insert') end = 'rollback';
    return { recipe: actual, steps: b.steps, end, view: b.view, held: b.held };
  }

  /** Adds the recipe's steps; false when there were not enough rows for it (nothing was added). */
  private build(b: TxBuilder, recipe: Recipe): boolean {
    const r = this.rand;
    const need = (n: number, preferBig: number): string[] | null => {
      const got: string[] = [];
      for (let i = 0; i < n; i++) {
        const k = b.take(preferBig);
        if (!k) return null;
        got.push(k);
      }
      return got;
    };
    switch (recipe) {
      case 'insert':
        b.insertNew();
        return true;
      case 'multi': {
        const n = int(r, 2, 4);
        for (let i = 0; i < n; i++) this.build(b, pick(r, SINGLE));
        return b.steps.length > 0;
      }
      case 'select': {
        const ks = need(int(r, 1, 3), 0.3);
        if (!ks) return false;
        for (const k of ks) b.select(k);
        return true;
      }
      default:
    }
    const preferBig = recipe === 'update-small' ? 0.5 : recipe === 'delete' ? 0.3 : 0.7;
    const ks = need(recipe === 'swap-keys' || recipe === 'swap-sids' || recipe === 'dup-insert' ? 2 : 1, preferBig);
    if (!ks) return false;
    const [a, c] = ks as [string, string | undefined];
    switch (recipe) {
      case 'update-small':
        b.updateSmall(a);
        break;
      case 'update-big':
        b.updateBig(a, r() < 0.5);
        break;
      case 'move':
        b.move(a);
        break;
      case 'sid':
        b.setSid(a, this.rows.freshSid());
        break;
      case 'delete':
        b.delete(a);
        break;
      case 'move-delete':
        b.delete(b.move(a));
        break;
      case 'move-rewrite':
        b.updateBig(b.move(a), true);
        break;
      case 'move-chain':
        b.move(b.move(a));
        break;
      case 'swap-keys': {
        const ka = b.keyParts(a);
        const kc = b.keyParts(c!);
        const tmp = b.move(a);
        b.moveTo(c!, ka.tenant, ka.k);
        b.moveTo(tmp, kc.tenant, kc.k);
        break;
      }
      case 'swap-sids': {
        const sidA = b.current(a).sid!;
        const sidC = b.current(c!).sid!;
        b.setSid(a, this.rows.freshSid());
        b.setSid(c!, { param: sidA, text: sidA });
        b.setSid(a, { param: sidC, text: sidC });
        break;
      }
      case 'delete-reinsert': {
        const { tenant, k } = b.keyParts(a);
        b.delete(a);
        b.insertAt(tenant, k, 0.5);
        break;
      }
      case 'move-reinsert': {
        const { tenant, k } = b.keyParts(a);
        b.move(a);
        b.insertAt(tenant, k, 0.3);
        break;
      }
      case 'update-move':
        b.move(b.updateSmall(a));
        break;
      case 'dup-insert':
        b.updateSmall(c!);
        b.duplicateOf(a);
        break;
      default:
        throw new Error(`unknown recipe ${recipe}`);
    }
    return true;
  }
}
