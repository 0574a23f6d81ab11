// The cut-over's RENAME must be queued on the original table before the lock is
// released. RENAME takes its metadata locks in sorted name order; with a name that
// sorted before `<table>` (the old `_<table>_ssold_…` sentry), B first waited on that
// name and, after DROP TABLE sentry, had to wake up and queue on the original before
// UNLOCK. On a loaded host UNLOCK sometimes came first and writes queued on the
// original ran into the old table after the drain (about 1 swap in 15). Every name
// now sorts after the table's (mysql-names.ts), so the original is B's first wait.
// Here writes are queued on the original during every drain; each must end in the
// new table. The race cannot be forced from outside, so the swap is repeated.

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import type { Connection, RowDataPacket } from 'mysql2/promise';
import type { MysqlSession } from '../../src/dialects/mysql/mysql-dialect.js';
import { silentLogger } from '../../src/util/logger.js';
import { mysqlConnect } from '../support/databases.js';
import { freshDb, prepareShadow } from './helpers.js';

let session: MysqlSession;
let admin: Connection;
let schema: string;
let url: string;

beforeAll(async () => {
  ({ session, admin, name: schema, url } = await freshDb('cutq'));
});
afterAll(async () => {
  await session?.close();
  await admin?.end();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('cutover: writes queued on the original during the lock', () => {
  it('all reach the new table, none the old one (60 swaps)', async () => {
    const writers = await Promise.all([1, 2, 3].map(() => mysqlConnect(url)));
    const ids = await Promise.all(writers.map(async (w) => Number(((await w.query('SELECT CONNECTION_ID() AS id')) as unknown as [RowDataPacket[]])[0][0]!.id)));
    const lostIn: string[] = [];
    try {
      for (let round = 0; round < 60; round++) {
        const table = `q${round}`;
        await admin.query(`CREATE TABLE ${table} (id INT PRIMARY KEY, v INT NOT NULL)`);
        const { plan, names } = await prepareShadow(session, schema, table, 'ADD COLUMN extra INT NOT NULL DEFAULT 7');
        let inserts: Array<Promise<unknown>> = [];
        await session.cutover.swap(plan, names, {
          lockTimeoutMs: 5000,
          log: silentLogger(),
          drainUnderLock: async () => {
            // Application writes arrive while the original is locked and wait on it.
            inserts = writers.map((w, i) => w.query(`INSERT INTO ${table} (id, v) VALUES (?, 1)`, [i + 1]));
            for (;;) {
              const [pl] = (await admin.query(`SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE ID IN (?) AND STATE LIKE '%metadata lock%'`, [ids])) as unknown as [RowDataPacket[]];
              if (Number(pl[0]!.n) === writers.length) break;
              await sleep(2);
            }
          },
        });
        await Promise.all(inserts);
        const [[old]] = (await admin.query(`SELECT COUNT(*) AS n FROM \`${names.backup}\``)) as unknown as [RowDataPacket[]];
        const [[now]] = (await admin.query(`SELECT COUNT(*) AS n FROM ${table} WHERE extra = 7`)) as unknown as [RowDataPacket[]];
        if (Number(old!.n) !== 0 || Number(now!.n) !== writers.length) lostIn.push(`round ${round}: old table ${old!.n} rows, new table ${now!.n}`);
        await session.dropArtefacts(names, { keepBackup: false });
      }
    } finally {
      await Promise.all(writers.map((w) => w.end()));
    }
    expect(lostIn).toEqual([]);
  }, 120_000);
});
