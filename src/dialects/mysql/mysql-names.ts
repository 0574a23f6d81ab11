// Names of the artefacts one job creates, gh-ost style and readable:
//   shadow     _<table>_ssnew
//   changelog  _<table>_sslog
//   backup     _<table>_ssold_<jobId>   (also the cut-over sentry's name, see mysql-cutover.ts)
// MySQL identifiers hold at most 64 characters: a long table name is cut and a short
// hash of the full name is added, so two long names never share artefacts and
// cleanup can map an artefact back to its table (baseName()).

import { createHash } from 'node:crypto';
import type { ArtefactNames, TableRef } from '../dialect.js';

export const MAX_IDENT_CHARS = 64;
const FENCE_SUFFIX_CHARS = '~ssf'.length;
/** The longest suffix: `_ssold_` + a job id (8 hex digits, up to 16 allowed). */
const LONGEST_SUFFIX = '_ssold_'.length + 16;

function shortHash(s: string): string {
  return createHash('sha256').update(s).digest('hex').slice(0, 6);
}

/** `_<table>` or, for long names, `_<table cut>~<hash>`; always leaves room for the longest suffix. */
export function baseName(table: string): string {
  const room = MAX_IDENT_CHARS - LONGEST_SUFFIX - 1;
  const chars = [...table];
  if (chars.length <= room) return `_${table}`;
  return `_${chars.slice(0, room - 7).join('')}~${shortHash(table)}`;
}

export function mysqlArtefactNames(table: TableRef, jobId: string, options?: { resumable?: boolean }): ArtefactNames {
  const id = jobId.replace(/[^0-9a-zA-Z]/g, '').slice(0, 16) || shortHash(jobId);
  const base = baseName(table.name);
  const backup = `${base}_ssold_${id}`;
  // The cut-over's sentry must sort after the table's own name, so the queued RENAME
  // waits on the table first (see mysql-cutover.ts): `<table>~ssf`, moved into place
  // by renaming `<table>~ssd`. A name too long for that falls back to the backup name.
  const fenced = [...table.name].length + FENCE_SUFFIX_CHARS <= MAX_IDENT_CHARS;
  return {
    shadow: `${base}_ssnew`,
    changelog: `${base}_sslog`,
    backup,
    extra: {
      sentry: fenced ? `${table.name}~ssf` : backup,
      ...(fenced ? { sentrySource: `${table.name}~ssd` } : {}),
      schema: table.schema,
      table: table.name,
      jobId,
      ...(options?.resumable ? { resumable: 'true' } : {}),
    },
  };
}

export type ArtefactKind = 'shadow' | 'changelog' | 'backup';

/** Parses an artefact name into its base (`_<table…>`) and kind; null when it is not one of ours. */
export function parseArtefactName(name: string): { base: string; kind: ArtefactKind } | null {
  const fence = /^(.+)~ss[fd]$/su.exec(name);
  if (fence) return { base: `_${fence[1]}`, kind: 'backup' };
  const m = /^(_.+)_ss(new|log|old_[0-9a-zA-Z]{1,16})$/su.exec(name);
  if (!m) return null;
  const kind: ArtefactKind = m[2] === 'new' ? 'shadow' : m[2] === 'log' ? 'changelog' : 'backup';
  return { base: m[1]!, kind };
}

/** The session-private table previewShadow() alters. */
export function previewName(table: string): string {
  return `${baseName(table)}_sspre`;
}

/** Job lock name; MySQL limits user lock names to 64 characters. */
export function jobLockName(ref: TableRef): string {
  const full = `shadowshift:${ref.schema}.${ref.name}`;
  if ([...full].length <= 64) return full;
  return `shadowshift:${createHash('sha256').update(`${ref.schema}.${ref.name}`).digest('hex').slice(0, 40)}`;
}
