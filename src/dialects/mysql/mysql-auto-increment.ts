// The new table's AUTO_INCREMENT counter at the swap. The shadow gets the original's
// counter when it is created (mysql-shadow.ts), but the original's moves on during the
// job: ids handed out and freed again (an insert and a delete applied in one batch reach
// the shadow as nothing, a rolled-back insert never reaches the binlog) would be handed
// out again by the new table. Under the cut-over's lock nothing can move the original's
// counter, so the shadow's is raised to it there, before the RENAME. An ALTER that sets
// AUTO_INCREMENT itself keeps what it set, as a native ALTER would.

import type { Connection, RowDataPacket } from 'mysql2/promise';
import { quoteTable } from './mysql-quote.js';

async function counterOf(conn: Connection, schema: string, table: string): Promise<bigint | null> {
  const [r] = await conn.query<RowDataPacket[]>(
    'SELECT AUTO_INCREMENT AS ai FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?',
    [schema, table],
  );
  const v = r[0]?.ai as string | number | null | undefined;
  return v === null || v === undefined || !/^\d+$/.test(String(v)) ? null : BigInt(String(v));
}

/**
 * `locked` holds the original write-locked (its counter cannot move); `other` may change the
 * shadow (a LOCK TABLES session can touch only what it locked). Raises, never lowers.
 */
export async function raiseShadowCounter(locked: Connection, other: Connection, schema: string, original: string, shadow: string): Promise<void> {
  const want = await counterOf(locked, schema, original);
  const have = await counterOf(other, schema, shadow);
  if (want === null || have === null || have >= want) return;
  await other.query(`ALTER TABLE ${quoteTable(schema, shadow)} AUTO_INCREMENT = ${want.toString()}`);
}
