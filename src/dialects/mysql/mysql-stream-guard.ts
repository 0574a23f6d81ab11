// What the binlog stream must refuse: changes to the migrated table that it cannot
// turn into full row images. The global settings are checked at preflight, but a
// session can still log differently (a pooled connection opened before SET GLOBAL, a
// SET SESSION): with binlog_format STATEMENT or MIXED its DML reaches the binlog as
// query text, which the applier cannot replay; with binlog_row_image MINIMAL or
// NOBLOB its row events leave columns out, and zongji fills them with NULL. Either
// way the shadow would silently differ from the original, so the job must end
// before the cut-over. These verdicts are final (ShadowshiftError, never
// TransientDatabaseError): reading the binlog again would meet the same events.

import type { TableRef } from '../dialect.js';
import { ShadowshiftError } from '../../util/errors.js';
import { classifyStatement, type Statement, type TableName } from './mysql-statement.js';
import { baseName, parseArtefactName } from './mysql-names.js';

export type QueryVerdict = { t: 'commit' } | { t: 'truncate' } | { t: 'swap' } | { t: 'fail'; error: ShadowshiftError } | { t: 'ignore' };

const FIX_FORMAT = 'Make every client use binlog_format=ROW (and binlog_row_image=FULL), then run the job again. The original is untouched.';
const FIX_IMAGE = 'Make every client use binlog_row_image=FULL (and binlog_format=ROW), then run the job again. The original is untouched.';

/** Names compare case-insensitively: a false alarm ends a job, a missed write corrupts its result. */
function same(a: string | null, b: string): boolean {
  return a === null || a.toLowerCase() === b.toLowerCase();
}

export function isTable(t: TableName, ref: TableRef): boolean {
  return same(t.name, ref.name) && same(t.schema, ref.schema);
}

function isArtefact(t: TableName, ref: TableRef, kind: 'shadow' | 'backup'): boolean {
  const a = parseArtefactName(t.name);
  return a !== null && a.kind === kind && a.base.toLowerCase() === baseName(ref.name).toLowerCase() && same(t.schema, ref.schema);
}

/**
 * The job's own swap: the original goes to its backup name and the shadow takes its
 * place, or (a revert) an old table kept under a backup name takes it back.
 */
function isOwnSwap(s: Statement, ref: TableRef): boolean {
  if (s.verb !== 'RENAME TABLE') return false;
  return s.renames.every(
    (r) =>
      (!isTable(r.from, ref) || isArtefact(r.to, ref, 'backup')) &&
      (!isTable(r.to, ref) || isArtefact(r.from, ref, 'shadow') || isArtefact(r.from, ref, 'backup')),
  );
}

function excerpt(sql: string): string {
  const flat = sql.replace(/\s+/g, ' ').trim();
  return flat.length > 120 ? `${flat.slice(0, 120)}…` : flat;
}

/** What a query event means for a job on `ref`; `defaultSchema` is the event's schema. */
export function judgeQuery(sql: string, defaultSchema: string | undefined, ref: TableRef): QueryVerdict {
  const s = classifyStatement(sql, defaultSchema);
  if (s.kind === 'transaction') return s.verb === 'COMMIT' ? { t: 'commit' } : { t: 'ignore' };
  if (!s.tables.some((t) => isTable(t, ref))) return { t: 'ignore' };
  const table = `${ref.schema}.${ref.name}`;
  if (s.kind === 'dml') {
    return {
      t: 'fail',
      error: new ShadowshiftError(`a session wrote ${table} with binlog_format=STATEMENT/MIXED: '${excerpt(sql)}'; the shadow cannot follow it. ${FIX_FORMAT}`),
    };
  }
  if (s.kind !== 'ddl') return { t: 'ignore' };
  if (s.verb === 'TRUNCATE') return { t: 'truncate' };
  // Triggers are read under the cut-over's lock and moved then (mysql-triggers.ts); the
  // cut-over's own renaming of them follows its RENAME in the binlog, where a revert reads.
  if (s.verb === 'CREATE TRIGGER') return { t: 'ignore' };
  // The end of the job's stream: what the engine checks reached the old table lies before it.
  if (isOwnSwap(s, ref)) return { t: 'swap' };
  return {
    t: 'fail',
    error: new ShadowshiftError(`someone else changed ${table} while the job ran ("${excerpt(sql)}"); the shadow no longer matches. Run the job again.`),
  };
}

/** A parent's row event without the columns its children reference (`missing`), whose cascade could not be replayed. */
export function incompleteParentImage(ref: TableRef, missing: string[]): ShadowshiftError {
  return new ShadowshiftError(
    `a session wrote ${ref.schema}.${ref.name} with binlog_row_image=MINIMAL/NOBLOB: its row event leaves out ${missing.join(', ')}, ` +
      `which the job needs to replay what the change cascaded. ${FIX_IMAGE}`,
  );
}

