// One `shadowshift alter` process of a fault case, as an operator runs it: control
// socket, hooks, flag files, --json. Gates are hooks that stop the job at a lifecycle
// event until the test lets it go (after it set up what holds the next phase open).

import { chmodSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startCli, type CliRun } from '../cli.js';
import { sendControlCommand } from '../../../src/control/control-client.js';
import type { JobStatus } from '../../../src/engine/job-state.js';

export type GateEvent = 'on-copy-complete' | 'on-before-cutover';

export interface JobFiles {
  dir: string;
  socket: string;
  hooks: string;
  postponeFlag: string;
}

const GATE_SCRIPT = `#!/bin/sh
# A gate: when armed, say the job is here and wait until the test lets it go (once).
g="$(dirname "$0")/../gates"
e="$SHADOWSHIFT_EVENT"
[ -e "$g/arm-$e" ] || exit 0
rm -f "$g/arm-$e"
touch "$g/at-$e"
while [ ! -e "$g/go-$e" ]; do sleep 0.02; done
exit 0
`;

export function jobFiles(dir: string): JobFiles {
  const hooks = join(dir, 'hooks');
  mkdirSync(hooks);
  mkdirSync(join(dir, 'gates'));
  for (const event of ['on-copy-complete', 'on-before-cutover'] satisfies GateEvent[]) {
    writeFileSync(join(hooks, event), GATE_SCRIPT);
    chmodSync(join(hooks, event), 0o755);
  }
  return { dir, socket: join(dir, 'job.sock'), hooks, postponeFlag: join(dir, 'postpone') };
}

export const gate = {
  arm: (f: JobFiles, e: GateEvent) => writeFileSync(join(f.dir, 'gates', `arm-${e}`), ''),
  reached: (f: JobFiles, e: GateEvent) => existsSync(join(f.dir, 'gates', `at-${e}`)),
  open: (f: JobFiles, e: GateEvent) => writeFileSync(join(f.dir, 'gates', `go-${e}`), ''),
};

export class JobRun {
  readonly done: Promise<CliRun>;
  private exited: CliRun | null = null;
  lastStatus: JobStatus | null = null;
  readonly child;
  private readonly stderrSoFar: () => string;

  constructor(
    readonly files: JobFiles,
    url: string,
    args: string[],
  ) {
    rmSync(files.socket, { force: true });
    const run = startCli([
      'alter', '--url', url, '--table', 'orders', ...args, '--execute', '--json',
      '--control-socket', files.socket, '--hooks-dir', files.hooks, '--postpone-cutover-flag-file', files.postponeFlag, '--status-interval', '600',
    ]);
    this.child = run.child;
    this.stderrSoFar = run.stderrSoFar;
    this.done = run.done.then((r) => (this.exited = r));
  }

  get hasExited(): boolean {
    return this.exited !== null;
  }

  log(): string {
    return this.exited?.stderr ?? this.stderrSoFar();
  }

  /** The job's status over its control socket (null while the socket is not up or the job is gone). */
  async status(): Promise<JobStatus | null> {
    if (this.exited || !existsSync(this.files.socket)) return null;
    const reply = await sendControlCommand(this.files.socket, { command: 'status' }, 5000).catch(() => null);
    if (reply?.ok) this.lastStatus = reply.status;
    return reply?.ok ? reply.status : null;
  }

  async command(command: 'abort' | 'cutover'): Promise<void> {
    const reply = await sendControlCommand(this.files.socket, { command });
    if (!reply.ok) throw new Error(`ctl ${command}: ${reply.error}`);
  }

  /** Waits for a condition; fails at once, with the log, when the job exits first. */
  async waitFor(what: string, condition: (s: JobStatus) => boolean | Promise<boolean>, timeoutMs = 90_000): Promise<JobStatus> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.exited) throw new Error(`the job exited (${this.exited.code}) before ${what}:\n${this.exited.stderr.slice(-4000)}`);
      const s = await this.status();
      if (s && (await condition(s))) return s;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (last status ${JSON.stringify(this.lastStatus)}):\n${this.log().slice(-4000)}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }
}
