// Shared by the binlog checks: the global settings, read once per preflight.

import type { RowDataPacket } from 'mysql2/promise';
import type { MyContext } from '../mysql-context.js';

export async function globalVariable(ctx: MyContext, name: string): Promise<string | null> {
  const [r] = await ctx.pool.query<RowDataPacket[]>('SHOW GLOBAL VARIABLES WHERE Variable_name = ?', [name]);
  return r[0] ? String(r[0].Value) : null;
}