/** A statement-logged write to `ref` (a parent whose cascades are replayed): the stream would not see what it cascades. */
export function writesByStatement(sql: string, defaultSchema: string | undefined, ref: TableRef): ShadowshiftError | null {
  const s = classifyStatement(sql, defaultSchema);
  if (s.kind !== 'dml' || !s.tables.some((t) => isTable(t, ref))) return null;
  return new ShadowshiftError(`a session wrote ${ref.schema}.${ref.name}, whose cascades the job replays, with binlog_format=STATEMENT/MIXED: '${excerpt(sql)}'; the shadow cannot follow what it cascaded. ${FIX_FORMAT}`);
}

export interface RowsEventImage {
  numberOfColumns?: number;
  /** The (before, for updates and deletes) image's columns; zongji exposes the raw bitmaps. */
  columns_present_bitmap?: Buffer;
  /** An update's after image. */
  columns_present_bitmap2?: Buffer;
}

/** The columns a row event leaves out of any of its images (both images for an update), by the table map's names. */
export function leftOut(ev: RowsEventImage, update: boolean, columns: string[]): string[] {
  const count = ev.numberOfColumns ?? columns.length;
  const missing = new Set(absent(ev.columns_present_bitmap, count));
  if (update) for (const i of absent(ev.columns_present_bitmap2, count)) missing.add(i);
  return [...missing].sort((a, b) => a - b).map((i) => columns[i] ?? `#${i + 1}`);
}

function absent(bitmap: Buffer | undefined, count: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < count; i++) if (!bitmap || !(bitmap[i >> 3]! & (1 << (i & 7)))) out.push(i);
  return out;
}

/**
 * A final error when a row event on `ref` leaves columns out of any of its images
 * (both images for an update), else null. `columns` are the table map's names.
 */
export function incompleteImage(ev: RowsEventImage, update: boolean, columns: string[], ref: TableRef): ShadowshiftError | null {
  const names = leftOut(ev, update, columns);
  if (names.length === 0) return null;
  return new ShadowshiftError(
    `a session wrote ${ref.schema}.${ref.name} with binlog_row_image=MINIMAL/NOBLOB: its row event leaves out ${names.join(', ')}, ` +
      `which would reach the shadow as NULL; the shadow cannot follow it. ${FIX_IMAGE}`,
  );
}

const FIX_XA = 'Run the job when no XA transaction writes the table (XA RECOVER lists the prepared ones). The original is untouched.';

/**
 * XA transactions reach the binlog at XA PREPARE (MariaDB 10.5+, MySQL 5.7.7+): their row
 * events come before the transaction commits or rolls back, closed by an `XA END xid`
 * query event (MariaDB marks the start only in its GTID event, which zongji does not
 * surface), and the `XA COMMIT xid` that follows later carries no rows. The stream cannot
 * follow that: a rollback would leave the changes in the shadow, and a chunk reading
 * without row locks would not see a prepared change the shadow already holds and would
 * copy the row back (mysql-copier.ts). A transaction prepared before the stream started
 * commits with no rows the stream ever saw, whatever tables it wrote. So the job ends on
 * an XA transaction that wrote the table, and on the commit of one prepared before the
 * stream started. Xids compare as the server logs them.
 */
export class XaGuard {
  /** The transaction being read has row events of the migrated table. */
  private wroteTable = false;
  private readonly prepared = new Set<string>();

  /** A row event of the migrated table. */
  rows(): void {
    this.wroteTable = true;
  }

  /** The transaction being read committed (an XID event, a COMMIT query). */
  committed(): void {
    this.wroteTable = false;
  }

  /** A query event; an error when it ends the job. */
  query(sql: string, ref: TableRef): ShadowshiftError | null {
    const m = /^\s*XA\s+(END|COMMIT|ROLLBACK)\b\s*(.*?)\s*$/is.exec(sql);
    if (!m) return null;
    const xid = m[2]!.replace(/\s+(ONE\s+PHASE|SUSPEND(\s+FOR\s+MIGRATE)?)$/i, '');
    const verb = m[1]!.toUpperCase();
    if (verb === 'END') {
      this.prepared.add(xid);
      const wrote = this.wroteTable;
      this.wroteTable = false;
      if (wrote) {
        return new ShadowshiftError(
          `an XA transaction wrote ${ref.schema}.${ref.name} (${excerpt(sql)}): its changes reach the binary log at XA PREPARE, before it commits or rolls back, so the shadow cannot follow them. ${FIX_XA}`,
        );
      }
    } else if (!this.prepared.delete(xid) && verb === 'COMMIT') {
      return new ShadowshiftError(
        `an XA transaction prepared before the job started committed during it (${excerpt(sql)}); its changes, which may include ${ref.schema}.${ref.name}, were logged before the job's stream began. ${FIX_XA}`,
      );
    }
    return null;
  }
}
