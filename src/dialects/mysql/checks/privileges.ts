// Parses SHOW GRANTS FOR CURRENT_USER() and lists exactly what is missing.

import type { RowDataPacket } from 'mysql2/promise';
import type { PreflightCheck } from '../../dialect.js';
import type { MyContext } from '../mysql-context.js';

/** On the database: copy/apply (SELECT, INSERT, UPDATE, DELETE), shadow and changelog (CREATE, DROP, ALTER, INDEX), preview (CREATE TEMPORARY TABLES), cut-over (LOCK TABLES). */
export const SCHEMA_PRIVILEGES = ['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'CREATE', 'DROP', 'ALTER', 'INDEX', 'LOCK TABLES', 'CREATE TEMPORARY TABLES'];

export interface Grant {
  privileges: Set<string>;
  /** `*` for global, else the database (pattern). */
  database: string;
  table: string;
}

function unquote(s: string): string {
  s = s.trim();
  if (s.startsWith('`') && s.endsWith('`')) return s.slice(1, -1).replace(/``/g, '`');
  return s;
}

/** Whether `privilege` is granted on *.* (or ALL PRIVILEGES is). */
export function hasGlobal(grants: Grant[], privilege: string): boolean {
  return grants.some((g) => g.database === '*' && g.table === '*' && (g.privileges.has(privilege) || g.privileges.has('ALL PRIVILEGES')));
}

export function parseGrant(line: string): Grant | null {
  const m = /^GRANT\s+(.+?)\s+ON\s+(?:(?:TABLE|FUNCTION|PROCEDURE|PACKAGE(?: BODY)?)\s+)?((?:`(?:[^`]|``)*`|[^\s.`]+|\*))\.((?:`(?:[^`]|``)*`|[^\s`]+|\*))\s+TO\s/is.exec(line.trim());
  if (!m) return null;
  const privileges = new Set<string>();
  // Column privileges look like `SELECT (a, b)`: they do not grant the table.
  const list = m[1]!.replace(/\([^)]*\)/g, '\u0000');
  for (const p of list.split(',')) {
    const name = p.trim().toUpperCase();
    if (name.includes('\u0000')) continue;
    privileges.add(name === 'ALL' ? 'ALL PRIVILEGES' : name);
  }
  return { privileges, database: unquote(m[2]!), table: unquote(m[3]!) };
}

/** A database name in a grant may be a LIKE pattern (`app\_%`). */
export function databaseMatches(pattern: string, database: string): boolean {
  if (pattern === '*') return true;
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i]!;
    if (ch === '\\' && i + 1 < pattern.length) {
      re += pattern[i + 1]!.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      i++;
    } else if (ch === '%') re += '.*';
    else if (ch === '_') re += '.';
    else re += ch.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`, 's').test(database);
}

export function missingPrivileges(grants: Grant[], database: string, flavor: 'mariadb' | 'mysql'): { schema: string[]; global: string[] } {
  const global = new Set<string>();
  const onDb = new Set<string>();
  for (const g of grants) {
    if (g.database === '*' && g.table === '*') g.privileges.forEach((p) => global.add(p));
    else if (g.table === '*' && databaseMatches(g.database, database)) g.privileges.forEach((p) => onDb.add(p));
  }
  const has = (set: Set<string>, p: string) => set.has(p) || set.has('ALL PRIVILEGES');
  const schema = SCHEMA_PRIVILEGES.filter((p) => !has(global, p) && !has(onDb, p));
  const globalMissing: string[] = [];
  if (!has(global, 'REPLICATION SLAVE') && !has(global, 'REPLICATION REPLICA')) globalMissing.push('REPLICATION SLAVE');
  const monitor = ['BINLOG MONITOR', 'REPLICATION CLIENT', 'SUPER'];
  if (!monitor.some((p) => has(global, p))) globalMissing.push(flavor === 'mariadb' ? 'BINLOG MONITOR' : 'REPLICATION CLIENT');
  return { schema, global: globalMissing };
}

export function privilegesCheck(ctx: MyContext, flavor: 'mariadb' | 'mysql'): PreflightCheck {
  return {
    name: 'privileges',
    phase: 'connect',
    async run(pctx) {
      const [rows] = await ctx.pool.query<RowDataPacket[]>('SHOW GRANTS FOR CURRENT_USER()');
      const grants = rows.map((r) => parseGrant(String(Object.values(r)[0]))).filter((g): g is Grant => g !== null);
      const database = pctx.table.schema;
      const { schema, global } = missingPrivileges(grants, database, flavor);
      if (schema.length === 0 && global.length === 0) return { ok: true, message: 'the user has every privilege shadowshift needs' };
      const user = `CURRENT_USER()`;
      const fixes: string[] = [];
      if (schema.length > 0) fixes.push(`GRANT ${schema.join(', ')} ON \`${database.replace(/`/g, '``')}\`.* TO ${user}`);
      if (global.length > 0) fixes.push(`GRANT ${global.join(', ')} ON *.* TO ${user}`);
      return {
        ok: false,
        message:
          `the user lacks the privileges ${[...schema.map((p) => `${p} on ${database}`), ...global.map((p) => `${p} (global)`)].join(', ')}. ` +
          `Have an administrator run: ${fixes.join('; ')} (with the user's name for ${user}; see docs/mysql-grants.md).`,
      };
    },
  };
}
