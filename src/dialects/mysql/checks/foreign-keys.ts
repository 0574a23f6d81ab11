// Foreign keys on either side of the table (issue 15; docs/design/mysql-foreign-keys-and-triggers.md).
// The table's own keys are replayed and moved at the cut-over (mysql-cascades.ts,
// mysql-shadow-keys.ts); its children are repointed under the swap's lock
// (mysql-child-repoint.ts). What neither can make exact is refused here, with the reason.

import type { RowDataPacket } from 'mysql2/promise';
import type { PreflightCheck } from '../../dialect.js';
import type { MyContext } from '../mysql-context.js';
import { cascades, declaredBy, referencing, SHADOW_KEY_SUFFIX, shadowKeyName, type ForeignKey } from '../mysql-foreign-keys.js';
import { finishKeyNamesStatements } from '../mysql-shadow-keys.js';
import { mysqlArtefactNames } from '../mysql-names.js';

/**
 * What each child adds to the locked window, rounded up: 11 ms on an idle server (the
 * design doc's fact 7), whatever the child's size, and up to about 60 ms under a write
 * load on this 2-core machine (bench/RESULTS.md, twelfth session).
 */
export const LOCKED_MS_PER_CHILD = 60;

const plural = (n: number, one: string, many: string) => (n === 1 ? one : many);

/** MySQL 9.6 writes the changes a cascade makes as row events of the child, which the replay would apply twice. */
export function cascadesAreLogged(flavor: 'mariadb' | 'mysql', version: string): boolean {
  if (flavor !== 'mysql') return false;
  const [major, minor] = version.split(/[.-]/).map(Number);
  return major! > 9 || (major === 9 && minor! >= 6);
}

