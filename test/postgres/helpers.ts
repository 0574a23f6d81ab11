// Shared helpers for the PostgreSQL dialect tests.

import type pg from 'pg';
import { postgresDialect, type PostgresSession } from '../../src/dialects/postgres/postgres-dialect.js';
import type { AlterAnalysis, ChangeEvent, ChangeStream, CopyPlan, TableInfo } from '../../src/dialects/dialect.js';
import { parseConnectionUrl } from '../../src/util/connection-url.js';
import { silentLogger } from '../../src/util/logger.js';
import { createPgDatabase, pgConnect } from '../support/databases.js';

export async function openSession(url: string): Promise<PostgresSession> {
  return (await postgresDialect.open(parseConnectionUrl(url), silentLogger())) as PostgresSession;
}

export async function freshDb(prefix: string): Promise<{ url: string; admin: pg.Client; session: PostgresSession }> {
  const db = await createPgDatabase(prefix);
  const admin = await pgConnect(db.url);
  const session = await openSession(db.url);
  return { url: db.url, admin, session };
}

/** The plan the engine would build: key = primary key, columns present in both (renames followed), generated excluded. */
export function makePlan(original: TableInfo, shadow: TableInfo, analysis: AlterAnalysis): CopyPlan {
  const pk = original.indexes.find((i) => i.primary)!;
  const target = (name: string) => analysis.renamedColumns.get(name) ?? name;
  const shadowCols = new Map(shadow.columns.map((c) => [c.name, c]));
  const columns = original.columns
    .filter((c) => !c.generated && !analysis.droppedColumns.has(c.name))
    .filter((c) => shadowCols.has(target(c.name)) && !shadowCols.get(target(c.name))!.generated)
    .map((c) => ({ source: c.name, target: target(c.name) }));
  const origUnique = new Set(original.indexes.filter((i) => i.unique).map((i) => i.columns.join(',')));
  return {
    original,
    shadow,
    key: pk.columns.map((c) => ({ source: c, target: target(c) })),
    columns,
    newUniqueIndexes: shadow.indexes.filter((i) => i.unique && !origUnique.has(i.columns.map((c) => c).join(','))).map((i) => i.name),
  };
}

/** Takes everything the stream has (waiting up to `ms` for `until`), applies it, acknowledges. */
export async function drain(
  session: PostgresSession,
  stream: ChangeStream,
  plan: CopyPlan,
  opts: { until?: (events: ChangeEvent[], markers: string[]) => boolean; ms?: number } = {},
): Promise<{ events: ChangeEvent[]; markers: string[] }> {
  const all: ChangeEvent[] = [];
  const markers: string[] = [];
  const deadline = Date.now() + (opts.ms ?? 10_000);
  for (;;) {
    const b = stream.take(1000);
    if (b) {
      all.push(...b.events);
      markers.push(...b.markers);
      await session.applier.apply(plan, b.events);
      await stream.acknowledge(b.position);
      continue;
    }
    if (!opts.until || opts.until(all, markers)) {
      if (!opts.until) return { events: all, markers };
      return { events: all, markers };
    }
    if (Date.now() > deadline) throw new Error(`timed out draining; got ${all.length} events, markers ${markers.join(',')}`);
    await stream.waitForData(200);
  }
}

/** Writes a marker and applies everything up to it. */
export async function syncTo(session: PostgresSession, stream: ChangeStream, plan: CopyPlan, id: string): Promise<ChangeEvent[]> {
  await stream.writeMarker(id);
  const r = await drain(session, stream, plan, { until: (_e, m) => m.includes(id) });
  return r.events;
}

/** Every row of a table as text, ordered by the first column. */
export async function tableText(c: pg.Client, table: string, orderBy = '1'): Promise<string[]> {
  const r = await c.query(`SELECT t::text AS t FROM ${table} t ORDER BY ${orderBy}`);
  return r.rows.map((x) => x.t as string);
}
