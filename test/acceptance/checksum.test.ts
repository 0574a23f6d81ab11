// Checksum before cut-over, end to end on both dialects: a row corrupted in the
// shadow behind the engine's back is found and repaired before the cut-over; a
// corruption that keeps coming back fails the job before the cut-over, naming
// the key range, with the original untouched.

import { describe, it, expect } from 'vitest';
import { createMysqlDatabase, createPgDatabase } from '../support/databases.js';
import { openDb, quoteIdent, type Db } from '../support/db.js';
import { runAlter } from '../support/alter.js';
import type { KeyRange } from '../../src/dialects/dialect.js';

const cases = [
  { dialect: 'mysql' as const, createDb: () => createMysqlDatabase('sum'), series: 'SELECT seq, seq FROM seq_1_to_5000' },
  { dialect: 'postgres' as const, createDb: () => createPgDatabase('sum'), series: 'SELECT g, g FROM generate_series(1, 5000) g' },
];

async function shadowName(db: Db, dialect: 'mysql' | 'postgres', table: string): Promise<string> {
  const rows = await db.query<Record<string, string>>(
    dialect === 'mysql' ? 'SHOW TABLES' : "SELECT tablename FROM pg_tables WHERE schemaname = 'public'",
  );
  const name = rows.map((r) => String(Object.values(r)[0])).find((t) => t.includes(table) && /new/.test(t) && t !== table);
  if (!name) throw new Error('no shadow table found');
  return name;
}

describe.each(cases)('$dialect: checksum before cut-over', ({ dialect, createDb, series }) => {
  it('finds a row corrupted in the shadow during the copy and repairs it', async () => {
    const { url } = await createDb();
    const db = await openDb(url);
    const q = (n: string) => quoteIdent(dialect, n);
    try {
      await db.exec(`CREATE TABLE ${q('t')} (id INT PRIMARY KEY, v INT NOT NULL)`);
      await db.exec(`INSERT INTO ${q('t')} ${series}`);
      let corrupted = false;
      const beforeChunkCommit = async (range: KeyRange) => {
        // Once the first chunks are in, damage a row that is already copied.
        if (corrupted || range.after === null || Number(range.after[0]) < 1000) return;
        corrupted = true;
        await db.exec(`UPDATE ${q(await shadowName(db, dialect, 't'))} SET v = -999 WHERE id = 7`);
      };
      await runAlter(url, 't', 'ADD COLUMN w INT', { chunkSize: 500, testHooks: { beforeChunkCommit } });
      expect(corrupted).toBe(true);
      const rows = await db.query<Record<string, string>>(`SELECT id, v FROM ${q('t')} WHERE id = 7 OR v <> id`);
      expect(rows.map((r) => [String(r.id), String(r.v)])).toEqual([['7', '7']]);
    } finally {
      await db.close();
    }
  });

  it('fails before the cut-over, naming the key range, when the difference keeps coming back', async () => {
    const { url } = await createDb();
    const db = await openDb(url);
    const q = (n: string) => quoteIdent(dialect, n);
    try {
      await db.exec(`CREATE TABLE ${q('t')} (id INT PRIMARY KEY, v INT NOT NULL)`);
      await db.exec(`INSERT INTO ${q('t')} ${series}`);
      if (dialect === 'postgres') {
        await db.exec(`CREATE FUNCTION sabotage() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN IF NEW.id = 4242 THEN NEW.v := -999; END IF; RETURN NEW; END$$`);
      }
      // A trigger on the shadow corrupts row 4242 every time anything writes it:
      // the copy, the stream and every recopy. Created from the first chunk's
      // hook without waiting: it needs the lock the open chunk holds, and gets it a
      // chunk or two later; small chunks leave row 4242 forty chunks away.
      let created: Promise<unknown> | null = null;
      const beforeChunkCommit = async () => {
        if (created) return;
        const shadow = q(await shadowName(db, dialect, 't'));
        if (dialect === 'mysql') {
          created = db.exec(`CREATE TRIGGER ${q('sabotage')} BEFORE INSERT ON ${shadow} FOR EACH ROW SET NEW.v = IF(NEW.id = 4242, -999, NEW.v)`);
        } else {
          created = db.exec(`CREATE TRIGGER sabotage BEFORE INSERT OR UPDATE ON ${shadow} FOR EACH ROW EXECUTE FUNCTION sabotage()`);
        }
        created.catch(() => undefined);
      };
      const err = await runAlter(url, 't', 'ADD COLUMN w INT', { chunkSize: 100, testHooks: { beforeChunkCommit } }).then(
        () => null,
        (e: unknown) => e as Error,
      );
      await created;
      expect(err?.message).toMatch(/checksum: the shadow still differs from the original after 3 repairs in key range \(\d+\) < key <= \(\d+\)/);
      const range = /key range \((\d+)\) < key <= \((\d+)\)/.exec(err!.message)!;
      expect(Number(range[1])).toBeLessThan(4242);
      expect(Number(range[2])).toBeGreaterThanOrEqual(4242);
      expect(err?.message).toMatch(/cut-over did not happen/);
      const cols = await db.query<Record<string, unknown>>(
        dialect === 'mysql' ? "SHOW COLUMNS FROM t LIKE 'w'" : "SELECT attname FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'w'",
      );
      expect(cols).toEqual([]);
      const [sum] = await db.query<Record<string, string>>(`SELECT COUNT(*) AS n, SUM(v) AS s FROM ${q('t')}`);
      expect([String(sum!.n), String(sum!.s)]).toEqual(['5000', String((5000 * 5001) / 2)]);
    } finally {
      await db.close();
    }
  });
});
