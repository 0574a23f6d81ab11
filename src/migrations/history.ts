// The history table read against the files: each migration's state and
// checksum for `migrate status`, and the refusals every run starts with (an
// applied file that changed, a pending version older than an applied one).

import { createHash } from 'node:crypto';
import { MigrationRefusedError } from './errors.js';
import { checksumOf, compareVersions, type MigrationFile, type Phase } from './migration-files.js';
import type { HistoryRecord, ReachedPhase } from './migration-store.js';

export type MigrationState = 'pending' | 'failed' | 'running' | 'expanded' | 'backfilled' | 'contracted' | 'rolled back' | 'baseline' | 'below baseline';

export interface MigrationStatus {
  version: string;
  name: string;
  file: string | null;
  kind: 'sql' | 'ts' | 'baseline';
  state: MigrationState;
  /** ok, changed (file edited after it was applied), missing (applied, file gone), or null (not applied). */
  checksum: 'ok' | 'changed' | 'missing' | null;
  fileChecksum: string | null;
  appliedChecksum: string | null;
  phases: Phase[];
  appliedBy: string | null;
  host: string | null;
  startedAt: string | null;
  finishedAt: string | null;
  durationMs: number | null;
  /** Where a failed/interrupted run stopped. */
  stoppedAt: { phase: Phase | null; statement: number; error: string | null; failedStatement: string | null } | null;
}

/** SHA-256 of statements' text, recorded so a resumed run knows the ones that ran did not change. */
export function statementsChecksum(texts: string[]): string {
  return createHash('sha256').update(texts.join('\u0000')).digest('hex');
}

/** SHA-256 of one phase as written (SQL), or of the whole file (TS: phases are code). */
export function phaseChecksum(f: MigrationFile, phase: Phase): string {
  if (f.kind === 'ts') return f.checksum;
  return checksumOf(f.phases[phase]?.sql ?? '');
}

export function parsePhaseChecksums(text: string | null): Partial<Record<Phase, string>> {
  if (!text) return {};
  try {
    return JSON.parse(text) as Partial<Record<Phase, string>>;
  } catch {
    return {};
  }
}

export function nowIso(): string {
  return new Date().toISOString();
}

const APPLIED: ReachedPhase[] = ['expanded', 'backfilled', 'contracted', 'baseline'];

export function belowBaseline(version: string, history: HistoryRecord[]): boolean {
  return history.some((h) => h.reached === 'baseline' && compareVersions(version, h.version) <= 0);
}

/** Files and history side by side, by version; warnings for applied migrations whose file is gone. */
export function migrationStatuses(files: MigrationFile[], history: HistoryRecord[], dir: string): { migrations: MigrationStatus[]; warnings: string[] } {
  const byVersion = new Map(history.map((h) => [h.version, h]));
  const baseline = history.filter((h) => h.reached === 'baseline').map((h) => h.version).sort(compareVersions).pop() ?? null;
  const out: MigrationStatus[] = [];
  const warnings: string[] = [];
  const seen = new Set<string>();
  for (const f of files) {
    seen.add(f.version);
    const rec = byVersion.get(f.version) ?? null;
    out.push(statusOf(f, rec, baseline));
  }
  for (const h of history) {
    if (seen.has(h.version)) continue;
    const s = statusOf(null, h, baseline);
    out.push(s);
    if (h.reached !== 'baseline' && h.reached !== 'rolled back' && h.reached !== null) {
      warnings.push(`${h.version}_${h.name} is recorded as ${h.reached} but its file is missing from ${dir}; restore it (contract and down need it)`);
    }
  }
  out.sort((a, b) => compareVersions(a.version, b.version));
  return { migrations: out, warnings };
}

