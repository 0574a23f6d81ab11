// Spatial columns (issue 18): every spatial type, with SRIDs, through the chunk copy
// and through the binlog stream, compared as the stored bytes (SRID + WKB). zongji
// decodes spatial values into {x, y} objects that lose the SRID and the type; the
// stream must hand the applier the stored bytes instead.

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Connection } from 'mysql2/promise';
import { createMysqlDatabase, mysqlConnect } from '../support/databases.js';
import { newJob, waitUntil } from '../support/alter.js';

let url: string;
let conn: Connection;

beforeAll(async () => {
  url = (await createMysqlDatabase('spatial')).url;
  conn = await mysqlConnect(url);
});
afterAll(async () => {
  await conn?.end();
});

const COLUMNS = ['g', 'pt', 'ls', 'pg', 'mp', 'gc'];

/** One row's values: a SRID per row, so a lost SRID shows. */
function values(id: number, srid: number): string {
  const k = id * 1.5;
  return `(${id},
    ST_GeomFromText('POLYGON((0 0, ${k} 0, ${k} ${k}, 0 0))', ${srid}),
    ST_GeomFromText('POINT(${k} -${k})', ${srid}),
    ST_GeomFromText('LINESTRING(0 0, ${k} 1, 2 ${k})', ${srid}),
    ST_GeomFromText('POLYGON((0 0, 4 0, 4 4, 0 4, 0 0), (1 1, 2 1, 2 2, 1 1))', ${srid}),
    ST_GeomFromText('MULTIPOINT(0 0, ${k} ${k})', ${srid}),
    ST_GeomFromText('GEOMETRYCOLLECTION(POINT(1 2), LINESTRING(0 0, ${k} ${k}))', ${srid}))`;
}

async function asStored(table: string): Promise<Array<Record<string, unknown>>> {
  const [rows] = (await conn.query(
    `SELECT id, ${COLUMNS.map((c) => `HEX(${c}) AS ${c}, ST_SRID(${c}) AS ${c}_srid`).join(', ')} FROM \`${table}\` ORDER BY id`,
  )) as unknown as [Array<Record<string, unknown>>];
  return rows;
}

describe('spatial columns', () => {
  it('copies and streams every spatial type exactly, SRID included', async () => {
    await conn.query(
      `CREATE TABLE places (id INT PRIMARY KEY, g GEOMETRY, pt POINT, ls LINESTRING, pg POLYGON, mp MULTIPOINT, gc GEOMETRYCOLLECTION)`,
    );
    await conn.query(`INSERT INTO places VALUES ${values(1, 0)}, ${values(2, 4326)}, (3, NULL, NULL, NULL, NULL, NULL, NULL)`);

    const dir = mkdtempSync(join(tmpdir(), 'ss-spatial-'));
    const flag = join(dir, 'postpone');
    writeFileSync(flag, '');
    const job = newJob(url, 'places', 'ADD COLUMN note VARCHAR(10) NULL', { postponeCutoverFlagFile: flag });
    try {
      const report = await job.prepare();
      expect(report.ok).toBe(true);
      const running = job.execute(report);
      await waitUntil(() => job.status().state === 'postponed' || job.status().state === 'failed', 'the job to postpone');
      expect(job.status().error).toBeNull();

      await conn.query(`INSERT INTO places VALUES ${values(11, 3857)}, ${values(12, 0)}`);
      await conn.query(`UPDATE places SET g = ST_GeomFromText('MULTILINESTRING((0 0, 1 1), (2 2, 3 3))', 2154), pt = NULL WHERE id = 1`);
      await conn.query(`UPDATE places SET pt = ST_GeomFromText('POINT(7 8)', 4326) WHERE id = 3`);
      await conn.query('DELETE FROM places WHERE id = 12');
      await waitUntil(() => job.status().eventsApplied >= 5 || job.status().state === 'failed', 'the stream to apply the writes');
      expect(job.status().error).toBeNull();
      await waitUntil(() => job.status().backlog === 0, 'the backlog to drain');

      expect(await asStored(job.status().shadowTable!)).toEqual(await asStored('places'));
      rmSync(flag);
      await running;
      expect(job.status().repairedChunks).toBe(0);
      expect(await asStored('places')).toEqual(await asStored(job.status().backupTable!));
    } finally {
      await job.close();
      rmSync(dir, { recursive: true, force: true });
    }
    const [rows] = (await conn.query('SELECT id, ST_SRID(g) AS g, ST_AsText(pt) AS pt, ST_SRID(pt) AS pts FROM places WHERE id IN (1, 3, 11) ORDER BY id')) as unknown as [
      Array<Record<string, unknown>>,
    ];
    expect(rows).toEqual([
      { id: 1, g: 2154, pt: null, pts: null },
      { id: 3, g: null, pt: 'POINT(7 8)', pts: 4326 },
      { id: 11, g: 3857, pt: 'POINT(16.5 -16.5)', pts: 3857 },
    ]);
  });
});
