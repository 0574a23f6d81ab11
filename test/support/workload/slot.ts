// A connection that runs one operation at a time.

import { openDb, type Db } from '../db.js';
import { ConnectError, OpTimeout } from './errors.js';

export interface Slot {
  db: Db | null;
  busy: boolean;
}

/** The slot's connection, opened anew when it broke. */
async function connection(slot: Slot, url: string): Promise<Db> {
  if (slot.db && !slot.db.broken) return slot.db;
  slot.db?.destroy();
  slot.db = null;
  try {
    slot.db = await openDb(url);
    return slot.db;
  } catch (err) {
    throw new ConnectError(err);
  }
}

/** Runs a write with exec, a read with query; gives up with OpTimeout after timeoutMs. */
export async function runStatement(
  slot: Slot,
  url: string,
  write: boolean,
  sql: string,
  params: unknown[],
  timeoutMs: number,
): Promise<{ affected: number; rows: Record<string, unknown>[] }> {
  const db = await connection(slot, url);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new OpTimeout(timeoutMs)), timeoutMs);
  });
  try {
    if (!write) return { affected: 0, rows: await Promise.race([db.query<Record<string, unknown>>(sql, params), timeout]) };
    return { affected: (await Promise.race([db.exec(sql, params), timeout])).affectedRows, rows: [] };
  } finally {
    clearTimeout(timer);
  }
}