function statusOf(f: MigrationFile | null, rec: HistoryRecord | null, baseline: string | null): MigrationStatus {
  let state: MigrationState;
  if (!rec) state = baseline !== null && f && compareVersions(f.version, baseline) <= 0 ? 'below baseline' : 'pending';
  else if (rec.status === 'failed') state = 'failed';
  else if (rec.status === 'running') state = 'running';
  else state = (rec.reached ?? 'pending') as MigrationState;
  const applied = rec !== null && rec.reached !== null && rec.reached !== 'rolled back' && rec.kind !== 'baseline';
  let checksum: MigrationStatus['checksum'] = null;
  if (applied) checksum = !f ? 'missing' : f.checksum === rec.checksum ? 'ok' : 'changed';
  return {
    version: f?.version ?? rec!.version,
    name: f?.name ?? rec!.name,
    file: f?.file ?? null,
    kind: f?.kind ?? rec!.kind,
    state,
    checksum,
    fileChecksum: f?.checksum ?? null,
    appliedChecksum: rec?.checksum ?? null,
    phases: f ? phasesOf(f) : [],
    appliedBy: rec?.appliedBy ?? null,
    host: rec?.host ?? null,
    startedAt: rec?.startedAt ?? null,
    finishedAt: rec?.finishedAt ?? null,
    durationMs: rec?.durationMs ?? null,
    stoppedAt:
      rec && (rec.status === 'failed' || rec.status === 'running')
        ? { phase: rec.currentPhase, statement: rec.statementsDone + 1, error: rec.error, failedStatement: rec.failedStatement }
        : null,
  };
}

function phasesOf(f: MigrationFile): Phase[] {
  if (f.kind === 'sql') return (['expand', 'backfill', 'contract', 'down'] as Phase[]).filter((p) => f.phases[p]);
  return [];
}

/**
 * Refusals that apply to every run: edited applied files, and (with
 * pendingMustBeNewest: up without --out-of-order) pending versions older than an
 * applied one. Returns the warnings of `migrate status`.
 */
export function verifyHistory(files: MigrationFile[], history: HistoryRecord[], options: { dir: string; pendingMustBeNewest: boolean }): string[] {
  const warnings: string[] = [];
  const byVersion = new Map(history.map((h) => [h.version, h]));
  for (const f of files) {
    const rec = byVersion.get(f.version);
    if (!rec || rec.kind === 'baseline' || rec.reached === null || rec.reached === 'rolled back') continue;
    if (rec.status !== 'ok' && rec.checksum !== f.checksum) {
      // A failed migration may be fixed, but only in the phases that have not completed.
      const done = parsePhaseChecksums(rec.phaseChecksums);
      for (const [phase, sum] of Object.entries(done)) {
        const now = phaseChecksum(f, phase as Phase);
        if (now !== sum) {
          throw new MigrationRefusedError(
            `${f.file}: its ${phase} phase was changed after it completed (failed later, in ${rec.currentPhase ?? '?'}): applied checksum ${sum}, file checksum ${now}. ` +
              `Only the phase that failed may be edited; restore the ${phase} phase as it ran.`,
          );
        }
      }
      continue;
    }
    if (rec.checksum !== f.checksum) {
      throw new MigrationRefusedError(
        `${f.file} was changed after it was applied (${rec.reached}): applied checksum ${rec.checksum}, file checksum ${f.checksum}. ` +
          'Restore the file as it was applied (e.g. git checkout it) and put the change in a new migration.',
      );
    }
  }
  warnings.push(...migrationStatuses(files, history, options.dir).warnings);
  if (options.pendingMustBeNewest) {
    const applied = history.filter((h) => h.reached !== null && APPLIED.includes(h.reached)).map((h) => h.version).sort(compareVersions);
    const latest = applied[applied.length - 1];
    if (latest !== undefined) {
      const older = files.filter((f) => {
        const rec = byVersion.get(f.version);
        const pending = !rec || rec.reached === 'rolled back' || (rec.reached === null && rec.status !== 'ok');
        return pending && compareVersions(f.version, latest) < 0 && !belowBaseline(f.version, history);
      });
      if (older.length > 0) {
        throw new MigrationRefusedError(
          `pending ${older.map((f) => f.file).join(', ')} ${older.length === 1 ? 'is' : 'are'} older than the applied version ${latest}. ` +
            'Give it a version above the latest applied one (rename the file), or run with --out-of-order if applying it late is safe.',
        );
      }
    }
  }
  return warnings;
}
