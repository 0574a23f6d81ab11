// Each lint rule fires on the pattern it is about and stays quiet on the safe
// alternative; per-file disable/config comments; the CLI's formats and exit codes.

import { describe, it, expect } from 'vitest';
import { rmSync } from 'node:fs';
import { lintSql } from '../../src/lint/lint-runner.js';
import { RULES } from '../../src/lint/rules/index.js';
import type { DialectName } from '../../src/dialects/dialect.js';
import { cli, json, tempDir, write } from '../migrations/helpers.js';

interface Case {
  rule: string;
  dialect: DialectName;
  fires: string;
  quiet: string;
  /** Table sizes known to lint (as with --url). */
  rows?: Record<string, number>;
}

const CASES: Case[] = [
  { rule: 'require-concurrent-index', dialect: 'postgres', fires: 'CREATE INDEX orders_user_idx ON orders (user_id);', quiet: 'CREATE INDEX CONCURRENTLY orders_user_idx ON orders (user_id);' },
  { rule: 'require-concurrent-index', dialect: 'postgres', fires: 'DROP INDEX orders_user_idx;', quiet: 'DROP INDEX CONCURRENTLY orders_user_idx;' },
  { rule: 'require-concurrent-index', dialect: 'postgres', fires: 'CREATE UNIQUE INDEX u ON orders (code);', quiet: 'CREATE TABLE t (id int PRIMARY KEY, a int);\nCREATE INDEX t_a ON t (a);' },
  { rule: 'constraint-not-valid', dialect: 'postgres', fires: 'ALTER TABLE orders ADD CONSTRAINT fk_user FOREIGN KEY (user_id) REFERENCES users (id);', quiet: 'ALTER TABLE orders ADD CONSTRAINT fk_user FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;\nALTER TABLE orders VALIDATE CONSTRAINT fk_user;' },
  { rule: 'constraint-not-valid', dialect: 'postgres', fires: 'ALTER TABLE orders ADD CONSTRAINT amount_pos CHECK (amount > 0);', quiet: 'ALTER TABLE orders ADD CONSTRAINT amount_pos CHECK (amount > 0) NOT VALID;' },
  { rule: 'set-not-null', dialect: 'postgres', fires: 'ALTER TABLE orders ALTER COLUMN status SET NOT NULL;', quiet: 'ALTER TABLE orders ALTER COLUMN status DROP NOT NULL;' },
  { rule: 'rewriting-type-change', dialect: 'postgres', fires: 'ALTER TABLE orders ALTER COLUMN user_id TYPE bigint;', quiet: 'ALTER TABLE orders ALTER COLUMN user_id SET DEFAULT 0;' },
  { rule: 'rewriting-type-change', dialect: 'mysql', fires: 'ALTER TABLE orders MODIFY user_id BIGINT NOT NULL;', quiet: 'ALTER TABLE orders ALTER COLUMN user_id SET DEFAULT 0;' },
  { rule: 'volatile-default', dialect: 'postgres', fires: 'ALTER TABLE orders ADD COLUMN token uuid DEFAULT gen_random_uuid();', quiet: "ALTER TABLE orders ADD COLUMN token text DEFAULT 'x';" },
  { rule: 'volatile-default', dialect: 'mysql', fires: 'ALTER TABLE orders ADD COLUMN token CHAR(36) DEFAULT (UUID());', quiet: "ALTER TABLE orders ADD COLUMN token CHAR(36) DEFAULT 'x';" },
  { rule: 'rename-column-or-table', dialect: 'postgres', fires: 'ALTER TABLE orders RENAME COLUMN note TO comment;', quiet: 'ALTER TABLE orders ADD COLUMN comment text;' },
  { rule: 'rename-column-or-table', dialect: 'postgres', fires: 'ALTER TABLE orders RENAME TO purchases;', quiet: 'ALTER TABLE orders RENAME CONSTRAINT a TO b;' },
  { rule: 'rename-column-or-table', dialect: 'mysql', fires: 'RENAME TABLE orders TO purchases;', quiet: 'CREATE TABLE purchases (id INT PRIMARY KEY);' },
  { rule: 'rename-column-or-table', dialect: 'mysql', fires: 'ALTER TABLE orders CHANGE note comment VARCHAR(100);', quiet: 'ALTER TABLE orders CHANGE note note VARCHAR(100) COMMENT "x";' },
  { rule: 'drop-in-expand', dialect: 'postgres', fires: 'ALTER TABLE orders DROP COLUMN note;', quiet: '-- shadowshift:contract\nALTER TABLE orders DROP COLUMN note;' },
  { rule: 'drop-in-expand', dialect: 'mysql', fires: 'DROP TABLE old_orders;', quiet: 'SELECT 1;\n-- shadowshift:contract\nDROP TABLE old_orders;' },
  { rule: 'unique-constraint-direct', dialect: 'postgres', fires: 'ALTER TABLE orders ADD CONSTRAINT orders_code_key UNIQUE (code);', quiet: 'CREATE UNIQUE INDEX CONCURRENTLY orders_code_key ON orders (code);\nALTER TABLE orders ADD CONSTRAINT orders_code_key UNIQUE USING INDEX orders_code_key;' },
  { rule: 'missing-lock-timeout', dialect: 'postgres', fires: 'ALTER TABLE orders ADD COLUMN x int;', quiet: "SET lock_timeout = '1s';\nALTER TABLE orders ADD COLUMN x int;" },
  { rule: 'missing-lock-timeout', dialect: 'mysql', fires: 'ALTER TABLE orders ADD COLUMN x INT;', quiet: 'SET SESSION lock_wait_timeout = 5;\nALTER TABLE orders ADD COLUMN x INT;' },
  { rule: 'backfill-in-expand', dialect: 'postgres', fires: "ALTER TABLE orders ADD COLUMN s text;\nUPDATE orders SET s = 'new';", quiet: "ALTER TABLE orders ADD COLUMN s text;\n-- shadowshift:backfill\nUPDATE orders SET s = 'new';" },
  { rule: 'backfill-in-expand', dialect: 'mysql', fires: 'INSERT INTO archive SELECT * FROM orders;', quiet: "CREATE TABLE kinds (id INT PRIMARY KEY, name VARCHAR(10));\nINSERT INTO kinds VALUES (1, 'a');" },
  { rule: 'prefer-jsonb', dialect: 'postgres', fires: 'CREATE TABLE events (id bigint PRIMARY KEY, body json NOT NULL);', quiet: 'CREATE TABLE events (id bigint PRIMARY KEY, body jsonb NOT NULL);' },
  { rule: 'prefer-jsonb', dialect: 'postgres', fires: 'ALTER TABLE orders ADD COLUMN meta json;', quiet: "ALTER TABLE orders ADD COLUMN meta jsonb;\nSELECT json_build_object('a', 1);" },
  { rule: 'mysql-non-instant-alter', dialect: 'mysql', fires: 'ALTER TABLE orders ADD PRIMARY KEY (id), ENGINE=InnoDB;', quiet: 'ALTER TABLE orders ADD COLUMN x INT, ALTER COLUMN y SET DEFAULT 1;', rows: { orders: 5_000_000 } },
  { rule: 'mysql-non-instant-alter', dialect: 'mysql', fires: 'ALTER TABLE orders MODIFY amount DECIMAL(14,2);', quiet: 'ALTER TABLE orders MODIFY amount DECIMAL(14,2);', rows: { orders: 5_000_000 } },
];

