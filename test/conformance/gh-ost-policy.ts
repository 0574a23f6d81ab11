// What counts as passing a gh-ost corpus case, and where shadowshift's policy differs
// from gh-ost's, with the reason. A refusal passes only when it is the refusal the
// case's expect_failure names (our words for the same reason, below); a job that
// succeeds passes only when the case's comparison of original and new columns is equal.

import type { GhostCase } from './gh-ost-cases.js';
import type { CaseRun } from './gh-ost-run-case.js';

interface Policy {
  /** Our message for the refusal gh-ost's expect_failure names. */
  sameRefusal?: RegExp;
  /** Why shadowshift behaves differently from gh-ost here (written to the report). */
  difference?: string;
}

const NO_SHARED_KEY = /share no primary key or NOT NULL unique key/;
const NO_KEY = /has no primary key and no unique key over NOT NULL columns/;
const NEW_KEY_DUPLICATES = /the new unique key \S+ has duplicate values/;

export const POLICY: Record<string, Policy> = {
  'copy-retries-exhausted': { sameRefusal: /max_binlog_cache_size/ },
  'datetime-to-timestamp-pk-fail': {
    sameRefusal: /changes how t compares \(datetime → timestamp\)/,
    difference: 'Same refusal, our reason: a TIMESTAMP key compares instants, not wall-clock values, so the key is new and cannot match rows.',
  },
  'fail-datetime-with-zero': { sameRefusal: /Invalid default value for 'dt'/ },
  'fail-existing-datetime-with-zero': { sameRefusal: /Invalid default value for 'dt'/ },
  'fail-drop-pk': { sameRefusal: NO_SHARED_KEY },
  'fail-no-shared-uk': { sameRefusal: NO_SHARED_KEY },
  'fail-no-unique-key': { sameRefusal: NO_KEY },
  'fail-float-unique-key': { sameRefusal: NO_KEY, difference: 'Same refusal: the only unique key is over a nullable FLOAT, usable by neither tool.' },
  'fail-fk': { difference: "Not refused: the table's foreign key moves to the new table at the cut-over, under its own name (gh-ost refuses child tables)." },
  'fail-fk-parent': { difference: "Not refused: the child's foreign key is repointed at the new table under the cut-over's lock, atomically with the swap (gh-ost refuses parent tables)." },
  'fail-rename-table': { sameRefusal: /the ALTER renames the table/ },
  'panic-on-warnings-batch-middle': { sameRefusal: NEW_KEY_DUPLICATES, difference: 'shadowshift always fails on a duplicate in a new unique key (gh-ost needs --panic-on-warnings).' },
  'panic-on-warnings-duplicate-unique-values-on-column-type-change': {
    sameRefusal: /Data truncated for column 'name'|duplicate values in gh_ost_test \(e\.g\. 'John'/,
    difference:
      "Refused one step earlier: narrowing name to varchar(4) truncates 'John Smith', which shadowshift refuses as data loss (as a strict native ALTER does); gh-ost lets the truncation through and fails on the duplicate 'John' it causes.",
  },
  'panic-on-warnings-duplicate-values-for-unique-index': { sameRefusal: /duplicate values in gh_ost_test \(e\.g\. 'John'/ },
  'panic-on-warnings-update-pk-with-duplicate-on-new-unique-index': { sameRefusal: NEW_KEY_DUPLICATES },
  'modify-change-case-pk': {
    difference: 'gh-ost refuses `MODIFY ID int` on column `id` (it compares key names case-sensitively); MySQL column names are case-insensitive, the key is the same, and the data is equal.',
  },
  'discard-fk': {
    difference: 'The foreign key is kept: it moves to the new table at the cut-over (gh-ost --discard-foreign-keys drops it).',
  },
  'trigger-advanced-features': {
    difference: "Triggers always move to the new table (gh-ost needs --include-triggers), and keep their own names: they are created on the shadow under temporary names at the cut-over, and renamed under a second short lock right after the swap (mysql-triggers.ts).",
  },
  'trigger-long-name-validation': { difference: 'A name too long for the temporary suffix gets a cut name with a hash for the time between the two steps, so no limit applies.' },
  'trigger-ghost-name-conflict': {
    difference: "Not refused: the trigger named like gh-ost's copy (_ght) is just another trigger to shadowshift, whose temporary names end in _ssnew; it moves with the others.",
  },
  'generated-columns-unique': { difference: "Skipped: create.sql uses MySQL-only syntax (a STORED NOT NULL generated column in the primary key); the case's ignore_versions excludes MariaDB." },
  sysbench: { difference: "gh-ost's harness loads sbtest1 with sysbench; the runner stands in its own write load of the same shape (sysbench is not installed here)." },
  'attempt-instant-ddl': { difference: 'gh-ost --attempt-instant-ddl tries ALGORITHM=INSTANT first; shadowshift always runs the online copy.' },
  'gtid-resume': { difference: "gh-ost's script interrupts a --checkpoint run and resumes it; here: --resumable, SIGTERM once a checkpoint is written, then --resume." },
};

export function judge(c: GhostCase, run: CaseRun): { pass: boolean; outcome: string } {
  const p = POLICY[c.name] ?? {};
  switch (run.verdict) {
    case 'equal':
      return { pass: true, outcome: c.expectFailure !== null ? 'equal (gh-ost refuses this case)' : 'equal' };
    case 'refused': {
      const same = p.sameRefusal?.test(run.detail) ?? false;
      return { pass: same, outcome: same ? `refused as expected ("${c.expectFailure}")` : `refused, but not for "${c.expectFailure}"` };
    }
    case 'failed':
      return { pass: false, outcome: 'failed' };
    case 'different':
      return { pass: false, outcome: 'DIFFERENT DATA' };
    case 'structure':
      return { pass: false, outcome: 'data equal, table structure not as expected' };
    case 'skipped':
      return { pass: false, outcome: 'skipped' };
  }
}

const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\s+/g, ' ').trim();

export function renderReport(r: { commit: string; version: string; judged: Array<{ run: CaseRun; c: GhostCase }> }): string {
  const pass = r.judged.filter(({ c, run }) => judge(c, run).pass).length;
  const lines = [
    '# gh-ost corpus conformance (MariaDB)',
    '',
    'Written by `test/conformance/gh-ost-corpus.ts` (see its header for how to run it). Each case of',
    `gh-ost's \`localtests/\` at commit \`${r.commit}\` ran against shadowshift on ${r.version},`,
    "with the case's ALTER while its event wrote to the table; the case's comparison of original",
    'and new columns then ran on the old table (kept as the backup) and the new one.',
    '',
    `**${pass} of ${r.judged.length} pass.** A pass is an equal comparison, or a refusal that is the one`,
    "the case's `expect_failure` names. Differences in policy are explained in the last column.",
    '',
    '| case | ALTER | result | detail | policy difference |',
    '|---|---|---|---|---|',
  ];
  for (const { c, run } of r.judged) {
    const j = judge(c, run);
    const flags = c.otherFlags.length > 0 ? ` (gh-ost flags: ${c.otherFlags.join(' ')})` : '';
    lines.push(
      `| ${c.name} | \`\` ${cell(c.alter)} \`\`${cell(flags)} | ${j.pass ? 'pass' : 'FAIL'}: ${cell(j.outcome)} | ${cell(run.detail.slice(0, 240))} | ${cell(POLICY[c.name]?.difference ?? '')} |`,
    );
  }
  return `${lines.join('\n')}\n`;
}
