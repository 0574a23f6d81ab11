// The table's own foreign keys (it is the child), carried to the new table at the
// cut-over (issue 15; the design doc's "Child tables" section).
//
// During the job the shadow has no key: the parents' cascades are replayed into it
// (mysql-cascades.ts), and a key on a lagging table would refuse legal parent deletes.
// Key names are unique per schema, so the move takes two steps, like the triggers':
//
//   1. Under the swap's lock, after the drain, B adds each key to the shadow under a
//      temporary name (`<name>_ssnew`), in place and with checks off (the rows match the
//      original's, which had the key). Adding a key does not wait for the parent's open
//      transactions (measured), and every write to a parent waits for the locked child
//      meanwhile (MariaDB locks a parent's children for any write to it), so no cascade
//      is missed between the drain and the swap. The RENAME then brings the keys live
//      with the new table. A failed attempt drops them before the stream is applied again.
//   2. Right after the swap the old table's keys are dropped (from then on they would only
//      refuse parent deletes the new table allows), then each new key is renamed: one
//      ALTER that drops the temporary key and adds it under its own name, so the live
//      table is never without it. Dropping a key waits for the parent's open
//      transactions: a few tries, each up to the lock timeout; if they all fail, the
//      temporary names stay (the keys work) and the log gives the statements.
//
// Until step 2 has dropped the old table's keys (milliseconds, unless a parent
// transaction stays open), a RESTRICT or NO ACTION key of the old table still refuses
// the delete of a parent whose last child was deleted after the swap: the application
// sees error 1451 for that statement. Documented in ARCHITECTURE ("Foreign keys at the
// cut-over").

import type { Connection, Pool, PoolConnection } from 'mysql2/promise';
import type { CopyPlan, CutoverOptions } from '../dialect.js';
import { addKeyClause, alterKeys, alterKeysStatements, cascades, declaredBy, dropKeyClause, keyColumnsProblem, SHADOW_KEY_SUFFIX, shadowKeyName, type ForeignKey } from './mysql-foreign-keys.js';
import { ShadowshiftError } from '../../util/errors.js';

type Queryable = Pool | PoolConnection | Connection;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The key as the new table declares it: its columns under their new names. */
export function onNewTable(fk: ForeignKey, plan: Pick<CopyPlan, 'columns'>): ForeignKey {
  const columns = fk.columns.map((c) => {
    const mapped = plan.columns.find((m) => m.source.toLowerCase() === c.toLowerCase());
    if (!mapped) throw new ShadowshiftError(`the foreign key ${fk.name} cannot move to the new table: its column ${c} is not carried over (dropped or generated). Drop the key for the ALTER, or keep the column`);
    return mapped.target;
  });
  return { ...fk, columns };
}

/**
 * Before anything is copied: each key can be declared by the new table exactly as the
 * cut-over will add it, in place. Returns the new table's columns of each cascading key,
 * whose index the replay needs during the copy.
 */
export async function checkKeysFit(db: Queryable, schema: string, table: string, shadow: string, renamed: Map<string, string>, dropped: Set<string>): Promise<string[][]> {
  const replayed: string[][] = [];
  for (const k of await declaredBy(db, schema, table)) {
    const gone = k.columns.find((c) => [...dropped].some((d) => d.toLowerCase() === c.toLowerCase()));
    const newColumns = k.columns.map((c) => [...renamed].find(([from]) => from.toLowerCase() === c.toLowerCase())?.[1] ?? c);
    const problem = gone ? `the ALTER drops its column ${gone}` : await keyColumnsProblem(db, schema, table, shadow, k.columns, newColumns);
    if (problem) {
      throw new ShadowshiftError(
        `the foreign key ${k.name} of ${table} does not fit the new table: ${problem}. The cut-over adds it without a table copy, which needs that; change the ALTER, or drop the key for it`,
      );
    }
    if (cascades(k)) replayed.push(newColumns);
  }
  return replayed;
}