function lint(sql: string, dialect: DialectName, rows?: Record<string, number>, file = 'migrations/001_x.sql') {
  return lintSql(sql, file, { dialect, tableRows: (t) => rows?.[t] ?? null, bigTableRows: 100_000 }).findings;
}

describe('lint rules', () => {
  it('every registered rule has an id, reason, safe alternative and dialects, and a test case', () => {
    for (const r of RULES) {
      expect(r.id).toMatch(/^[a-z-]+$/);
      expect(r.reason.length).toBeGreaterThan(30);
      expect(r.safeAlternative.length).toBeGreaterThan(10);
      expect(r.dialects.length).toBeGreaterThan(0);
      expect(CASES.some((c) => c.rule === r.id), `no test case for ${r.id}`).toBe(true);
    }
    expect(new Set(RULES.map((r) => r.id)).size).toBe(RULES.length);
  });

  for (const c of CASES) {
    it(`${c.rule} (${c.dialect}) fires on: ${c.fires.split('\n').pop()}`, () => {
      const f = lint(c.fires, c.dialect, c.rows).filter((x) => x.rule === c.rule);
      expect(f.length, JSON.stringify(lint(c.fires, c.dialect, c.rows))).toBeGreaterThan(0);
      expect(f[0]!.line).toBeGreaterThan(0);
      expect(f[0]!.reason).toBe(RULES.find((r) => r.id === c.rule)!.reason);
    });
    it(`${c.rule} (${c.dialect}) stays quiet on: ${c.quiet.split('\n').pop()}`, () => {
      // The mysql-non-instant-alter size case: the same ALTER on a small table is fine.
      const rows = c.rule === 'mysql-non-instant-alter' && c.fires === c.quiet ? { orders: 500 } : c.rows;
      expect(lint(c.quiet, c.dialect, rows).filter((x) => x.rule === c.rule)).toEqual([]);
    });
  }

  it('dialect-specific rules do not fire on the other dialect', () => {
    expect(lint('CREATE INDEX i ON orders (a);', 'mysql').filter((x) => x.rule === 'require-concurrent-index')).toEqual([]);
    expect(lint('ALTER TABLE orders MODIFY a BIGINT;', 'postgres').filter((x) => x.rule === 'mysql-non-instant-alter')).toEqual([]);
  });

  it('reports the line of the statement in the file', () => {
    const f = lint("-- header\n\nSET lock_timeout = '1s';\nCREATE INDEX i ON orders (a);\n", 'postgres');
    expect(f.map((x) => [x.rule, x.line])).toEqual([['require-concurrent-index', 4]]);
  });

  it('a file can disable rules or change their level with a comment', () => {
    const sql = 'ALTER TABLE orders ALTER COLUMN a SET NOT NULL;\nCREATE INDEX i ON orders (a);\n';
    expect(lint(sql, 'postgres').map((x) => x.rule).sort()).toEqual(['missing-lock-timeout', 'require-concurrent-index', 'set-not-null']);
    expect(lint('-- shadowshift-lint-disable set-not-null, missing-lock-timeout\n' + sql, 'postgres').map((x) => x.rule)).toEqual(['require-concurrent-index']);
    expect(lint('-- shadowshift-lint-disable\n' + sql, 'postgres')).toEqual([]);
    const configured = lint('-- shadowshift-lint-config set-not-null=warning require-concurrent-index=off\n' + sql, 'postgres');
    expect(configured.find((x) => x.rule === 'set-not-null')!.severity).toBe('warning');
    expect(configured.find((x) => x.rule === 'require-concurrent-index')).toBeUndefined();
    expect(() => lint('-- shadowshift-lint-disable no-such-rule\nSELECT 1;', 'postgres')).toThrow(/unknown lint rule "no-such-rule".*known rules:/);
    expect(() => lint('-- shadowshift-lint-config set-not-null=loud\nSELECT 1;', 'postgres')).toThrow(/must be error, warning or off/);
  });
});

