// The interface the scheduler drives every operation kind through.

import type { Dialect } from '../../db.js';
import type { WorkloadIds } from '../ids.js';
import type { WorkloadModel } from '../model.js';
import type { RandomValues } from '../random.js';
import type { WorkloadRow } from '../schema.js';
import type { StatsRecorder } from '../stats.js';

export type OpKind = 'insert' | 'update' | 'update-pk' | 'delete' | 'select';

/** What an operation may use of the workload. */
export interface OpContext {
  readonly dialect: Dialect;
  /** The table, quoted. */
  readonly table: string;
  quote(name: string): string;
  readonly model: WorkloadModel;
  readonly ids: WorkloadIds;
  readonly random: RandomValues;
  readonly stats: StatsRecorder;
}

export interface Statement {
  sql: string;
  params: unknown[];
}

/**
 * One kind of operation on a target T (its ids and the rows before and
 * after). For each run the scheduler calls target(), runs statement(), then
 * exactly one of ok(), failed() and unknown().
 */
export interface Operation<T> {
  readonly kind: OpKind;
  /** Writes run with exec and must affect exactly one row; a read runs with query. */
  readonly write: boolean;
  /**
   * Takes the target's ids out of their pools and draws its values: all of
   * an operation's randomness, drawn before the statement is sent.
   */
  target(ctx: OpContext): T;
  /** The id error and anomaly samples name. */
  sampleId(target: T): string;
  statement(ctx: OpContext, target: T): Statement;
  /** The statement was acknowledged (rows: what a read returned). */
  ok(ctx: OpContext, target: T, rows: Record<string, unknown>[]): void;
  /** The statement certainly did not commit. */
  failed(ctx: OpContext, target: T): void;
  /** The statement may have committed or not. */
  unknown(ctx: OpContext, target: T): void;
}

/** A live id, taken out of its pool, and the row the model holds for it. */
export interface LiveTarget {
  id: number;
  before: WorkloadRow;
}

/** A random live id and its row. */
export function takeLive(ctx: OpContext): LiveTarget {
  const id = ctx.ids.live.take(ctx.random.next())!;
  const state = ctx.model.get(id);
  if (state.kind !== 'present') throw new Error(`workload bug: live id ${id} is ${state.kind}`);
  return { id, before: state.row };
}
