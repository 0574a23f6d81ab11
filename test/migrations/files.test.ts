// Pure parsing: statement splitting, phases, checksums, discovery, thresholds.

import { describe, it, expect } from 'vitest';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { splitStatements, stripComments } from '../../src/migrations/statement-splitter.js';
import { checksumOf, compareVersions, discoverMigrations, parseSqlPhases } from '../../src/migrations/migration-files.js';
import { parseOnlineThreshold, planPhase, DEFAULT_ONLINE_THRESHOLD } from '../../src/migrations/planner.js';
import { concurrentIndexSql } from '../../src/dialects/postgres/postgres-planner.js';
import { classifyMysqlClause } from '../../src/dialects/mysql/mysql-alter-classes.js';
import { classifyPgClause } from '../../src/dialects/postgres/postgres-alter-classes.js';
import { parseStatement } from '../../src/migrations/sql-analysis.js';

describe('statement splitter', () => {
  it('does not split inside strings, identifiers or comments', () => {
    const sql = `INSERT INTO t VALUES ('a;b', "c;d"); -- x; y
/* a; b */ UPDATE \`we;ird\` SET v = 'it''s; fine';
SELECT 'back\\';slash' ;`;
    const s = splitStatements(sql, 'mysql');
    expect(s.map((x) => x.text)).toEqual([
      `INSERT INTO t VALUES ('a;b', "c;d")`,
      "UPDATE `we;ird` SET v = 'it''s; fine'",
      "SELECT 'back\\';slash'",
    ]);
    expect(s.map((x) => x.line)).toEqual([1, 2, 3]);
  });

  it('keeps PostgreSQL dollar-quoted bodies whole and tells $1 from a dollar quote', () => {
    const sql = `CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  NEW.a := 1; RETURN NEW;
END $fn$;
SELECT $$x;y$$, $1::int;
SELECT E'a\\';b';
/* nested /* comment; */ still; */ SELECT 2`;
    const s = splitStatements(sql, 'postgres');
    expect(s).toHaveLength(4);
    expect(s[0]!.text).toContain('RETURN NEW;\nEND $fn$');
    expect(s[1]!.text).toBe('SELECT $$x;y$$, $1::int');
    expect(s[2]!.text).toBe("SELECT E'a\\';b'");
    expect(s[3]!.text).toBe('SELECT 2');
    expect(s[3]!.line).toBe(7);
  });

  it('honours DELIMITER for MySQL trigger bodies', () => {
    const sql = `DELIMITER //
CREATE TRIGGER t BEFORE INSERT ON x FOR EACH ROW BEGIN SET NEW.a = 1; SET NEW.b = 2; END//
DELIMITER ;
SELECT 1;`;
    const s = splitStatements(sql, 'mysql');
    expect(s.map((x) => x.text)).toEqual(['CREATE TRIGGER t BEFORE INSERT ON x FOR EACH ROW BEGIN SET NEW.a = 1; SET NEW.b = 2; END', 'SELECT 1']);
  });

  it('drops comment-only pieces and offsets line numbers', () => {
    const s = splitStatements('-- only a comment\n\nSELECT 1;\n-- trailing', 'postgres', 10);
    expect(s).toEqual([{ text: 'SELECT 1', line: 13 }]);
  });

  it('refuses an unterminated string with the cause', () => {
    expect(() => splitStatements("SELECT 'abc", 'postgres')).toThrow(/unterminated string/);
  });

  it('strips comments for matching', () => {
    expect(stripComments('CREATE /* x */ INDEX -- y\n i ON t (a)', 'postgres')).toBe('CREATE INDEX i ON t (a)');
  });
});

