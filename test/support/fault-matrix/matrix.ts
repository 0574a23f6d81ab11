// The fault matrix of one dialect as vitest cases: {fault} x {phase}, sequential, on a
// server the test file owns (a case may restart it). A case that cannot pass for a
// reason outside this repository is listed in `knownFailures` with the reason and runs
// as it.fails: it is never skipped.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Dialect } from '../db.js';
import { FAULTS } from './faults.js';
import { PHASES } from './phases.js';
import { startOwnedServer, type OwnedServer } from './owned-server.js';
import { runCase, type MatrixOptions } from './run-case.js';

/** `fault/phase` -> why the case fails (it then runs as it.fails). */
export type KnownFailures = Record<string, string>;

export function defineFaultMatrix(dialect: Dialect, options: MatrixOptions, knownFailures: KnownFailures = {}): void {
  describe(`${dialect}: fault matrix`, () => {
    let server: OwnedServer;
    beforeAll(async () => {
      server = await startOwnedServer(dialect);
    }, 120_000);
    afterAll(async () => {
      await server?.stop();
    }, 120_000);

    for (const fault of FAULTS) {
      for (const phase of PHASES.filter((p) => p.dialects.includes(dialect))) {
        const key = `${fault.name}/${phase.name}`;
        const test = knownFailures[key] ? it.fails : it;
        test(`${fault.name} while ${phase.name}`, async () => {
          const verdict = await runCase(server, phase, fault, options);
          console.log(`[fault-matrix ${dialect}] ${key}: ${verdict.outcome} in ${verdict.seconds.toFixed(1)} s${verdict.problems.length ? ' FAILED' : ''}`);
          expect(verdict.problems, verdict.problems.join('\n')).toEqual([]);
        }, 180_000);
      }
    }
  });
}
