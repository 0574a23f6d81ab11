// The replica-lag reason ends up in logs, status and metrics labels: it names the
// replica without its password; a failed read leaves no stale lag behind.

import { describe, expect, it } from 'vitest';
import { ReplicaLagSignal } from '../../src/control/throttle-signals.js';
import type { LoadProbes } from '../../src/dialects/dialect.js';

function probes(lag: () => number): LoadProbes {
  return {
    readStatus: async () => ({}),
    throttleQueryValue: async () => 0,
    writeHeartbeat: async () => undefined,
    replicaLagSeconds: async () => lag(),
    streamRetainedBytes: async () => null,
    close: async () => undefined,
  };
}

describe('ReplicaLagSignal', () => {
  it('names the replica without its password', async () => {
    const signal = new ReplicaLagSignal(probes(() => 5), ['mysql://ops:s3cr3t-pw@replica1:3306/app'], { maxLagSeconds: 1, maxLoad: new Map() });
    const reason = await signal.check();
    expect(reason).toMatch(/replica mysql:\/\/ops:\*\*\*@replica1:3306\/app is 5\.00s behind \(max 1s\)/);
    expect(reason).not.toContain('s3cr3t-pw');
  });

  it('forgets the last lag when a read fails', async () => {
    let fail = false;
    const signal = new ReplicaLagSignal(probes(() => {
      if (fail) throw new Error('connection refused');
      return 0.2;
    }), ['postgres://r1/db'], { maxLagSeconds: 1, maxLoad: new Map() });
    expect(await signal.check()).toBeNull();
    expect(signal.lastLagSeconds).toBe(0.2);
    fail = true;
    await expect(signal.check()).rejects.toThrow(/connection refused/);
    expect(signal.lastLagSeconds).toBeNull();
  });
});
