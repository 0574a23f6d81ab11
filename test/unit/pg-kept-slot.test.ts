// The resume's decision on a kept PostgreSQL slot, for the states test/postgres/resume-dropped-slot.test.ts
// cannot produce on a primary: a conflict with recovery (PostgreSQL 16's column only), the reasons
// PostgreSQL 17+ names, a dropped publication.

import { describe, it, expect } from 'vitest';
import { keptSlotProblem, type KeptSlotState } from '../../src/dialects/postgres/postgres-slot.js';

const names = { shadow: '_ss_0123456789_new_orders', slot: '_ss_0123456789_rslot', publication: '_ss_0123456789_rpub' };
const valid = { walStatus: 'reserved', conflicting: null, invalidationReason: null };
const decide = (slot: KeptSlotState['slot'], publication = true) => keptSlotProblem({ slot, publication }, names, '0/1A2B3C4');

describe('keptSlotProblem', () => {
  it('lets a valid slot resume, also one about to lose WAL (unreserved, extended) or at risk later', () => {
    expect(decide(valid)).toBeNull();
    expect(decide({ ...valid, walStatus: 'extended' })).toBeNull();
    expect(decide({ ...valid, walStatus: 'unreserved' })).toBeNull();
    expect(decide({ ...valid, conflicting: false })).toBeNull();
  });

  it('refuses a dropped slot; what is left is the shadow and the publication', () => {
    const p = decide(null)!;
    expect(p.problem).toContain('the replication slot _ss_0123456789_rslot that the checkpoint\'s position 0/1A2B3C4 is read from no longer exists');
    expect(p.left).toEqual([names.shadow, 'the publication _ss_0123456789_rpub']);
    expect(decide(null, false)!.left).toEqual([names.shadow]);
  });

  it('refuses an invalidated slot by each way a server version says it', () => {
    expect(decide({ ...valid, walStatus: 'lost' })!.problem).toContain('(wal_status lost: the WAL it needed was removed, past max_slot_wal_keep_size)');
    expect(decide({ ...valid, walStatus: 'lost', invalidationReason: 'wal_removed' })!.problem).toContain('set max_slot_wal_keep_size above');
    expect(decide({ ...valid, conflicting: true })!.problem).toContain('(a conflict with recovery, wal_status reserved)');
    expect(decide({ ...valid, conflicting: true, invalidationReason: 'rows_removed' })!.problem).toContain('(rows_removed, wal_status reserved)');
    expect(decide({ ...valid, invalidationReason: 'idle_timeout' })!.problem).toContain('idle_replication_slot_timeout');
    expect(decide({ ...valid, walStatus: 'lost' })!.left).toEqual([names.shadow, 'the publication _ss_0123456789_rpub', 'the replication slot _ss_0123456789_rslot']);
  });

  it('refuses a kept slot whose publication was dropped', () => {
    const p = decide(valid, false)!;
    expect(p.problem).toContain('the publication _ss_0123456789_rpub that the replication slot _ss_0123456789_rslot decodes');
    expect(p.left).toEqual([names.shadow, 'the replication slot _ss_0123456789_rslot']);
  });
});
