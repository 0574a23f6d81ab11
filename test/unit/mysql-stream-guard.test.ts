// What the MySQL change stream refuses for a job on test.gh_ost_test: DDL on the
// table and DML it cannot see as rows; not statements that merely mention the name,
// nor the job's own artefacts.

import { describe, it, expect } from 'vitest';
import { XaGuard, incompleteImage, judgeQuery } from '../../src/dialects/mysql/mysql-stream-guard.js';
import { mysqlArtefactNames } from '../../src/dialects/mysql/mysql-names.js';
import { ShadowshiftError, TransientDatabaseError } from '../../src/util/errors.js';

const ref = { schema: 'test', name: 'gh_ost_test' };
const verdict = (sql: string, schema = 'test') => judgeQuery(sql, schema, ref).t;
const failure = (sql: string, schema = 'test') => {
  const v = judgeQuery(sql, schema, ref);
  return v.t === 'fail' ? v.error : null;
};

describe('judgeQuery', () => {
  it('records commits and passes the TRUNCATE of the table on', () => {
    expect(verdict('COMMIT')).toBe('commit');
    expect(verdict('BEGIN')).toBe('ignore');
    expect(verdict("XA COMMIT 'x'")).toBe('ignore');
    expect(verdict('TRUNCATE gh_ost_test')).toBe('truncate');
    expect(verdict('TRUNCATE TABLE `test`.`gh_ost_test`', 'other')).toBe('truncate');
    expect(verdict('TRUNCATE other')).toBe('ignore');
  });

  it.each([
    ['UPDATE gh_ost_test SET v = v + 1 WHERE id = 5', 'test'],
    ['update `test`.`GH_OST_TEST` set v = 1', 'elsewhere'],
    // MIXED logs an INSERT of constants as a statement.
    ["INSERT INTO gh_ost_test (id, v) VALUES (1, 'a')", 'test'],
    ['REPLACE INTO test.gh_ost_test SELECT * FROM staging', ''],
    ['DELETE g FROM gh_ost_test g JOIN other o ON o.id = g.id', 'test'],
    ['DELETE FROM gh_ost_test WHERE id < 10', 'test'],
    ["LOAD DATA INFILE '/tmp/x' INTO TABLE gh_ost_test", 'test'],
    ['UPDATE other o JOIN gh_ost_test g ON g.id = o.id SET g.v = o.v', 'test'],
  ])('refuses statement-logged DML on the table: %s', (sql, schema) => {
    const err = failure(sql, schema);
    expect(err).toBeInstanceOf(ShadowshiftError);
    expect(err).not.toBeInstanceOf(TransientDatabaseError);
    expect(err!.message).toMatch(/^a session wrote test\.gh_ost_test with binlog_format=STATEMENT\/MIXED: '/);
    expect(err!.message).toContain(sql.slice(0, 20));
    expect(err!.message).toMatch(/Make every client use binlog_format=ROW \(and binlog_row_image=FULL\), then run the job again\. The original is untouched\.$/);
  });

  it.each([
    ['UPDATE other SET gh_ost_test = 1', 'test'],
    ['INSERT INTO other SELECT * FROM gh_ost_test', 'test'],
    ['UPDATE gh_ost_test SET v = 1', 'another_schema'],
    ['DELETE FROM other WHERE id IN (SELECT id FROM gh_ost_test)', 'test'],
    ["INSERT INTO _gh_ost_test_sslog (kind, value) VALUES ('marker', 'x')", 'test'],
    ['REPLACE INTO _gh_ost_test_ssnew VALUES (1)', 'test'],
  ])('leaves other DML alone: %s', (sql, schema) => {
    expect(verdict(sql, schema)).toBe('ignore');
  });

  it.each([
    'ALTER TABLE gh_ost_test ADD COLUMN c INT',
    'alter table `test`.`gh_ost_test` engine=InnoDB',
    'DROP TABLE IF EXISTS other, gh_ost_test',
    'RENAME TABLE gh_ost_test TO gh_ost_test_old',
    'RENAME TABLE a TO b, gh_ost_test TO c',
    'CREATE INDEX i ON gh_ost_test (v)',
    'DROP INDEX i ON gh_ost_test',
    'CREATE OR REPLACE TABLE gh_ost_test (id INT PRIMARY KEY)',
    'ALTER TABLE p EXCHANGE PARTITION p0 WITH TABLE gh_ost_test',
    '/*!40000 ALTER TABLE `gh_ost_test` DISABLE KEYS */',
  ])('refuses DDL that changes the table: %s', (sql) => {
    expect(failure(sql)?.message).toMatch(/^someone else changed test\.gh_ost_test while the job ran/);
  });

  it.each([
    'ALTER EVENT test.gh_ost_test DISABLE',
    // Triggers move at the cut-over, read then; the cut-over itself writes these after its RENAME.
    'CREATE TRIGGER trg AFTER INSERT ON gh_ost_test FOR EACH ROW SET @x = 1',
    'DROP TRIGGER IF EXISTS trg',
    'ALTER TABLE other ADD CONSTRAINT fk FOREIGN KEY (t_id) REFERENCES gh_ost_test (id)',
    'ALTER TABLE other ADD COLUMN gh_ost_test INT',
    'CREATE TABLE gh_ost_test_copy LIKE gh_ost_test',
    'CREATE VIEW v AS SELECT * FROM gh_ost_test',
    'DROP VIEW IF EXISTS gh_ost_test_v',
    'DROP TEMPORARY TABLE IF EXISTS gh_ost_test',
    'ALTER TABLE otherdb.gh_ost_test ADD COLUMN c INT',
    'OPTIMIZE TABLE gh_ost_test',
    'ANALYZE TABLE gh_ost_test',
  ])('leaves statements that only mention the table alone: %s', (sql) => {
    expect(verdict(sql)).toBe('ignore');
  });

  it("leaves the job's own artefacts alone, and reports its swap", () => {
    const names = mysqlArtefactNames(ref, 'abc123');
    const q = (n: string) => '`' + n + '`';
    for (const sql of [
      `CREATE TABLE ${q(names.shadow)} LIKE gh_ost_test`,
      `ALTER TABLE ${q(names.shadow)} ADD COLUMN c INT`,
      `DROP TABLE IF EXISTS ${q(names.shadow)}, ${q(names.changelog)}`,
      `CREATE TABLE ${q(names.extra.sentry!)} (id INT NOT NULL PRIMARY KEY)`,
      `DROP TABLE ${q(names.extra.sentry!)}`,
    ]) {
      expect(verdict(sql), sql).toBe('ignore');
    }
    // The swap ends the job's stream: the engine checks what reached the old table before it.
    expect(verdict(`RENAME TABLE \`gh_ost_test\` TO ${q(names.backup)}, ${q(names.shadow)} TO \`gh_ost_test\``)).toBe('swap');
    expect(verdict(`RENAME TABLE test.gh_ost_test TO test.${q(names.backup)}, test.${q(names.shadow)} TO test.gh_ost_test`)).toBe('swap');
    // Someone else's rename onto the table is not the swap.
    expect(verdict(`RENAME TABLE gh_ost_test TO ${names.backup}, imposter TO gh_ost_test`)).toBe('fail');
  });
});

describe('incompleteImage', () => {
  const cols = ['id', 'v', 'note', 'blob_col'];
  const full = Buffer.from([0x0f]);

  it('accepts full images, and ignores the bitmap bits past the last column', () => {
    expect(incompleteImage({ numberOfColumns: 4, columns_present_bitmap: full }, false, cols, ref)).toBeNull();
    expect(incompleteImage({ numberOfColumns: 4, columns_present_bitmap: Buffer.from([0xff]), columns_present_bitmap2: full }, true, cols, ref)).toBeNull();
  });

  it('refuses an image with columns left out, naming them', () => {
    // MINIMAL update: the key before, the changed column after.
    const err = incompleteImage({ numberOfColumns: 4, columns_present_bitmap: Buffer.from([0x01]), columns_present_bitmap2: Buffer.from([0x02]) }, true, cols, ref);
    expect(err).toBeInstanceOf(ShadowshiftError);
    expect(err).not.toBeInstanceOf(TransientDatabaseError);
    expect(err!.message).toMatch(/^a session wrote test\.gh_ost_test with binlog_row_image=MINIMAL\/NOBLOB: its row event leaves out id, v, note, blob_col/);
    expect(err!.message).toMatch(/Make every client use binlog_row_image=FULL \(and binlog_format=ROW\), then run the job again\. The original is untouched\.$/);
    // NOBLOB: only the blob is missing, in the after image.
    expect(incompleteImage({ numberOfColumns: 4, columns_present_bitmap: full, columns_present_bitmap2: Buffer.from([0x07]) }, true, cols, ref)?.message).toMatch(/leaves out blob_col,/);
    // A MINIMAL delete carries only the key.
    expect(incompleteImage({ numberOfColumns: 4, columns_present_bitmap: Buffer.from([0x01]) }, false, cols, ref)?.message).toMatch(/leaves out v, note, blob_col,/);
  });

  it('refuses an event whose bitmap it cannot read', () => {
    expect(incompleteImage({ numberOfColumns: 2 }, false, ['id', 'v'], ref)).toBeInstanceOf(ShadowshiftError);
  });
});

describe('XaGuard', () => {
  const ref = { schema: 'shop', name: 'orders' };
  const xid = "X'7831',X'',1";

  it('ends the job when the rows of an XA transaction touched the table', () => {
    const g = new XaGuard();
    g.rows();
    expect(g.query(`XA END ${xid}`, ref)?.message).toMatch(/^an XA transaction wrote shop\.orders \(XA END X'7831',X'',1\): its changes reach the binary log at XA PREPARE/);
  });

  it('lets an XA transaction on other tables through, up to its commit or rollback', () => {
    const g = new XaGuard();
    g.rows();
    g.committed(); // that row event belonged to an ordinary transaction
    expect(g.query(`XA END ${xid}`, ref)).toBeNull();
    expect(g.query(`XA COMMIT ${xid}`, ref)).toBeNull();
    expect(g.query(`XA END X'7832',X'',1`, ref)).toBeNull();
    expect(g.query(`XA ROLLBACK X'7832',X'',1`, ref)).toBeNull();
    expect(g.query('COMMIT', ref)).toBeNull();
  });

  it('ends the job on the commit of a transaction prepared before the stream started, not on its rollback', () => {
    const g = new XaGuard();
    expect(g.query(`XA ROLLBACK ${xid}`, ref)).toBeNull();
    expect(g.query(`XA COMMIT ${xid}`, ref)?.message).toMatch(/^an XA transaction prepared before the job started committed during it \(XA COMMIT X'7831',X'',1\); its changes, which may include shop\.orders/);
  });
});
