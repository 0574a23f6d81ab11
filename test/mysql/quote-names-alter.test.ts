// Identifier quoting, artefact names and ALTER analysis.

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { quoteIdent } from '../../src/dialects/mysql/mysql-quote.js';
import { analyzeAlter, splitClauses } from '../../src/dialects/mysql/mysql-alter-analysis.js';
import { baseName, canOrderNamesAfter, jobLockName, legacyBaseName, mysqlArtefactNames, parseArtefactName, sortsAfter } from '../../src/dialects/mysql/mysql-names.js';
import { resolveTableName } from '../../src/dialects/mysql/mysql-inspector.js';
import { freshDb, tableNames } from './helpers.js';
import type { MysqlSession } from '../../src/dialects/mysql/mysql-dialect.js';
import type { Connection } from 'mysql2/promise';

describe('quoteIdent', () => {
  it('doubles backticks and wraps in backticks', () => {
    expect(quoteIdent('plain')).toBe('`plain`');
    expect(quoteIdent('a`b')).toBe('`a``b`');
    expect(quoteIdent('``')).toBe('``````');
    expect(() => quoteIdent('a\u0000b')).toThrow(/NUL/);
  });

  describe('on a real server', () => {
    let session: MysqlSession;
    let admin: Connection;
    let schema: string;
    beforeAll(async () => {
      ({ session, admin, name: schema } = await freshDb('quote'));
    });
    afterAll(async () => {
      await session?.close();
      await admin?.end();
    });

    for (const name of ['we`ird', "it's", 'with space', 'ünïcødé 表', 'semi;colon--', 'back``ticks', '"dq"']) {
      it(`round-trips the table name ${JSON.stringify(name)}`, async () => {
        const q = session.quoteIdentifier(name);
        const col = session.quoteIdentifier(name + '_c');
        await admin.query(`CREATE TABLE ${q} (id INT PRIMARY KEY, ${col} INT)`);
        expect(await tableNames(admin)).toContain(name);
        const info = await session.inspectTable({ schema, name });
        expect(info?.columns.map((c) => c.name)).toEqual(['id', name + '_c']);
        // The whole job's artefacts work with it too.
        const names = session.artefactNames(info!.ref, 'abc123');
        const shadow = await session.createShadow(info!, `ADD COLUMN ${session.quoteIdentifier('x`y')} INT`, names);
        expect(shadow.columns.map((c) => c.name)).toEqual(['id', name + '_c', 'x`y']);
        await session.dropArtefacts(names, { keepBackup: false });
        await admin.query(`DROP TABLE ${q}`);
        expect(await tableNames(admin)).toEqual([]);
      });
    }
  });
});

describe('artefact names', () => {
  it('are short, readable, and parse back', () => {
    const n = mysqlArtefactNames({ schema: 'app', name: 'orders' }, 'deadbeef');
    expect(n).toMatchObject({ shadow: 'orders_ssnew', changelog: 'orders_sslog', backup: 'orders_ssold_deadbeef' });
    // The cut-over's sentry holds the backup's name until the RENAME (gh-ost's sentry).
    expect(n.extra.sentry).toBe(n.backup);
    expect(parseArtefactName(n.shadow)).toEqual({ base: 'orders', kind: 'shadow' });
    expect(parseArtefactName(n.changelog)).toEqual({ base: 'orders', kind: 'changelog' });
    expect(parseArtefactName(n.backup)).toEqual({ base: 'orders', kind: 'backup' });
    expect(parseArtefactName('orders')).toBeNull();
    expect(parseArtefactName('orders_ssnewer')).toBeNull();
    // Names of earlier versions still parse, so cleanup finds them.
    expect(parseArtefactName('_orders_ssnew')).toEqual({ base: '_orders', kind: 'shadow' });
    expect(parseArtefactName('orders~ssf')).toEqual({ base: '_orders', kind: 'backup' });
    expect(legacyBaseName('orders')).toBe('_orders');
  });

  it('sort after the table, as the server orders metadata locks, so the cut-over RENAME waits on the table first', () => {
    const tables = ['orders', 'a', 'Z', 'x'.repeat(41), 'x'.repeat(42), 'x'.repeat(64), 'x'.repeat(63) + 'y', 'ünïcødé 表', '表'.repeat(30), '表'.repeat(20) + 'abc' + '表'.repeat(41), 'we`ird', 'with space', 'UPPER_lower', '~tilde~'.repeat(9)];
    for (const table of tables) {
      if (!canOrderNamesAfter(table)) continue;
      const n = mysqlArtefactNames({ schema: 's', name: table }, 'deadbeef');
      for (const name of [n.shadow, n.backup, n.changelog, n.extra.sentry!]) {
        expect([...name].length, name).toBeLessThanOrEqual(64);
        expect(sortsAfter(name, table), `${name} after ${table}`).toBe(true);
        // The server compares the names as NUL-terminated UTF-8 bytes (lower-cased under lower_case_table_names).
        expect(Buffer.compare(Buffer.from(name.toLowerCase() + '\0'), Buffer.from(table.toLowerCase() + '\0')), name).toBe(1);
      }
    }
    expect(sortsAfter('_orders_ssnew', 'orders')).toBe(false);
    // A long name with nothing below '~' to cut at cannot be given such names: refused at preflight.
    expect(canOrderNamesAfter('表'.repeat(64))).toBe(false);
    expect(() => mysqlArtefactNames({ schema: 's', name: '表'.repeat(64) }, 'deadbeef')).toThrow(/too long/);
  });

  it('stay within 64 characters and keep long names apart', () => {
    const long1 = 'x'.repeat(64);
    const long2 = 'x'.repeat(63) + 'y';
    const a = mysqlArtefactNames({ schema: 's', name: long1 }, 'deadbeef');
    const b = mysqlArtefactNames({ schema: 's', name: long2 }, 'deadbeef');
    for (const n of [a.shadow, a.backup, a.changelog, b.backup]) expect([...n].length).toBeLessThanOrEqual(64);
    expect(a.shadow).not.toBe(b.shadow);
    expect(parseArtefactName(a.backup)?.base).toBe(baseName(long1));
    const uni = mysqlArtefactNames({ schema: 's', name: '表'.repeat(20) + 'abc' + '表'.repeat(41) }, 'deadbeef');
    expect([...uni.backup].length).toBeLessThanOrEqual(64);
    expect([...jobLockName({ schema: 'd'.repeat(64), name: long1 })].length).toBeLessThanOrEqual(64);
    expect(jobLockName({ schema: 'app', name: 'orders' })).toBe('shadowshift:app.orders');
  });

  it('resolves db.table with backticks', () => {
    expect(resolveTableName('orders', 'app')).toEqual({ schema: 'app', name: 'orders' });
    expect(resolveTableName('other.orders', 'app')).toEqual({ schema: 'other', name: 'orders' });
    expect(resolveTableName('`my.db`.`t``x`', 'app')).toEqual({ schema: 'my.db', name: 't`x' });
  });
});

describe('analyzeAlter', () => {
  const a = (s: string) => {
    const r = analyzeAlter(s);
    return { renamed: Object.fromEntries(r.renamedColumns), dropped: [...r.droppedColumns].sort(), added: [...r.addedColumns].sort(), renamesTable: r.renamesTable };
  };

  it('CHANGE, RENAME COLUMN, DROP, ADD', () => {
    expect(a('CHANGE COLUMN a b INT, RENAME COLUMN c TO d, DROP COLUMN e, ADD COLUMN f INT, MODIFY g BIGINT')).toEqual({
      renamed: { a: 'b', c: 'd' },
      dropped: ['e'],
      added: ['f'],
      renamesTable: false,
    });
    expect(a('change a a bigint, drop x, add y int')).toEqual({ renamed: {}, dropped: ['x'], added: ['y'], renamesTable: false });
    expect(a('ADD COLUMN IF NOT EXISTS n INT, DROP COLUMN IF EXISTS m, CHANGE COLUMN IF EXISTS p q INT')).toEqual({
      renamed: { p: 'q' }, dropped: ['m'], added: ['n'], renamesTable: false,
    });
  });

  it('respects backticks, parentheses and strings', () => {
    expect(a("ADD COLUMN `we,ird` ENUM('a,b', 'c)d') DEFAULT 'a,b', CHANGE `old``name` `new name` DECIMAL(10,2), DROP `x y`")).toEqual({
      renamed: { 'old`name': 'new name' },
      dropped: ['x y'],
      added: ['we,ird'],
      renamesTable: false,
    });
    expect(a('ADD (p INT, q VARCHAR(10), INDEX (p)), ADD COLUMN (r INT)')).toEqual({ renamed: {}, dropped: [], added: ['p', 'q', 'r'], renamesTable: false });
    expect(splitClauses("ADD c INT COMMENT 'x, -- y', ADD d INT")).toHaveLength(2);
  });

  it('indexes and constraints are not columns', () => {
    expect(a('ADD INDEX i (a), ADD UNIQUE KEY u (b), ADD PRIMARY KEY (id), DROP INDEX j, DROP KEY k, DROP PRIMARY KEY, DROP FOREIGN KEY fk, ADD CONSTRAINT c CHECK (a > 0), RENAME INDEX i TO i2, RENAME KEY k TO k2')).toEqual({
      renamed: {}, dropped: [], added: [], renamesTable: false,
    });
  });

  it('a column dropped and added again is in both sets', () => {
    expect(a('DROP COLUMN b, ADD COLUMN b INT')).toEqual({ renamed: {}, dropped: ['b'], added: ['b'], renamesTable: false });
  });

  it('table renames', () => {
    expect(a('RENAME TO t2').renamesTable).toBe(true);
    expect(a('RENAME AS t2').renamesTable).toBe(true);
    expect(a('RENAME t2').renamesTable).toBe(true);
    expect(a('ADD COLUMN c INT, RENAME TABLE t3').renamesTable).toBe(true);
    expect(a('RENAME COLUMN a TO b').renamesTable).toBe(false);
  });
});
