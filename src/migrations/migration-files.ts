// Migration files on disk: discovery, ordering, phases and checksums.
//
//   <version>_<name>.sql   phases split by marker comment lines:
//                            -- shadowshift:expand    (the default before any marker)
//                            -- shadowshift:backfill
//                            -- shadowshift:contract
//                            -- shadowshift:down      (undoes expand)
//   <version>_<name>.ts    default-exports defineMigration({ expand, backfill, contract, down })
//
// Versions are digits (a UTC timestamp from `migrate new`, or 001, 002, ...),
// ordered numerically. The checksum is SHA-256 over the content with line
// endings normalised to \n, so a checkout on Windows does not look edited.

import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { UsageError } from '../util/errors.js';

export const PHASES = ['expand', 'backfill', 'contract', 'down'] as const;
export type Phase = (typeof PHASES)[number];

export interface PhaseText {
  /** The phase's SQL as written. */
  sql: string;
  /** 1-based line of the phase's first line in the file (after its marker). */
  firstLine: number;
}

export interface MigrationFile {
  version: string;
  name: string;
  /** File name, e.g. 0003_add_status.sql. */
  file: string;
  path: string;
  kind: 'sql' | 'ts';
  checksum: string;
  content: string;
  /** SQL files only: the text of each phase present. */
  phases: Partial<Record<Phase, PhaseText>>;
}

const FILE_PATTERN = /^(\d+)_([A-Za-z0-9][A-Za-z0-9_.-]*)\.(sql|ts)$/;
const MARKER = /^[ \t]*--[ \t]*shadowshift:([A-Za-z_-]+)[ \t]*$/;

export function normaliseLineEndings(text: string): string {
  return text.replace(/\r\n?/g, '\n');
}

export function checksumOf(content: string): string {
  return createHash('sha256').update(normaliseLineEndings(content), 'utf8').digest('hex');
}

/** Numeric order of versions ("10" after "9"); equal numbers with different spellings are a conflict. */
export function compareVersions(a: string, b: string): number {
  const x = BigInt(a);
  const y = BigInt(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** Splits a SQL migration into its phases. Unknown or repeated markers are errors. */
export function parseSqlPhases(content: string, file = 'migration'): Partial<Record<Phase, PhaseText>> {
  const lines = normaliseLineEndings(content).split('\n');
  const phases: Partial<Record<Phase, PhaseText>> = {};
  let current: Phase = 'expand';
  let buf: string[] = [];
  let firstLine = 1;
  let explicitExpand = false;
  const flush = () => {
    const text = buf.join('\n');
    if (phases[current]) {
      throw new UsageError(`${file}: the ${current} phase appears twice; put all its statements under one "-- shadowshift:${current}" marker`);
    }
    if (text.trim() || current !== 'expand' || explicitExpand) phases[current] = { sql: text, firstLine };
  };
  lines.forEach((line, idx) => {
    const m = MARKER.exec(line);
    if (!m) {
      buf.push(line);
      return;
    }
    const name = m[1]!.toLowerCase();
    if (!(PHASES as readonly string[]).includes(name)) {
      if (name.startsWith('lint')) {
        buf.push(line);
        return;
      }
      throw new UsageError(`${file} line ${idx + 1}: unknown phase marker "-- shadowshift:${m[1]}"; use one of ${PHASES.map((p) => `-- shadowshift:${p}`).join(', ')}`);
    }
    if (name === 'expand' && current === 'expand' && !explicitExpand) {
      // Text before the first marker belongs to expand: the marker only makes it explicit.
      explicitExpand = true;
      buf.push('');
      return;
    }
    flush();
    current = name as Phase;
    if (current === 'expand') explicitExpand = true;
    buf = [];
    firstLine = idx + 2;
  });
  flush();
  // An untouched default expand phase with only comments/blank lines is dropped.
  if (phases.expand && !phases.expand.sql.replace(/--.*$/gm, '').trim() && !explicitExpand) delete phases.expand;
  return phases;
}

export function parseFileName(file: string): { version: string; name: string; kind: 'sql' | 'ts' } | null {
  const m = FILE_PATTERN.exec(file);
  if (!m) return null;
  return { version: m[1]!, name: m[2]!, kind: m[3] as 'sql' | 'ts' };
}

export function loadMigrationFile(path: string): MigrationFile {
  const file = basename(path);
  const parsed = parseFileName(file);
  if (!parsed) {
    throw new UsageError(`${path}: not a migration file name; use <version>_<name>.sql or .ts, e.g. 20250101120000_add_status.sql`);
  }
  const content = readFileSync(path, 'utf8');
  return {
    ...parsed,
    file,
    path: resolve(path),
    checksum: checksumOf(content),
    content,
    phases: parsed.kind === 'sql' ? parseSqlPhases(content, file) : {},
  };
}

/**
 * Every migration in `dir`, ordered by version. Other files (README, .d.ts,
 * directories) are ignored; a .sql/.ts file with a bad name or two files with
 * the same version are errors.
 */
export function discoverMigrations(dir: string): MigrationFile[] {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new UsageError(`migrations directory ${dir} does not exist; create it, pass --dir, or run \`shadowshift migrate new <name>\``);
  }
  const found: MigrationFile[] = [];
  for (const entry of readdirSync(dir).sort()) {
    const path = join(dir, entry);
    if (!statSync(path).isFile()) continue;
    if (entry.endsWith('.d.ts') || !/\.(sql|ts)$/.test(entry)) continue;
    if (!parseFileName(entry)) {
      throw new UsageError(`${path}: not a migration file name; rename it to <version>_<name>${entry.endsWith('.ts') ? '.ts' : '.sql'} (version = digits), or move it out of ${dir}`);
    }
    found.push(loadMigrationFile(path));
  }
  found.sort((a, b) => compareVersions(a.version, b.version));
  for (let i = 1; i < found.length; i++) {
    if (compareVersions(found[i - 1]!.version, found[i]!.version) === 0) {
      throw new UsageError(`${found[i - 1]!.file} and ${found[i]!.file} have the same version ${found[i]!.version}; give one of them a new version`);
    }
  }
  return found;
}

/** A UTC timestamp version, YYYYMMDDHHMMSS. */
export function timestampVersion(now = new Date()): string {
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${now.getUTCFullYear()}${p(now.getUTCMonth() + 1)}${p(now.getUTCDate())}${p(now.getUTCHours())}${p(now.getUTCMinutes())}${p(now.getUTCSeconds())}`;
}
