// What a job may leave behind, how an operator reads it, and what a drop could not remove.
// Part of the seam between the engine and a database: see ../dialect.ts.

import type { TableRef } from './table.js';

export interface Leftover {
  /**
   * `checkpoint`: one table's row in the shared checkpoint table (name `schema.table`);
   * `checkpoint-table` (listed only when it holds none) and `heartbeat-table`: the
   * tables every job of the database shares, in use while any job runs there.
   * `statement`: a job's statement still running on the server (always in use; a killed
   * job's CREATE of a shadow commits only when it ends, so its table is not there yet).
   */
  kind: 'shadow' | 'backup' | 'changelog' | 'sentry' | 'preview' | 'slot' | 'publication' | 'checkpoint' | 'checkpoint-table' | 'heartbeat-table' | 'statement' | 'revert-point';
  name: string;
  /** The table it belongs to, when it belongs to one (a checkpoint always does). */
  table?: TableRef;
  /** True when a running job still holds it (it must not be removed). */
  inUse: boolean;
  /** Kept on purpose by a resumable job (`--resume` continues it); removing it throws that job's state away. */
  resumable?: boolean;
  /**
   * A revert point (name `schema.table`), or the old table one keeps: `shadowshift revert`
   * needs it while its window is open, so `cleanup --execute` keeps it then unless told
   * `--close-reverts`. Not debris, and never in a new job's way.
   */
  revertWindow?: { ageSeconds: number; windowSeconds: number; open: boolean };
}

/** How an operator reads each kind: `shadow table x`, `replication slot y`, `checkpoint of s.t`. */
export const LEFTOVER_LABELS: Record<Leftover['kind'], string> = {
  shadow: 'shadow table',
  backup: 'old table',
  changelog: 'changelog table',
  sentry: 'cut-over sentry table',
  preview: 'preview table',
  slot: 'replication slot',
  publication: 'publication',
  checkpoint: 'checkpoint of',
  'checkpoint-table': 'checkpoint table',
  'heartbeat-table': 'heartbeat table',
  statement: 'statement still running:',
  'revert-point': 'revert point of',
};

/** An artefact of a job that a drop could not remove, and the server's reason. */
export interface ArtefactLeft {
  kind: Leftover['kind'];
  /** As `cleanup` lists it (a checkpoint: the table it belongs to, `schema.table`). */
  name: string;
  reason: string;
}
