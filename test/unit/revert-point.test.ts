// The pure logic of revert after the cut-over: the window, the way back's column names,
// the revert's stable id, the log-retention warning, what the stream guard takes for the
// revert's own swap, and which values of a changed column the old type cannot hold.

import { describe, expect, it } from 'vitest';
import { capacityOutcome, retentionOutcome } from '../../src/engine/revert-preflight.js';
import { slotShortfall } from '../../src/dialects/postgres/postgres-revert.js';
import { reverseAnalysis, revertJobId, revertPointAt, windowClosed } from '../../src/engine/revert-point.js';
import { integerRange, misfit } from '../../src/dialects/mysql/mysql-revert.js';
import { judgeQuery } from '../../src/dialects/mysql/mysql-stream-guard.js';
import type { RevertSupport } from '../../src/dialects/dialect.js';
import type { TypedColumn } from '../../src/dialects/mysql/mysql-conversions.js';

const point = revertPointAt({ jobId: 'abcd1234', table: { schema: 's', name: 't' }, oldTable: 't_ssold_abcd1234', alter: 'RENAME COLUMN a TO b', renamedColumns: [['a', 'b']], after: 'bin.000001:4', windowSeconds: 60 });

const support = (seconds: number | null): RevertSupport => ({ logRetentionSeconds: async () => seconds }) as unknown as RevertSupport;

const column = (from: string, to: string, nullable = { from: false, to: false }): TypedColumn => ({
  source: 'c', target: 'c',
  from: { name: 'c', type: from, nullable: nullable.from, generated: false, charset: 'utf8mb4' },
  to: { name: 'c', type: to, nullable: nullable.to, generated: false, charset: 'utf8mb4' },
});

describe('revert point', () => {
  it('closes its window after windowSeconds, and says how long ago', () => {
    const swapped = Date.parse(point.swappedAt);
    expect(windowClosed(point, swapped + 60_000)).toBeNull();
    expect(windowClosed(point, swapped + 90_000)).toMatch(/closed 30 s ago \(the ALTER swapped 90 s ago; --revert-window was 60 s\)/);
  });

  it('renames columns back, and gives every run of one revert the same id', () => {
    expect([...reverseAnalysis(point).renamedColumns]).toEqual([['b', 'a']]);
    expect(revertJobId(point.jobId)).toBe(revertJobId('abcd1234'));
    expect(revertJobId(point.jobId)).not.toBe(revertJobId(revertJobId(point.jobId)));
    expect(revertJobId(point.jobId)).toMatch(/^[0-9a-f]{8}$/);
  });

  it('warns when the server purges its log before the window ends', async () => {
    for (const kept of [null, 7 * 86400]) {
      const outcome = await retentionOutcome(support(kept), 86400);
      expect(outcome.ok).toBe(true);
      expect(outcome).not.toHaveProperty('warning');
    }
    const short = await retentionOutcome(support(3600), 86400);
    expect(short).toMatchObject({ ok: true, warning: true });
    expect(short.message).toMatch(/purges its change log after 60 min, before the 24 h revert window ends/);
  });
});

describe("the stream guard and a revert's swap", () => {
  const ref = { schema: 'test', name: 't' };
  it("takes the old table's return for the job's own swap, and anything else on the table for someone else's DDL", () => {
    expect(judgeQuery('RENAME TABLE `test`.`t` TO `test`.`t_ssold_1a2b`, `test`.`t_ssold_9f8e` TO `test`.`t`', 'test', ref).t).toBe('swap');
    expect(judgeQuery('RENAME TABLE `test`.`t` TO `test`.`t_ssold_1a2b`, `test`.`t_ssnew` TO `test`.`t`', 'test', ref).t).toBe('swap');
    expect(judgeQuery('RENAME TABLE `test`.`t` TO `test`.`t_ssold_1a2b`, `test`.`other` TO `test`.`t`', 'test', ref).t).toBe('fail');
  });
});

describe('what the old column cannot hold (MySQL)', () => {
  it('reads integer ranges as the server spells the types', () => {
    expect(integerRange('int(11)')).toEqual([-(2n ** 31n), 2n ** 31n - 1n]);
    expect(integerRange('tinyint(3) unsigned')).toEqual([0n, 255n]);
    expect(integerRange('varchar(3)')).toBeNull();
  });

  it('tests by range, by NULL, by a byte-exact round trip, or says no test is known', () => {
    expect(misfit(column('bigint(20)', 'int(11)'), '`c`')).toEqual({ sql: '`c` NOT BETWEEN -2147483648 AND 2147483647' });
    expect(misfit(column('int(11)', 'bigint(20)'), '`c`')).toEqual({ sql: null });
    expect(misfit(column('int(11)', 'int(11)', { from: true, to: false }), '`c`')).toEqual({ sql: '`c` IS NULL' });
    expect(misfit(column('varchar(100)', 'varchar(20)'), '`c`')).toEqual({
      sql: 'NOT (BINARY CONVERT(CAST(`c` AS CHAR(20) CHARACTER SET utf8mb4) USING utf8mb4) <=> BINARY CONVERT(`c` USING utf8mb4))',
    });
    expect(misfit(column('decimal(12,2)', 'int(11)'), '`c`')).toMatchObject({ sql: expect.stringMatching(/^`c` NOT BETWEEN .* OR NOT \(BINARY CAST\(`c` AS SIGNED\) <=> BINARY `c`\)$/) });
    expect(misfit(column('double', 'float'), '`c`')).toEqual({ unknown: expect.stringMatching(/^c \(double back to float\): no conversion/) });
  });
});

describe('PostgreSQL: room for the way back (slotShortfall)', () => {
  it('a revertible ALTER needs two free slots, a revert one; short of them it says how many are free and the fix', () => {
    expect(slotShortfall(10, 8, 2)).toBeNull();
    expect(slotShortfall(10, 9, 1)).toBeNull();
    expect(slotShortfall(10, 9, 2)).toMatch(/needs two replication slots \(its own stream, and the way back kept for the revert window\), and 1 of 10 \(max_replication_slots\) is free\. .*run without --revertible/);
    expect(slotShortfall(4, 4, 1)).toMatch(/needs a replication slot for the way back, and 0 of 4 .* are free/);
  });

  it('capacityOutcome fails the revert-capacity check with the dialect\'s reason, and passes where there is nothing to hold', async () => {
    const short = { wayBackCapacityProblem: async (also: boolean) => (also ? 'no room' : null) } as unknown as RevertSupport;
    expect(await capacityOutcome(short, true)).toMatchObject({ check: 'revert-capacity', ok: false, message: 'no room' });
    expect(await capacityOutcome(short, false)).toMatchObject({ check: 'revert-capacity', ok: true });
    expect(await capacityOutcome({} as RevertSupport, true)).toMatchObject({ ok: true });
  });
});
