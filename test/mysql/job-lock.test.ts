// The per-table job lock survives its connection being killed: it is taken
// again on a new connection; if another job got it first, the job is told.

import { describe, it, expect } from 'vitest';
import { freshDb, openSession } from './helpers.js';
import { waitUntil } from '../support/alter.js';
import type { RowDataPacket } from 'mysql2/promise';

async function holder(admin: import('mysql2/promise').Connection, name: string): Promise<number | null> {
  const [r] = await admin.query<RowDataPacket[]>('SELECT IS_USED_LOCK(?) AS h', [name]);
  return r[0]?.h === null || r[0]?.h === undefined ? null : Number(r[0].h);
}

describe('MySQL job lock', () => {
  it('is taken again after its connection is killed, and still keeps a second job out', async () => {
    const { name: schema, admin, session, url } = await freshDb('jlk');
    const other = await openSession(url);
    const ref = { schema, name: 'tbl' };
    const lockName = `shadowshift:${schema}.tbl`;
    try {
      await session.acquireJobLock(ref);
      const first = await holder(admin, lockName);
      expect(first).not.toBeNull();
      await admin.query(`KILL ${first}`);
      await waitUntil(async () => {
        const h = await holder(admin, lockName);
        return h !== null && h !== first;
      }, 'the lock to be held by a new connection', 15_000);
      await expect(other.acquireJobLock(ref)).rejects.toThrow(/already running on/);
    } finally {
      await session.releaseJobLock(ref);
      await other.close();
      await session.close();
      await admin.end();
    }
  });

  it('reports the loss when another job takes the lock first', async () => {
    const { name: schema, admin, session, url } = await freshDb('jll');
    const other = await openSession(url);
    const ref = { schema, name: 'tbl' };
    const lockName = `shadowshift:${schema}.tbl`;
    try {
      await session.acquireJobLock(ref);
      const lost = session.jobLockLost(ref);
      const first = await holder(admin, lockName);
      await admin.query(`KILL ${first}`);
      // The other job grabs it as soon as it is free.
      await waitUntil(() => other.acquireJobLock(ref).then(() => true, () => false), 'the other job to take the lock', 15_000, 20);
      await expect(lost).rejects.toThrow(/lost the job lock on .*tbl .*two jobs never work on one table/);
    } finally {
      await other.releaseJobLock(ref);
      await other.close();
      await session.close();
      await admin.end();
    }
  });
});