export function foreignKeysCheck(ctx: MyContext, flavor: 'mariadb' | 'mysql'): PreflightCheck {
  return {
    name: 'foreign-keys',
    phase: 'table',
    async run(pctx) {
      if (pctx.alter?.foreignKeyClause) {
        return {
          ok: false,
          message: `the ALTER adds or drops a foreign key (${pctx.alter.foreignKeyClause}): the new table takes the old one's keys at the cut-over, and a key the copy met would skip rows silently. ` +
            'Run that clause as its own native ALTER, before or after this one: DROP FOREIGN KEY is in place and instant; ADD FOREIGN KEY copies the table ' +
            'unless foreign_key_checks = 0, which also skips checking the rows already there (find orphans first with a LEFT JOIN)',
        };
      }
      if (!pctx.info) return { ok: true, message: 'table not found (another check reports it)' };
      const { schema, name } = pctx.table;
      const own = await declaredBy(ctx.pool, schema, name);
      const children = (await referencing(ctx.pool, schema, name)).filter((k) => !(k.schema === schema && k.table === name));
      // A stopped cut-over's children still on its shadow: they follow a table nothing updates.
      const onShadow = pctx.resuming ? [] : await referencing(ctx.pool, schema, mysqlArtefactNames({ schema, name }, 'x').shadow);
      if (onShadow.length > 0) {
        return {
          ok: false,
          message: `${onShadow.map((k) => `${k.table}.${k.name}`).join(', ')} reference${plural(onShadow.length, 's', '')} the shadow table of ${name} that a stopped job left, instead of ${name}: ` +
            `\`--resume\` of that job, or \`shadowshift cleanup --execute\`, puts ${plural(onShadow.length, 'it', 'them')} back on ${name}`,
        };
      }
      if (own.length === 0 && children.length === 0) return { ok: true, message: 'no foreign keys on either side' };
      const refusal = await refusalOf(ctx, flavor, pctx.resuming?.shadow ?? null, Boolean(pctx.resuming), pctx.revertible ?? false, pctx.lockTimeoutMs ?? 3000, schema, name, own, children);
      if (refusal) return { ok: false, message: refusal };
      const parts = [
        ...own.map((k) => `${k.name} (to ${k.refTable}${cascades(k) ? `, ON DELETE ${k.onDelete} ON UPDATE ${k.onUpdate}: the parent's changes are replayed into the shadow` : ''}) is added to the new table at the cut-over`),
        ...children.map((k) => `${k.table}.${k.name} is repointed at the new table under the cut-over's lock`),
      ];
      return { ok: true, message: parts.join('; ') };
    },
  };
}

async function refusalOf(
  ctx: MyContext,
  flavor: 'mariadb' | 'mysql',
  resumingShadow: string | null,
  resuming: boolean,
  revertible: boolean,
  lockTimeoutMs: number,
  schema: string,
  name: string,
  own: ForeignKey[],
  children: ForeignKey[],
): Promise<string | null> {
  const self = own.filter((k) => k.refSchema === schema && k.refTable === name);
  if (self.length > 0) {
    return `${name} references itself (${self.map((k) => k.name).join(', ')}): not supported yet (a cascade within the table is not in the binlog, and the key would have to follow the swap on both sides). Drop the key for the ALTER, or use a native ALTER`;
  }
  if (revertible) {
    return `${name} has foreign keys (${[...own.map((k) => k.name), ...children.map((k) => `${k.table}.${k.name}`)].join(', ')}): a revert cannot carry them back yet. Run without --revertible`;
  }
  const setDefault = own.filter((k) => k.onDelete === 'SET DEFAULT' || k.onUpdate === 'SET DEFAULT');
  if (setDefault.length > 0) return `foreign key ${setDefault[0]!.name} of ${name} uses SET DEFAULT, which InnoDB does not carry out: not supported`;
  const replayed = own.filter(cascades);
  if (replayed.length > 0) {
    const [[v]] = await ctx.pool.query<RowDataPacket[]>('SELECT VERSION() AS v');
    if (cascadesAreLogged(flavor, String(v!.v))) {
      return `${name} has cascading foreign keys (${replayed.map((k) => k.name).join(', ')}), and this server (MySQL ${String(v!.v)}) writes cascades to the binlog as row events, which shadowshift does not read yet. Not supported on MySQL 9.6 and later`;
    }
    const elsewhere = replayed.filter((k) => k.refSchema !== schema);
    if (elsewhere.length > 0) {
      return `foreign key ${elsewhere[0]!.name} of ${name} cascades from ${elsewhere[0]!.refSchema}.${elsewhere[0]!.refTable}, in another schema: the change stream reads one schema, so its cascades could not be replayed. Not supported yet`;
    }
    for (const k of replayed) {
      const chained = (await declaredBy(ctx.pool, k.refSchema, k.refTable)).filter(cascades);
      if (chained.length > 0) {
        return `${name} cascades from ${k.refTable} (${k.name}), which itself cascades from ${chained[0]!.refTable} (${chained[0]!.name}): a cascade through two levels reaches neither table through the binlog, so the shadow could not follow it. Not supported`;
      }
    }
  }
  const leftover = own.filter((k) => k.name.endsWith(SHADOW_KEY_SUFFIX));
  if (leftover.length > 0 && !resuming) {
    const mine = leftover.filter((k) => !k.name.includes('~')).map((k) => ({ ...k, name: k.name.slice(0, -SHADOW_KEY_SUFFIX.length) }));
    const fix = mine.length > 0 ? ` Run: ${finishKeyNamesStatements(schema, name, null, mine).join('; ')}` : '';
    return `foreign key${plural(leftover.length, '', 's')} ${leftover.map((k) => k.name).join(', ')} of ${name} still carr${plural(leftover.length, 'ies', 'y')} the temporary name an earlier cut-over gave ${plural(leftover.length, 'it', 'them')}: that job stopped before it gave ${plural(leftover.length, 'it its', 'them their')} own name back. \`--resume\` of that job finishes it.${fix}`;
  }
  if (own.length > 0) {
    const [taken] = await ctx.pool.query<RowDataPacket[]>(
      'SELECT CONSTRAINT_NAME AS n, TABLE_NAME AS t FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = ? AND CONSTRAINT_NAME IN (?) AND TABLE_NAME NOT IN (?)',
      [schema, own.map((k) => shadowKeyName(k.name)), resumingShadow ? [name, resumingShadow] : ['']],
    );
    if (taken.length > 0) {
      return `foreign key name${plural(taken.length, '', 's')} ${taken.map((r) => `${String(r.n)} (on ${String(r.t)})`).join(', ')} already exist${plural(taken.length, 's', '')} in ${schema}: the cut-over needs ${plural(taken.length, 'it', 'them')} for the new table's keys. Drop or rename ${plural(taken.length, 'it', 'them')} first`;
    }
  }
  const elsewhere = children.filter((k) => k.schema !== schema);
  if (elsewhere.length > 0) {
    return `${elsewhere.map((k) => `${k.schema}.${k.table}.${k.name}`).join(', ')} reference${plural(elsewhere.length, 's', '')} ${name} from another schema: not supported yet (the cut-over locks and repoints children in the table's own schema only). Drop ${plural(elsewhere.length, 'that key', 'those keys')} for the ALTER, or use a native ALTER`;
  }
  const tables = [...new Set(children.map((k) => k.table))];
  const expectedMs = children.length * LOCKED_MS_PER_CHILD;
  if (expectedMs > lockTimeoutMs) {
    const [sizes] = await ctx.pool.query<RowDataPacket[]>('SELECT TABLE_NAME AS t, TABLE_ROWS AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME IN (?)', [schema, tables]);
    const listed = sizes.map((r) => `${String(r.t)} (~${Number(r.n)} rows)`).join(', ');
    return `${children.length} foreign keys of ${tables.length} tables reference ${name}: ${listed}. Repointing them holds the table up to about ${LOCKED_MS_PER_CHILD} ms each under load (whatever their size), about ${expectedMs} ms, more than the cut-over's lock timeout (${lockTimeoutMs} ms). ` +
      'Raise --cutover-lock-timeout, or drop some of those keys for the ALTER';
  }
  return null;
}
