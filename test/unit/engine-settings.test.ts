// One flag, one rule, one default, whichever command parses it: `alter` and
// `migrate` build their EngineSettings through the same parser and builder.

import { describe, it, expect } from 'vitest';
import yargs from 'yargs';
import { alterBuilder } from '../../src/cli/alter-command.js';
import { migrateBuilder } from '../../src/cli/migrate-command.js';
import { checkNumber, engineSettingsFromArgs } from '../../src/cli/engine-options.js';
import { alterJobOptions, defaultEngineSettings, engineSettings } from '../../src/engine/settings.js';

const parse = (builder: (y: ReturnType<typeof yargs>) => any, argv: string[]) =>
  builder(yargs()).strict().help(false).version(false).fail((msg: string, err: Error) => { throw err ?? new Error(msg); }).parseSync(argv);

describe('engine settings', () => {
  it('alter and migrate build the same settings from the same flags, and no flags give the defaults', () => {
    const flags = ['--no-checksum', '--kill-blockers-after', '1', '--chunk-size', '200', '--no-defer-indexes', '--copy-snapshot-max', '0', '--copy-row-locks', '--nice-ratio', '0.5', '--max-load', 'Threads_running=9'];
    const alter = engineSettingsFromArgs(parse(alterBuilder, ['--table', 't', '--alter', 'ADD x INT', ...flags]));
    const migrate = engineSettingsFromArgs(parse(migrateBuilder, flags));
    expect(migrate).toEqual(alter);
    expect(alter.checksum.enabled).toBe(false);
    expect(alter.cutover.killBlockersAfterMs).toBe(1000);
    expect(alter.copy).toEqual({ chunkTimeMs: 200, chunkSize: 200, deferIndexes: false, snapshotMaxSeconds: 0, rowLocks: true, threads: 1, niceRatio: 0.5 });
    expect(alter.throttle.maxLoad.get('Threads_running')).toBe(9);
    const none = engineSettingsFromArgs(parse(migrateBuilder, []));
    expect({ ...none, throttle: { ...none.throttle, signals: {} } }).toEqual(defaultEngineSettings());
  });

  it('the defaults are fresh each time: the live maxLoad map is never shared', () => {
    expect(engineSettings().throttle.maxLoad).not.toBe(engineSettings().throttle.maxLoad);
  });

  it('the job options carry every group', () => {
    const o = alterJobOptions(engineSettings({ cutover: { retries: 2 }, resume: { resumeIfSameAlter: true } }), { connection: {} as never, table: 't', alter: 'x', log: {} as never });
    expect(o).toMatchObject({ cutoverRetries: 2, cutoverLockTimeoutMs: 3000, checksum: true, copySnapshotMaxSeconds: 600, resumeIfSameAlter: true, checkpointIntervalSeconds: 5, maxLagSeconds: 1.5 });
  });

  it('--defer-indexes: unset lets the dialect weigh its concern; either flag decides', () => {
    const defer = (...flags: string[]) => engineSettingsFromArgs(parse(alterBuilder, ['--table', 't', '--alter', 'ADD x INT', ...flags])).copy.deferIndexes;
    expect([defer(), defer('--defer-indexes'), defer('--no-defer-indexes')]).toEqual([undefined, true, false]);
  });

  it('--kill-blockers-after may exceed one attempt\'s lock timeout (the wait adds up across attempts), not all of them together', () => {
    const args = (after: string, ...more: string[]) => parse(alterBuilder, ['--table', 't', '--alter', 'ADD x INT', '--cutover-lock-timeout', '2', '--kill-blockers-after', after, ...more]);
    expect(engineSettingsFromArgs(args('5')).cutover.killBlockersAfterMs).toBe(5000);
    expect(() => engineSettingsFromArgs(args('5', '--cutover-retries', '2'))).toThrow(/2s × 2 = 4s\), or it never fires/);
  });

  it('one rule set, each message naming the flag and what it must be', () => {
    expect(() => checkNumber('chunk-time', 0, 'positive')).toThrow('--chunk-time must be a positive number (got 0)');
    expect(() => checkNumber('lock-wait', -1, 'zero-or-more', 'seconds')).toThrow('--lock-wait must be 0 or more seconds (got -1)');
    expect(() => checkNumber('backfill-batch', 2.5, 'whole', 'rows')).toThrow('--backfill-batch must be a whole number of rows >= 1 (got 2.5)');
    expect(() => checkNumber('chunk-size', undefined, 'positive')).not.toThrow();
    expect(() => checkNumber('cutover-snapshot-wait', 0, 'zero-or-more', 'seconds')).not.toThrow();
  });
});
