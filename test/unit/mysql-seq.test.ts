import { describe, expect, it } from 'vitest';
import { createMysqlDatabase, mysqlConnect } from '../support/databases.js';
import { mysqlSeq } from '../support/db.js';

// The tests' row generator for MySQL and MariaDB: no sequence engine (MariaDB-only),
// no recursive CTE (MySQL stops at cte_max_recursion_depth = 1000).
describe('mysqlSeq', () => {
  it('yields lo..hi in order, also past 1000 rows and across powers of ten, without the sequence engine', async () => {
    const db = await createMysqlDatabase('seq');
    const c = await mysqlConnect(db.url);
    try {
      for (const [lo, hi] of [[1, 1], [0, 9], [1, 10], [6, 60], [1, 1000], [1, 1001], [995, 2005], [1, 20000]] as const) {
        const [rows] = (await c.query(`SELECT seq FROM ${mysqlSeq(lo, hi)}`)) as unknown as [Array<{ seq: string | number }>];
        const got = rows.map((r) => Number(r.seq));
        expect(got.length, `${lo}..${hi}`).toBe(hi - lo + 1);
        expect(got[0]).toBe(lo);
        expect(got.at(-1)).toBe(hi);
        expect(got.every((v, i) => v === lo + i), `${lo}..${hi} in order`).toBe(true);
      }
      // Auto-increment ids follow seq, as with the sequence engine.
      await c.query('CREATE TABLE ai (id INT AUTO_INCREMENT PRIMARY KEY, v INT)');
      await c.query(`INSERT INTO ai (v) SELECT seq FROM ${mysqlSeq(1, 1500)}`);
      const [[m]] = (await c.query('SELECT COUNT(*) AS n, SUM(id <> v) AS off FROM ai')) as unknown as [[{ n: string; off: string }]];
      expect(m).toEqual({ n: '1500', off: '0' });
      expect(() => mysqlSeq(5, 4)).toThrow(/lo <= hi/);
    } finally {
      await c.query(`DROP DATABASE \`${db.name}\``);
      await c.end();
    }
  });
});
