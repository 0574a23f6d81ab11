// A revertible job stopped after its swap and its revert point, then run again with --resume:
// the point is the job's own, not a previous ALTER's. The resume must keep it, and what it
// needs (PostgreSQL: the slot and publication), so that `revert` still undoes the ALTER.
// Before, the resume closed "the previous ALTER's" revert window, its own.

import { describe, expect, it } from 'vitest';
import { createMysqlDatabase, createPgDatabase, testedDialects } from '../support/databases.js';
import { openDb } from '../support/db.js';
import { runAlter, runRevert } from '../support/alter.js';
import { openDialect } from '../../src/dialects/open-dialect.js';
import { parseConnectionUrl } from '../../src/util/connection-url.js';
import { silentLogger } from '../../src/util/logger.js';
import type { Checkpoint } from '../../src/dialects/dialect.js';

const cases = [
  { dialect: 'mysql', createDb: () => createMysqlDatabase('revres'), table: 'CREATE TABLE t (id INT PRIMARY KEY, email VARCHAR(20) NOT NULL)', alter: 'MODIFY email VARCHAR(100) NOT NULL', old: /^varchar\(20\)$/ },
  { dialect: 'postgres', createDb: () => createPgDatabase('revres'), table: 'CREATE TABLE t (id int PRIMARY KEY, email varchar(20) NOT NULL)', alter: 'ALTER COLUMN email TYPE varchar(100)', old: /^character varying\(20\)$/ },
] as const;

describe.each(testedDialects(cases))('$dialect: --resume of a revertible job stopped after its swap', ({ dialect, createDb, table, alter, old }) => {
  it('keeps its own revert point and way back: revert still undoes the ALTER', async () => {
    const { url } = await createDb();
    const db = await openDb(url);
    const session = await openDialect(parseConnectionUrl(url), silentLogger());
    try {
      await db.exec(table);
      await db.exec("INSERT INTO t VALUES (1, 'a@x'), (2, 'b@x')");
      const ref = session.resolveTable('t');
      // The checkpoint as the run had it when it swapped; saved again after the run, it is what a
      // run killed after recording its revert point (say, in its on-success hook) leaves behind.
      let stopped: Checkpoint | null = null;
      await runAlter(url, 't', alter, { revertible: true, testHooks: { afterSwap: async () => void (stopped = await session.checkpoints.load(ref)) } });
      expect(stopped).not.toBeNull();
      await session.checkpoints.save(stopped!);
      const point = await session.revert!.points.load(ref);
      expect(point).not.toBeNull();

      await runAlter(url, 't', alter, { revertible: true, resume: true });
      expect(await session.revert!.points.load(ref)).toEqual(point);
      await db.exec("INSERT INTO t VALUES (3, 'c@x')");
      await runRevert(url, 't');
      const type = dialect === 'mysql'
        ? (await db.query<{ Type: string }>("SHOW COLUMNS FROM t LIKE 'email'"))[0]!.Type
        : (await db.query<{ t: string }>("SELECT format_type(atttypid, atttypmod) AS t FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'email'"))[0]!.t;
      expect(type).toMatch(old);
      expect((await db.query<{ id: number }>('SELECT id FROM t ORDER BY id')).map((r) => Number(r.id))).toEqual([1, 2, 3]);
    } finally {
      await session.close();
      await db.close();
    }
  });
});
