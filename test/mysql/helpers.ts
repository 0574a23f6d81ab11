// Shared helpers for the MySQL dialect tests.

import type { Connection } from 'mysql2/promise';
import { mysqlDialect } from '../../src/dialects/mysql/mysql-dialect.js';
import type { MysqlSession } from '../../src/dialects/mysql/mysql-dialect.js';
import type { ArtefactNames, ChangeEvent, ChangeStream, CopyPlan, TableInfo } from '../../src/dialects/dialect.js';
import { buildCopyPlan } from '../../src/engine/copy-plan.js';
import { parseConnectionUrl } from '../../src/util/connection-url.js';
import { silentLogger } from '../../src/util/logger.js';
import { createMysqlDatabase, mysqlConnect } from '../support/databases.js';

export async function openSession(url: string): Promise<MysqlSession> {
  return (await mysqlDialect.open(parseConnectionUrl(url), silentLogger())) as MysqlSession;
}

export async function freshDb(prefix: string): Promise<{ url: string; name: string; admin: Connection; session: MysqlSession }> {
  const db = await createMysqlDatabase(prefix);
  const admin = await mysqlConnect(db.url);
  const session = await openSession(db.url);
  return { url: db.url, name: db.name, admin, session };
}

export async function tableNames(conn: Connection): Promise<string[]> {
  const [rows] = (await conn.query('SHOW TABLES')) as unknown as [Array<Record<string, string>>];
  return rows.map((r) => Object.values(r)[0]!).sort();
}

/** Inspects `table`, creates its shadow with `alter`, and builds the plan the engine would. */
export async function prepareShadow(
  session: MysqlSession,
  schema: string,
  table: string,
  alter: string,
  jobId = 'test' + Math.random().toString(16).slice(2, 8),
): Promise<{ original: TableInfo; names: ArtefactNames; plan: CopyPlan }> {
  const original = (await session.inspectTable({ schema, name: table }))!;
  const names = session.artefactNames(original.ref, jobId);
  const shadow = await session.createShadow(original, alter, names);
  const built = buildCopyPlan(original, shadow, session.analyzeAlter(alter));
  if (!built.plan) throw new Error(built.reason);
  return { original, names, plan: built.plan };
}

/** Takes and applies everything the stream delivers until `until` holds (or, without it, until it is quiet). */
export async function drain(
  session: MysqlSession,
  stream: ChangeStream,
  plan: CopyPlan,
  until: (events: ChangeEvent[], markers: string[]) => boolean,
  ms = 10_000,
): Promise<{ events: ChangeEvent[]; markers: string[]; positions: string[] }> {
  const events: ChangeEvent[] = [];
  const markers: string[] = [];
  const positions: string[] = [];
  const deadline = Date.now() + ms;
  for (;;) {
    const b = stream.take(1000);
    if (b) {
      events.push(...b.events);
      markers.push(...b.markers);
      positions.push(b.position);
      await session.applier.apply(plan, b.events);
      continue;
    }
    if (until(events, markers)) return { events, markers, positions };
    if (Date.now() > deadline) throw new Error(`stream did not deliver in time (got ${events.length} events, markers ${markers.join(',')})`);
    await stream.waitForData(50);
  }
}

/** Rows of a table as HEX images of every column, keyed by id, for exact comparisons. */
export async function hexRows(conn: Connection, table: string, columns: string[], key = 'id'): Promise<Record<string, Record<string, string | null>>> {
  const sel = columns.map((c) => `HEX(\`${c}\`) AS \`${c}\``).join(', ');
  const [rows] = (await conn.query(`SELECT \`${key}\` AS k, ${sel} FROM \`${table}\` ORDER BY \`${key}\``)) as unknown as [Array<Record<string, string | null>>];
  const out: Record<string, Record<string, string | null>> = {};
  for (const r of rows) {
    const { k, ...rest } = r;
    out[String(k)] = rest;
  }
  return out;
}