describe('shadowshift lint (CLI)', () => {
  it('exits 1 on errors, 0 when clean or only warnings, with text and JSON output', async () => {
    const dir = tempDir('ss-lint-');
    try {
      const pg = `${dir}/postgres`;
      const { mkdirSync } = await import('node:fs');
      mkdirSync(pg);
      write(pg, '001_bad.sql', 'CREATE INDEX i ON orders (a);\n');
      write(pg, '002_ok.sql', "SET lock_timeout = '1s';\nCREATE INDEX CONCURRENTLY j ON orders (b);\n");
      write(pg, '003_warn.sql', 'ALTER TABLE orders ADD COLUMN c int;\n');
      const bad = await cli(['lint', pg]);
      expect(bad.code).toBe(1);
      expect(bad.stdout).toMatch(/001_bad\.sql:1: error \[require-concurrent-index\]/);
      expect(bad.stdout).toMatch(/why: /);
      expect(bad.stdout).toMatch(/instead: CREATE INDEX CONCURRENTLY/);
      const j = await cli(['lint', pg, '--format', 'json']);
      expect(j.code).toBe(1);
      const out = json(j);
      expect(out.errors).toBe(1);
      expect(out.warnings).toBe(2);
      expect(out.files.map((f: any) => f.dialects)).toEqual([['postgres'], ['postgres'], ['postgres']]);
      expect(out.files[0].findings.find((f: any) => f.severity === 'error')).toMatchObject({ rule: 'require-concurrent-index', line: 1, file: `${pg}/001_bad.sql` });
      const ok = await cli(['lint', `${pg}/002_ok.sql`, `${pg}/003_warn.sql`]);
      expect(ok.code, ok.stdout + ok.stderr).toBe(0);
      expect(ok.stdout).toMatch(/0 error\(s\), 1 warning\(s\)/);
      const missing = await cli(['lint', `${dir}/nope`]);
      expect(missing.code).toBe(2);
      expect(missing.stderr).toMatch(/does not exist/);
      const rules = await cli(['lint', '--list-rules', '--format', 'json']);
      expect(json(rules).rules.length).toBe(RULES.length);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
