// The table's triggers move to the new table at the cut-over (mysql-triggers.ts). What
// would make that move fail is refused here, before anything is created: a trigger left
// with its temporary name by an earlier job, a temporary name already taken, and the
// privileges to create a trigger (TRIGGER, and to keep another user as its definer).

import type { RowDataPacket } from 'mysql2/promise';
import type { PreflightCheck } from '../../dialect.js';
import type { MyContext } from '../mysql-context.js';
import { listTriggers, renameStatements, SHADOW_TRIGGER_SUFFIX, shadowTriggerName } from '../mysql-triggers.js';
import { databaseMatches, hasGlobal, parseGrant, type Grant } from './privileges.js';

/** Privileges that let a user name another user as a trigger's DEFINER. */
const DEFINER_PRIVILEGES = { mariadb: ['SUPER', 'SET USER'], mysql: ['SUPER', 'SET_USER_ID', 'SET_ANY_DEFINER'] };

function hasOnDatabase(grants: Grant[], privilege: string, database: string): boolean {
  return grants.some((g) => g.table === '*' && databaseMatches(g.database, database) && (g.privileges.has(privilege) || g.privileges.has('ALL PRIVILEGES')));
}

export function triggersCheck(ctx: MyContext, flavor: 'mariadb' | 'mysql'): PreflightCheck {
  return {
    name: 'triggers',
    phase: 'table',
    async run(pctx) {
      if (!pctx.info) return { ok: true, message: 'table not found (another check reports it)' };
      const { schema, name } = pctx.table;
      const triggers = await listTriggers(ctx.pool, schema, name);
      if (triggers.length === 0) return { ok: true, message: 'no triggers' };
      // A --resume settles what its own stopped cut-over left (MysqlCutover.settleStoppedCutover).
      const resuming = pctx.resuming;
      const leftTemporary = triggers.filter((t) => t.name.endsWith(SHADOW_TRIGGER_SUFFIX));
      if (leftTemporary.length > 0 && !resuming) {
        // The own name is the temporary one less its suffix, except for a cut (hashed) name.
        const own = leftTemporary.filter((t) => !t.name.includes('~')).map((t) => ({ ...t, name: t.name.slice(0, -SHADOW_TRIGGER_SUFFIX.length) }));
        const fix = own.length > 0 ? ` In one session: ${renameStatements(schema, name, null, own).join('; ')}` : '';
        return {
          ok: false,
          message: `trigger${leftTemporary.length === 1 ? '' : 's'} ${leftTemporary.map((t) => t.name).join(', ')} of ${name} still carr${leftTemporary.length === 1 ? 'ies' : 'y'} the temporary name an earlier cut-over gave it: that job stopped before it gave it its own name back, and another move would lose track of it. ` +
            `\`--resume\` of that job finishes the renaming; else re-create the trigger under its own name and drop the temporary one.${fix}`,
        };
      }
      const temporary = triggers.map((t) => shadowTriggerName(t.name));
      const [taken] = await ctx.pool.query<RowDataPacket[]>(
        'SELECT TRIGGER_NAME AS n FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ? AND TRIGGER_NAME IN (?) AND EVENT_OBJECT_TABLE NOT IN (?)',
        [schema, temporary, resuming ? [name, resuming.shadow] : ['']],
      );
      if (taken.length > 0) {
        const names = taken.map((r) => String(r.n));
        return { ok: false, message: `trigger name${names.length === 1 ? '' : 's'} ${names.join(', ')} already exist${names.length === 1 ? 's' : ''} in ${schema}: the cut-over needs ${names.length === 1 ? 'it' : 'them'} to carry the table's triggers over (a trigger left by an interrupted job?). Drop or rename ${names.length === 1 ? 'it' : 'them'} first` };
      }
      const [grantRows] = await ctx.pool.query<RowDataPacket[]>('SHOW GRANTS FOR CURRENT_USER()');
      const grants = grantRows.map((r) => parseGrant(String(Object.values(r)[0]))).filter((g): g is Grant => g !== null);
      if (!hasGlobal(grants, 'TRIGGER') && !hasOnDatabase(grants, 'TRIGGER', schema)) {
        return { ok: false, message: `${name} has triggers, which the cut-over re-creates on the new table, and the user lacks the TRIGGER privilege on ${schema}. Have an administrator run: GRANT TRIGGER ON \`${schema.replace(/`/g, '``')}\`.* TO CURRENT_USER() (with the user's name; docs/mysql-grants.md)` };
      }
      const [[me]] = await ctx.pool.query<RowDataPacket[]>('SELECT CURRENT_USER() AS u');
      const others = [...new Set(triggers.map((t) => t.definer).filter((d) => d !== String(me!.u)))];
      if (others.length > 0 && !DEFINER_PRIVILEGES[flavor].some((p) => hasGlobal(grants, p))) {
        return {
          ok: false,
          message: `triggers of ${name} run as ${others.join(', ')}, not as this user (${String(me!.u)}), and keeping their definer when they are re-created on the new table needs ${DEFINER_PRIVILEGES[flavor].slice(1).join(' or ')} (or SUPER). Grant it (docs/mysql-grants.md), or run shadowshift as ${others[0]}`,
        };
      }
      const listed = triggers.map((t) => `${t.name} (${t.timing} ${t.event}, definer ${t.definer})`).join(', ');
      return { ok: true, message: `triggers ${listed} move to the new table at the cut-over, with their definer, order and body; the copy and the applier never fire them` };
    },
  };
}
