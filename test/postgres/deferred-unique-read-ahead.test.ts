// A deferred UNIQUE index built while the shadow still holds a row the copy read ahead
// of the stream. The copy's last chunk reads row 3 after two committed changes moved the
// unique value 10 from row 1 to row 3, and before the stream delivers them: the shadow
// has 10 twice (row 1 as first copied, row 3 as read) until row 1's change is applied. A
// UNIQUE built from that state fails as "duplicated" and the job stops, although the
// data is unique. The engine must first apply the stream up to a marker written after
// the copy (docs/ARCHITECTURE.md, "Partial key changes").
//
// The stream is held back deterministically on a throwaway server: its changes commit
// with synchronous_commit = off (the default of the test servers), and with
// wal_writer_delay at its maximum nothing flushes their commit records (which a logical
// walsender waits for) for up to 10 s — except a commit that asks for a flush, such as
// the engine's markers (synchronous_commit = local).

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startPostgres, type RunningServer } from '../support/servers.js';
import { openDb, type Db } from '../support/db.js';
import { newJob, waitUntil } from '../support/alter.js';
import { holdNextChunkUntil } from '../support/held-chunk.js';

let server: RunningServer;
let db: Db;

beforeAll(async () => {
  server = await startPostgres({ extraArgs: ['-c', 'wal_writer_delay=10000'] });
  db = await openDb(server.url);
});
afterAll(async () => {
  await db?.close();
  await server?.stop();
});

describe('postgres: deferred UNIQUE index after rows read ahead of the stream', () => {
  it('is built once the changes the copy already saw are applied', async () => {
    await db.exec('CREATE TABLE t (id int PRIMARY KEY, u int UNIQUE, v int)');
    await db.exec('INSERT INTO t VALUES (1, 10, 1), (2, 20, 2), (3, 30, 3), (4, 40, 4)');
    const dir = mkdtempSync(join(tmpdir(), 'ss-dura-'));
    const flag = join(dir, 'postpone');
    writeFileSync(flag, '');
    // Chunks of 2: (-inf, 2] is copied first, then (2, 4] waits until row 3 has u = 10.
    const staging = holdNextChunkUntil(['UPDATE t SET u = 99 WHERE id = 1', 'UPDATE t SET u = 10 WHERE id = 3']);
    let hook: ReturnType<typeof staging> | undefined;
    const job = newJob(server.url, 't', 'ADD COLUMN w int', {
      checksum: false,
      postponeCutoverFlagFile: flag,
      chunkSize: 2,
      // A read ahead of the stream happens only under row locks (at the copy's snapshot nothing is read ahead).
      copySnapshotMaxSeconds: 0,
      testHooks: { beforeChunkCommit: (range) => hook?.(range) ?? Promise.resolve() },
    });
    hook = staging(job, db, server.url);
    const run = job.execute(await job.prepare());
    run.catch(() => undefined);
    try {
      await staging.done;
      await waitUntil(() => ['postponed', 'failed'].includes(job.status().state), 'the copy and the index build');
      expect(job.status().error).toBeNull();
      // A last row, committed with a flush; once it is in the shadow, everything before it is.
      await db.exec('BEGIN');
      await db.exec('SET LOCAL synchronous_commit = on');
      await db.exec('INSERT INTO t VALUES (1000, 1000, 0)');
      await db.exec('COMMIT');
      const shadow = job.status().shadowTable!;
      await waitUntil(async () => (await db.query(`SELECT 1 FROM ${shadow} WHERE id = 1000`)).length > 0, 'the last insert to reach the shadow');
      const read = (table: string) => db.query(`SELECT id, u, v FROM ${table} ORDER BY id`);
      expect(await read(shadow)).toEqual(await read('t'));
      const unique = await db.query<{ d: string }>(`SELECT pg_get_indexdef(indexrelid) AS d FROM pg_index WHERE indrelid = '${shadow}'::regclass AND indisunique AND NOT indisprimary AND indisvalid`);
      expect(unique.map((r) => r.d)).toEqual([expect.stringMatching(/UNIQUE INDEX .* \(u\)/)]);
    } finally {
      job.controls.abort('test over');
      await run.catch(() => undefined);
      await job.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
