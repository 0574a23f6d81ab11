// Names of the artefacts one job creates, readable and derived from the table's name:
//   shadow     <table>_ssnew
//   changelog  <table>_sslog
//   backup     <table>_ssold_<jobId>   (also the cut-over's sentry, see mysql-cutover.ts)
//   preview    <table>_sspre_<connection id>   (a partitioned table's preview, see mysql-shadow.ts)
//
// Every name the cut-over's RENAME touches must sort AFTER the table's own name. RENAME
// TABLE takes its metadata locks one at a time in sorted order (the lock key is the
// name's bytes, a NUL after the name), so with the table first, the RENAME's first wait
// is on the table itself, the one the cut-over holds: a session holding any lock on the
// shadow (a reader with an open transaction) can then never make the RENAME wait
// somewhere else while the cut-over lets the application's queued writes into the old
// table. A name that starts with the whole table name sorts after it.
//
// MySQL identifiers hold at most 64 characters. A table name too long for the suffixes
// is cut at a position where it has a character below `~`, and `~` plus a short hash of
// the full name follows: the cut name still sorts after the table (same prefix, then a
// greater byte), two long names never share artefacts, and cleanup can map an artefact
// back to its table (baseName()). A long name with no such position cannot be given
// names that sort after it: such a table is refused at preflight (canOrderNamesAfter).

import { createHash } from 'node:crypto';
import type { ArtefactNames, TableRef } from '../dialect.js';
import { ShadowshiftError } from '../../util/errors.js';

export const MAX_IDENT_CHARS = 64;
/** The longest suffix: `_ssold_` + a job id (8 hex digits, up to 16 allowed). */
const LONGEST_SUFFIX = '_ssold_'.length + 16;
const HASH_CHARS = 6;

function shortHash(s: string): string {
  return createHash('sha256').update(s).digest('hex').slice(0, HASH_CHARS);
}

/**
 * The table name, or for long names `<table cut>~<hash>`; always leaves room for the
 * longest suffix and always sorts after the table. null when no such name exists.
 */
function orderedBase(table: string): string | null {
  const chars = [...table];
  const room = MAX_IDENT_CHARS - LONGEST_SUFFIX;
  if (chars.length <= room) return table;
  // Cut before a character that sorts below `~` (in bytes, and also once lower-cased,
  // as lower_case_table_names compares): the `~` that replaces it makes the name greater.
  for (let cut = room - 1 - HASH_CHARS; cut > 0; cut--) {
    const next = chars[cut]!;
    if (next < '~' && next.toLowerCase() < '~') return `${chars.slice(0, cut).join('')}~${shortHash(table)}`;
  }
  return null;
}

/** `<table>` or `<table cut>~<hash>`: what every artefact name of the table starts with. */
export function baseName(table: string): string {
  const base = orderedBase(table);
  if (base === null) throw new ShadowshiftError(cannotOrderMessage(table));
  return base;
}

export function canOrderNamesAfter(table: string): boolean {
  return orderedBase(table) !== null;
}

export function cannotOrderMessage(table: string): string {
  return (
    `the table name ${table} is too long for names that sort after it (the cut-over relies on that to prove the swap waits on the table itself), ` +
    `and it has no character below '~' to cut it at. Rename the table to at most ${MAX_IDENT_CHARS - LONGEST_SUFFIX} characters, then run again.`
  );
}

/** Byte order of two names as the server's metadata-lock keys compare them (NUL-terminated). */
function keyBytes(name: string): Buffer {
  return Buffer.from(`${name}\u0000`, 'utf8');
}

/** True when `name` sorts after `table` as a metadata-lock key, in its own spelling and lower-cased. */
export function sortsAfter(name: string, table: string): boolean {
  return Buffer.compare(keyBytes(name), keyBytes(table)) > 0 && Buffer.compare(keyBytes(name.toLowerCase()), keyBytes(table.toLowerCase())) > 0;
}

/** The job's changelog table (markers): the stream reads it, and each chunk of the copy writes it (mysql-copier.ts). */
export function changelogName(table: string): string {
  return `${baseName(table)}_sslog`;
}

/** The changelog beside a shadow `<base>_ssnew` (also an earlier version's); null for another name. */
export function changelogBeside(shadow: string): string | null {
  const parsed = parseArtefactName(shadow);
  return parsed?.kind === 'shadow' ? `${parsed.base}_sslog` : null;
}

export function mysqlArtefactNames(table: TableRef, jobId: string, options?: { resumable?: boolean }): ArtefactNames {
  const id = jobId.replace(/[^0-9a-zA-Z]/g, '').slice(0, 16) || shortHash(jobId);
  const base = baseName(table.name);
  const backup = `${base}_ssold_${id}`;
  return {
    shadow: `${base}_ssnew`,
    changelog: changelogName(table.name),
    backup,
    extra: {
      sentry: backup,
      schema: table.schema,
      table: table.name,
      jobId,
      ...(options?.resumable ? { resumable: 'true' } : {}),
    },
  };
}

export type ArtefactKind = 'shadow' | 'changelog' | 'backup' | 'preview';

/**
 * Parses an artefact name into its base and kind; null when it is not one of ours.
 * Names of earlier versions (`_<table>_ss…`, the fence `<table>~ssf` / `<table>~ssd`)
 * parse too, so `cleanup` still finds what they left: their base is `_<table>`.
 */
export function parseArtefactName(name: string): { base: string; kind: ArtefactKind } | null {
  const fence = /^(.+)~ss[fd]$/su.exec(name);
  if (fence) return { base: `_${fence[1]}`, kind: 'backup' };
  const m = /^(.+)_ss(new|log|old_[0-9a-zA-Z]{1,16}|pre_[0-9]{1,16})$/su.exec(name);
  if (!m) return null;
  const kind: ArtefactKind = m[2] === 'new' ? 'shadow' : m[2] === 'log' ? 'changelog' : m[2]!.startsWith('pre_') ? 'preview' : 'backup';
  return { base: m[1]!, kind };
}

/** The bases an earlier version gave the table's artefacts (`_<table>`, or cut with a hash). */
export function legacyBaseName(table: string): string {
  const room = MAX_IDENT_CHARS - LONGEST_SUFFIX - 1;
  const chars = [...table];
  if (chars.length <= room) return `_${table}`;
  return `_${chars.slice(0, room - 7).join('')}~${shortHash(table)}`;
}

/** The session-private table previewShadow() alters. */
export function previewName(table: string): string {
  return `${legacyBaseName(table)}_sspre`;
}

/**
 * The real table previewShadow() alters when a temporary one cannot hold the
 * partitioning. The connection id makes it unique among live previews (two runs may
 * preview one table at once: neither holds the job lock yet); a table name too long
 * to order after takes the legacy base, as cleanup maps either back to its table.
 */
export function previewTableName(table: string, connectionId: number): string {
  return `${canOrderNamesAfter(table) ? baseName(table) : legacyBaseName(table)}_sspre_${connectionId}`;
}

/** The user lock a preview holds while its table exists: cleanup and no-leftovers see it is in use. */
export function previewLockName(previewTable: string): string | null {
  const m = /_sspre_([0-9]{1,16})$/u.exec(previewTable);
  return m ? `shadowshift-preview:${m[1]}` : null;
}

/** Job lock name; MySQL limits user lock names to 64 characters. */
export function jobLockName(ref: TableRef): string {
  const full = `shadowshift:${ref.schema}.${ref.name}`;
  if ([...full].length <= 64) return full;
  return `shadowshift:${createHash('sha256').update(`${ref.schema}.${ref.name}`).digest('hex').slice(0, 40)}`;
}
