// A change the stream delivers before other sessions can see it. A committing backend
// flushes its commit record, and only then waits for synchronous standbys and leaves
// the proc array; the walsender decodes and sends the transaction as soon as the
// record is flushed. Until the backend leaves the proc array, every other snapshot
// still sees the rows as they were. The applier reads the original for a partial image
// (unchanged TOAST) whose row is not in the shadow; read in that window, it wrote the
// old version (which the copy then skips) or nothing (a row moved out of the copy's
// way). It must wait until the transaction is visible.
//
// The window is held open with a synchronous standby that never connects, on a
// throwaway server of its own. The server default stays synchronous_commit = off (as
// test/support/servers.ts starts it), so only the transaction that asks for `on` waits:
// the engine's own commits and its markers (`local`) do not. No checksum here: the
// shadow is compared with the original directly.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import type { PostgresSession } from '../../src/dialects/postgres/postgres-dialect.js';
import type { ChangeEvent } from '../../src/dialects/dialect.js';
import { startPostgres, type RunningServer } from '../support/servers.js';
import { pgConnect } from '../support/databases.js';
import { waitUntil } from '../support/alter.js';
import { makePlan, openSession, syncTo, tableText } from './helpers.js';

let server: RunningServer;
let admin: pg.Client;
let held: pg.Client;
let session: PostgresSession;

beforeAll(async () => {
  // On the command line, so it is in force from the start; ALTER SYSTEM cannot clear it
  // (the command line wins over postgresql.auto.conf), so the test releases the commit
  // with pg_cancel_backend.
  server = await startPostgres({ extraArgs: ['-c', 'synchronous_standby_names=fake_standby'] });
  admin = await pgConnect(server.url);
  held = await pgConnect(server.url);
  session = await openSession(server.url);
});
afterAll(async () => {
  await session?.close();
  await held?.end();
  await admin?.end();
  await server?.stop();
});

const BODY = `(SELECT string_agg(md5(g::text || ':' || id), '') FROM generate_series(1, 2000) g)`;

describe('a committed change not yet visible to other sessions', () => {
  it('is read from the original only once it is visible', async () => {
    await admin.query(`CREATE TABLE hc (id int PRIMARY KEY, v int, body text)`);
    await admin.query(`INSERT INTO hc SELECT id, id, ${BODY} FROM generate_series(1, 20) id`);
    const original = (await session.inspectTable({ schema: 'public', name: 'hc' }))!;
    const names = session.artefactNames(original.ref, 'held-job');
    const shadow = await session.createShadow(original, 'ADD COLUMN note text', names);
    const plan = makePlan(original, shadow, session.analyzeAlter('ADD COLUMN note text'));
    const stream = session.openChangeStream(plan, names, 'held-job');
    await stream.start();
    try {
      // Rows 1..10 are copied; 11..20 are not yet.
      await session.copier.copyChunk(plan, { after: null, upTo: ['10'] });

      // One transaction, both changes leaving body (TOASTed) unchanged: an update of an
      // uncopied row, and a key change of an uncopied row to a key the copy will not visit.
      const heldPid = (await held.query(`SELECT pg_backend_pid() AS pid`)).rows[0].pid as number;
      const notices: string[] = [];
      held.on('notice', (n) => notices.push(n.message ?? ''));
      await held.query(`BEGIN`);
      await held.query(`SET LOCAL synchronous_commit = on`);
      await held.query(`UPDATE hc SET v = -15 WHERE id = 15`);
      await held.query(`UPDATE hc SET id = 0, v = -16 WHERE id = 16`);
      const commit = held.query(`COMMIT`);
      await waitUntil(
        async () => (await admin.query(`SELECT wait_event FROM pg_stat_activity WHERE pid = $1`, [heldPid])).rows[0]?.wait_event === 'SyncRep',
        'the commit to wait for the standby',
      );

      // The stream delivers it (the marker commits after it, with synchronous_commit = local)...
      await stream.writeMarker('after-held');
      const events: ChangeEvent[] = [];
      let position = '';
      await waitUntil(() => {
        const b = stream.take(1000);
        if (b) {
          events.push(...b.events);
          position = b.position;
          return b.markers.includes('after-held');
        }
        return false;
      }, 'the held transaction and the marker to arrive');
      expect(events.map((e) => (e.kind === 'update' ? `${e.after.id}:${e.after.body === undefined ? 'unchanged' : 'sent'}` : e.kind))).toEqual([
        '15:unchanged',
        '0:unchanged',
      ]);
      // ...while no other session sees it yet.
      expect((await admin.query(`SELECT id, v FROM hc WHERE id IN (0, 15, 16) ORDER BY id`)).rows).toEqual([
        { id: 15, v: 15 },
        { id: 16, v: 16 },
      ]);

      // Apply it; release the commit once the applier has finished or is seen waiting
      // for the held transaction (the commit is still held either way).
      const applying = session.applier.apply(plan, events).then(() => 'applied');
      const outcome = await Promise.race([
        applying,
        waitUntil(
          async () =>
            (await admin.query(`SELECT 1 FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND query LIKE '%pg_visible_in_snapshot%'`)).rows.length > 0,
          'the applier to finish or wait',
          60_000,
        ).then(() => 'waiting'),
      ]);
      expect((await admin.query(`SELECT wait_event FROM pg_stat_activity WHERE pid = $1`, [heldPid])).rows[0]?.wait_event).toBe('SyncRep');
      // Cancelling the wait does not undo the commit (it is in the WAL): it becomes visible, with a warning.
      await admin.query(`SELECT pg_cancel_backend($1)`, [heldPid]);
      await commit;
      expect(notices.join('\n')).toMatch(/canceling wait for synchronous replication/);
      await applying;
      await stream.acknowledge(position);

      // The rest of the copy and of the stream; then the shadow must be the original.
      await session.copier.copyChunk(plan, { after: ['10'], upTo: ['20'] });
      await syncTo(session, stream, plan, 'end');
      const rows = (table: string) => tableText(admin, `(SELECT id, v, md5(body) FROM ${table})`);
      expect(await rows(names.shadow)).toEqual(await rows('hc'));
      expect((await admin.query(`SELECT id, v FROM ${names.shadow} WHERE id IN (0, 15, 16) ORDER BY id`)).rows).toEqual([
        { id: 0, v: -16 },
        { id: 15, v: -15 },
      ]);
      expect(outcome).toBe('waiting');
    } finally {
      await stream.stop();
    }
  });
});