describe('phases and checksums', () => {
  it('splits phases on marker lines; expand is the default', () => {
    const p = parseSqlPhases('ALTER TABLE a ADD b int;\n-- shadowshift:backfill\nUPDATE a SET b = 1;\n-- shadowshift:contract\nALTER TABLE a DROP c;\n-- shadowshift:down\nALTER TABLE a DROP b;\n');
    expect(p.expand!.sql.trim()).toBe('ALTER TABLE a ADD b int;');
    expect(p.backfill!.firstLine).toBe(3);
    expect(p.contract!.sql.trim()).toBe('ALTER TABLE a DROP c;');
    expect(p.down!.sql.trim()).toBe('ALTER TABLE a DROP b;');
  });

  it('refuses unknown and repeated markers, naming the fix', () => {
    expect(() => parseSqlPhases('-- shadowshift:expnad\nSELECT 1;', 'x.sql')).toThrow(/x.sql line 1: unknown phase marker.*shadowshift:expand/);
    expect(() => parseSqlPhases('-- shadowshift:down\nA;\n-- shadowshift:down\nB;', 'x.sql')).toThrow(/down phase appears twice/);
  });

  it('normalises line endings before hashing', () => {
    expect(checksumOf('a;\r\nb;\r\n')).toBe(checksumOf('a;\nb;\n'));
    expect(checksumOf('a;\nb;\n')).not.toBe(checksumOf('a;\nc;\n'));
    expect(checksumOf('')).toMatch(/^[0-9a-f]{64}$/);
  });

  it('orders versions numerically and refuses duplicates and bad names', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ss-files-'));
    try {
      writeFileSync(join(dir, '10_b.sql'), 'SELECT 1;');
      writeFileSync(join(dir, '9_a.sql'), 'SELECT 1;');
      writeFileSync(join(dir, 'README.md'), 'not a migration');
      expect(discoverMigrations(dir).map((f) => f.file)).toEqual(['9_a.sql', '10_b.sql']);
      writeFileSync(join(dir, '010_c.sql'), 'SELECT 1;');
      expect(() => discoverMigrations(dir)).toThrow(/same version/);
      rmSync(join(dir, '010_c.sql'));
      writeFileSync(join(dir, 'add-thing.sql'), 'SELECT 1;');
      expect(() => discoverMigrations(dir)).toThrow(/add-thing.sql: not a migration file name; rename it to <version>_<name>.sql/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(() => discoverMigrations('/nonexistent/dir')).toThrow(/does not exist.*--dir/);
    expect(compareVersions('9', '10')).toBe(-1);
  });
});

describe('planner pieces', () => {
  it('parses --online-threshold as rows or bytes', () => {
    expect(parseOnlineThreshold('250k')).toEqual({ rows: 250_000, bytes: null });
    expect(parseOnlineThreshold('64MiB')).toEqual({ rows: Number.POSITIVE_INFINITY, bytes: 64 * 1024 * 1024 });
    expect(() => parseOnlineThreshold('lots')).toThrow(/not a size/);
  });

  it('rewrites CREATE INDEX to CONCURRENTLY and finds its name', () => {
    expect(concurrentIndexSql('CREATE INDEX IF NOT EXISTS "Idx" ON t (a)')).toEqual({ sql: 'CREATE INDEX CONCURRENTLY IF NOT EXISTS "Idx" ON t (a)', index: 'Idx' });
    expect(concurrentIndexSql('create unique index on t (a)').index).toBeNull();
  });

  it('classifies MySQL clauses with the current column type', () => {
    const cols = [{ name: 'a', type: 'int(11)', nullable: false, defaultExpr: null }, { name: 'v', type: 'varchar(20)', nullable: true, defaultExpr: null }];
    expect(classifyMysqlClause('ADD COLUMN b INT').cls).toBe('instant');
    expect(classifyMysqlClause('ADD INDEX (b)').cls).toBe('inplace');
    expect(classifyMysqlClause('MODIFY a BIGINT NOT NULL', cols).cls).toBe('copy');
    expect(classifyMysqlClause('MODIFY a INT NOT NULL', cols).cls).toBe('instant');
    expect(classifyMysqlClause('CHANGE a a2 INT NOT NULL', cols).cls).toBe('instant');
    expect(classifyMysqlClause('MODIFY v VARCHAR(40)', cols).cls).toBe('instant');
    expect(classifyMysqlClause('MODIFY v VARCHAR(100)', cols).cls).toBe('copy');
    expect(classifyMysqlClause('ADD PRIMARY KEY (a)').cls).toBe('rebuild');
  });

  it('classifies PostgreSQL clauses, binary-coercible type changes included', () => {
    const cols = [{ name: 'v', type: 'character varying(20)', nullable: true, defaultExpr: null }, { name: 'n', type: 'integer', nullable: false, defaultExpr: null }];
    expect(classifyPgClause('ALTER COLUMN v TYPE varchar(40)', cols).cls).toBe('instant');
    expect(classifyPgClause('ALTER COLUMN v TYPE text', cols).cls).toBe('instant');
    expect(classifyPgClause('ALTER COLUMN n TYPE bigint', cols).cls).toBe('rewrite');
    expect(classifyPgClause('ADD COLUMN x uuid DEFAULT gen_random_uuid()').cls).toBe('rewrite');
    expect(classifyPgClause("ADD COLUMN x text DEFAULT 'a'").cls).toBe('instant');
    expect(classifyPgClause('ADD CONSTRAINT f FOREIGN KEY (a) REFERENCES p (id)').cls).toBe('add-constraint');
    expect(classifyPgClause('ADD CONSTRAINT f FOREIGN KEY (a) REFERENCES p (id) NOT VALID').cls).toBe('instant');
    expect(classifyPgClause('ALTER COLUMN n SET NOT NULL').cls).toBe('set-not-null');
  });

  it('reads table names of statements, quoted and qualified', () => {
    expect(parseStatement('ALTER TABLE "Sch"."My T" ADD x int', 'postgres').table).toBe('Sch.My T');
    expect(parseStatement('ALTER TABLE Orders ADD x int', 'postgres').table).toBe('orders');
    expect(parseStatement('ALTER TABLE `Orders` ADD x int, ADD INDEX (x)', 'mysql').clauses).toEqual(['ADD x int', 'ADD INDEX (x)']);
    expect(parseStatement('CREATE UNIQUE INDEX CONCURRENTLY i ON ONLY s.t (a)', 'postgres').table).toBe('s.t');
    expect(parseStatement('UPDATE t SET a = 1 WHERE b', 'postgres')).toMatchObject({ kind: 'dml', verb: 'update', table: 't' });
  });
});

describe('planPhase (pure, with given table sizes)', () => {
  const big = { schema: 'public', name: 't', rows: 5_000_000, bytes: 2e9, columns: [{ name: 'a', type: 'integer', nullable: true, defaultExpr: null }], primaryKey: ['id'] };
  const small = { ...big, rows: 10, bytes: 8192 };
  const ctx = (dialect: 'mysql' | 'postgres', stats: typeof big | null) => ({ dialect, threshold: DEFAULT_ONLINE_THRESHOLD, stats: async () => stats });
  const plan = async (sql: string, dialect: 'mysql' | 'postgres', stats: typeof big | null, phase: 'expand' | 'backfill' = 'expand') =>
    planPhase(splitStatements(sql, dialect), phase, ctx(dialect, stats));

  it('splits a PostgreSQL ALTER whose clauses need different treatment', async () => {
    const [p] = await plan('ALTER TABLE t ADD COLUMN b int, ADD CONSTRAINT f FOREIGN KEY (b) REFERENCES p (id)', 'postgres', big);
    expect(p!.how).toMatch(/^split into one statement per clause/);
    expect(p!.steps.map((s) => ('sql' in s ? s.sql : s.kind))).toEqual([
      'ALTER TABLE "public"."t" ADD COLUMN b int',
      'ALTER TABLE "public"."t" ADD CONSTRAINT f FOREIGN KEY (b) REFERENCES p (id) NOT VALID',
      'ALTER TABLE "public"."t" VALIDATE CONSTRAINT "f"',
    ]);
  });

  it('sends a rewrite of a big table to the engine, and runs it as written on a small one', async () => {
    const [b] = await plan('ALTER TABLE t ALTER COLUMN a TYPE bigint', 'postgres', big);
    expect(b!.steps).toEqual([{ kind: 'engine', table: 'public.t', alter: 'ALTER COLUMN a TYPE bigint' }]);
    const [s] = await plan('ALTER TABLE t ALTER COLUMN a TYPE bigint', 'postgres', small);
    expect(s!.class).toBe('blocking');
    expect(s!.steps[0]!.kind).toBe('ddl');
    const [m] = await plan('ALTER TABLE t MODIFY a BIGINT', 'mysql', { ...big, columns: [{ name: 'a', type: 'int(11)', nullable: true, defaultExpr: null }] });
    expect(m!.steps).toEqual([expect.objectContaining({ kind: 'mysql-alter', algorithms: ['INSTANT'], otherwise: 'engine', alter: 'MODIFY a BIGINT' })]);
  });

  it('batches single-table UPDATE/DELETE in a backfill, and says why not otherwise', async () => {
    const [u] = await plan("UPDATE t SET a = 1 WHERE a IS NULL AND note <> 'where'", 'postgres', big, 'backfill');
    expect(u!.steps).toEqual([{ kind: 'batched', table: 'public.t', key: ['id'], head: 'UPDATE t SET a = 1', where: "a IS NULL AND note <> 'where'", sql: expect.any(String) }]);
    const [j] = await plan('UPDATE t SET a = p.x FROM p WHERE p.id = t.id', 'postgres', big, 'backfill');
    expect(j!.how).toMatch(/not batched: UPDATE \.\.\. FROM joins another table/);
    const [l] = await plan('DELETE FROM t WHERE a = 1 LIMIT 10', 'mysql', big, 'backfill');
    expect(l!.how).toMatch(/not batched: it has LIMIT/);
    const [e] = await plan('UPDATE t SET a = 1', 'postgres', big, 'expand');
    expect(e!.steps[0]!.kind).toBe('exec');
  });

  it("leaves statements inside the file's own transaction as written", async () => {
    const ps = await plan('BEGIN; CREATE INDEX i ON t (a); COMMIT; CREATE INDEX j ON t (a);', 'postgres', big);
    expect(ps.map((p) => p.steps[0]!.kind)).toEqual(['exec', 'exec', 'exec', 'concurrent-index']);
    expect(ps[1]!.how).toMatch(/inside the file's own transaction/);
  });
});
