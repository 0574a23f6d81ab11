// Names of the artefacts one job creates. Every name starts with `_ss_` and carries a
// short hash of the job id, so two jobs never collide and `cleanup` can recognise them.
// PostgreSQL truncates identifiers at 63 bytes (NAMEDATALEN - 1): a silently truncated
// name could collide with another job's, so names are cut here, on a character boundary.

import { createHash } from 'node:crypto';
import type { ArtefactNames, TableRef } from '../dialect.js';

export const MAX_IDENT_BYTES = 63;
export const ARTEFACT_PREFIX = '_ss_';

export function jobTag(jobId: string): string {
  return createHash('sha256').update(jobId).digest('hex').slice(0, 10);
}

/** Cuts `s` to at most `bytes` UTF-8 bytes without splitting a character. */
export function truncateBytes(s: string, bytes: number): string {
  if (Buffer.byteLength(s, 'utf8') <= bytes) return s;
  let out = '';
  for (const ch of s) {
    if (Buffer.byteLength(out + ch, 'utf8') > bytes) break;
    out += ch;
  }
  return out;
}

/** `_ss_<tag>_<kind>_<table…>`, within 63 bytes. */
export function artefactName(kind: string, tag: string, table: string): string {
  const head = `${ARTEFACT_PREFIX}${tag}_${kind}_`;
  return head + truncateBytes(table, MAX_IDENT_BYTES - Buffer.byteLength(head, 'utf8'));
}

/** Slots and publications: lower-case ASCII only (slot names allow [a-z0-9_]). */
/** A resumable job's slot is `_ss_<tag>_rslot`: kept on purpose after a failure, so `cleanup` can tell it apart. */
export function slotName(tag: string, resumable = false): string {
  return `${ARTEFACT_PREFIX}${tag}_${resumable ? 'r' : ''}slot`;
}

export function publicationName(tag: string, resumable = false): string {
  return `${ARTEFACT_PREFIX}${tag}_${resumable ? 'r' : ''}pub`;
}

export function postgresArtefactNames(table: TableRef, jobId: string, options?: { resumable?: boolean }): ArtefactNames {
  const tag = jobTag(jobId);
  const resumable = Boolean(options?.resumable);
  return {
    shadow: artefactName('new', tag, table.name),
    backup: artefactName('old', tag, table.name),
    changelog: publicationName(tag, resumable),
    extra: { slot: slotName(tag, resumable), tag, schema: table.schema, ...(resumable ? { resumable: 'true' } : {}) },
  };
}

/** Parses an artefact name back into its parts; null when it is not one of ours. */
export function parseArtefactName(name: string): { tag: string; kind: string; rest: string } | null {
  const m = /^_ss_([0-9a-f]{10})_([a-z0-9]+)(?:_(.*))?$/s.exec(name);
  if (!m) return null;
  return { tag: m[1]!, kind: m[2]!, rest: m[3] ?? '' };
}

/** Name for an index or sequence of the original moved out of the way at cut-over. */
export function asideName(tag: string, n: number, original: string): string {
  return artefactName(`o${n}`, tag, original);
}

/** Slots and publications a resumable job keeps on purpose (`_ss_<tag>_rslot`, `_ss_<tag>_rpub`). */
export function isResumableArtefact(name: string): boolean {
  const p = parseArtefactName(name);
  return p !== null && (p.kind === 'rslot' || p.kind === 'rpub');
}

/** The cut-over connection's application_name: a resume tells a stopped run's queued lock request by it. */
export const CUTOVER_APPLICATION_NAME = 'shadowshift cut-over';