/** Step 1, by B under the swap's lock: the keys on the shadow under their temporary names. */
export async function addShadowKeys(conn: Connection, schema: string, shadow: string, keys: ForeignKey[]): Promise<void> {
  await alterKeys(conn, schema, shadow, keys.map((k) => addKeyClause(k, shadowKeyName(k.name))));
}

/** Drops every key the shadow declares (each is the job's own): after a failed attempt, or on a resume. */
export async function dropShadowKeys(conn: Connection | PoolConnection, schema: string, shadow: string): Promise<string[]> {
  const keys = await declaredBy(conn, schema, shadow);
  await alterKeys(conn, schema, shadow, keys.map((k) => dropKeyClause(k.name)));
  return keys.map((k) => k.name);
}

/** Step 2's statements: the old table's keys dropped, each new key given its own name. */
function finishClauses(keys: ForeignKey[], oldHas: (name: string) => boolean): { old: string[]; live: string[] } {
  return {
    old: keys.filter((k) => oldHas(k.name)).map((k) => dropKeyClause(k.name)),
    live: keys.flatMap((k) => [dropKeyClause(shadowKeyName(k.name)), addKeyClause(k, k.name)]),
  };
}

export function finishKeyNamesStatements(schema: string, live: string, old: string | null, keys: ForeignKey[]): string[] {
  const { old: o, live: l } = finishClauses(keys, () => old !== null);
  return [...(old ? alterKeysStatements(schema, old, o) : []), ...alterKeysStatements(schema, live, l)];
}

/**
 * Step 2. `keys`: as the new table declares them (own names). `old`: the old table, or
 * null when it is gone. Never throws: the temporary names work, and the log says how to finish.
 */
export async function giveKeysTheirNames(
  connect: () => Promise<Connection>,
  schema: string,
  live: string,
  old: string | null,
  keys: ForeignKey[],
  lockSeconds: number,
  log: CutoverOptions['log'],
): Promise<void> {
  let lastError = '';
  for (let attempt = 1; attempt <= 3; attempt++) {
    let conn: Connection | null = null;
    try {
      conn = await connect();
      await conn.query(`SET SESSION lock_wait_timeout = ${lockSeconds}`);
      const startedAt = Date.now();
      const oldKeys = old ? new Set((await declaredBy(conn, schema, old)).map((k) => k.name)) : new Set<string>();
      const liveKeys = new Set((await declaredBy(conn, schema, live)).map((k) => k.name));
      const pending = keys.filter((k) => liveKeys.has(shadowKeyName(k.name)));
      const { old: o, live: l } = finishClauses(pending, (n) => oldKeys.has(n));
      if (old) await alterKeys(conn, schema, old, o);
      await alterKeys(conn, schema, live, l);
      log.info({ keys: pending.map((k) => k.name), ms: Date.now() - startedAt }, 'the foreign keys have their names back on the new table');
      return;
    } catch (err) {
      lastError = (err as Error).message;
      await sleep(200 * attempt);
    } finally {
      await conn?.end().catch(() => conn?.destroy());
    }
  }
  log.warn(
    { keys: keys.map((k) => k.name), err: lastError, statements: finishKeyNamesStatements(schema, live, old, keys) },
    `the foreign keys work on the new table under temporary names ending in ${SHADOW_KEY_SUFFIX}, but could not be given their own names back (${lastError}); run the logged statements`,
  );
}

/** On a resume after the swap: the live table's keys still under temporary names, with their own names (a cut name cannot tell its own: the next job's preflight names it). */
export async function keysLeftTemporary(db: Queryable, schema: string, live: string): Promise<ForeignKey[]> {
  return (await declaredBy(db, schema, live))
    .filter((k) => k.name.endsWith(SHADOW_KEY_SUFFIX) && !k.name.includes('~'))
    .map((k) => ({ ...k, name: k.name.slice(0, -SHADOW_KEY_SUFFIX.length) }));
}
