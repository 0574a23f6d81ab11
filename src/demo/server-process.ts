// What the demo's throwaway database servers share: a temp dir, a free port, an
// unprivileged OS user when we are root, and a server process in a process group
// of its own that is stopped on every exit path.
//
// The server runs in its own session (detached): Ctrl-C on the terminal reaches
// only the demo, which then stops the job, the workload and the server in that
// order, instead of the server dying under a job that is still cleaning up.
// If the demo exits without that (a second Ctrl-C, process.exit, an uncaught
// error), a synchronous 'exit' hook stops the group and removes the temp dir.
// A process killed outright (SIGKILL, a signal without a handler) runs no hook:
// for that a watchdog, a small shell in a session of its own, polls its parent
// and kills the server's group (and removes the dir) once the parent is gone.

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface RunAs {
  uid: number;
  gid: number;
  name: string;
  /** A user the demo created because no unprivileged one existed; removed again at the end. */
  created: boolean;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no free port'))));
    });
  });
}

function idOf(name: string): { uid: number; gid: number } | null {
  try {
    const uid = Number(execFileSync('id', ['-u', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
    const gid = Number(execFileSync('id', ['-g', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
    return Number.isInteger(uid) && Number.isInteger(gid) && uid > 0 ? { uid, gid } : null;
  } catch {
    return null;
  }
}

/**
 * PostgreSQL refuses to run as root. As root, run it as an existing unprivileged
 * user (`nobody` exists almost everywhere); only when there is none, create one and
 * remove it at the end. Not root: null, run as ourselves.
 */
export function unprivilegedUser(): RunAs | null {
  if (process.getuid?.() !== 0) return null;
  for (const name of ['nobody', 'postgres']) {
    const ids = idOf(name);
    if (ids) return { ...ids, name, created: false };
  }
  const name = `ssdemo${process.pid}`;
  execFileSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', name], { stdio: 'ignore' });
  const ids = idOf(name);
  if (!ids) throw new Error(`created the OS user ${name} but cannot look it up`);
  const runAs = { ...ids, name, created: true };
  onExit(() => removeUser(runAs));
  return runAs;
}

export function removeUser(runAs: RunAs | null): void {
  if (!runAs?.created) return;
  runAs.created = false;
  try {
    execFileSync('userdel', [runAs.name], { stdio: 'ignore' });
  } catch {
    /* already gone */
  }
}

/** A temp dir the server's user owns (it writes its data, socket and log there). */
export function ownedTempDir(prefix: string, runAs: RunAs | null): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  if (runAs) chownSync(dir, runAs.uid, runAs.gid);
  return dir;
}

// ---------------------------------------------------------------------------
// Exit hooks: synchronous, run once, on any exit of the process.

const exitHooks = new Set<() => void>();
let hooked = false;

/** Runs `hook` when the process exits, unless the returned function is called first. */
export function onExit(hook: () => void): () => void {
  if (!hooked) {
    hooked = true;
    process.on('exit', () => {
      for (const h of [...exitHooks].reverse()) {
        try {
          h();
        } catch {
          /* best effort: the process is exiting */
        }
      }
    });
  }
  exitHooks.add(hook);
  return () => exitHooks.delete(hook);
}

// ---------------------------------------------------------------------------
// The server process

/** Alive and not a zombie (a child we can no longer reap during 'exit' stays a zombie). */
function running(pid: number): boolean {
  if (existsSync('/proc/self/stat')) {
    try {
      return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
    } catch {
      return false;
    }
  }
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    /* the group is gone */
  }
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

export interface ServerProcess {
  readonly pid: number;
  /** Stops the whole process group: `signal`, then SIGKILL after `timeoutMs`. */
  stop(): Promise<void>;
  /** Lets the server outlive the demo (--keep): no exit hook, no reference from our event loop. */
  release(): void;
  readonly exited: boolean;
}

export interface SpawnServerOptions {
  command: string;
  args: string[];
  runAs: RunAs | null;
  cwd: string;
  /** File that receives the server's stdout and stderr. */
  logFd: number;
  /** The server's shutdown signal when the demo ends normally. */
  stopSignal: NodeJS.Signals;
  /** Sent from the exit hook, where we cannot wait long (PostgreSQL: SIGQUIT). */
  urgentSignal: NodeJS.Signals;
  env?: NodeJS.ProcessEnv;
  /**
   * Also stop the server when this process dies without running its exit hooks
   * (SIGKILL, an unhandled signal): a watchdog kills the group with SIGKILL and
   * removes `watchdog.removeDir`, if given. The tests' servers use it.
   */
  watchdog?: { removeDir?: string };
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * A detached shell that waits for this process to end (or turn zombie), then kills
 * the process group `pgid` and removes `removeDir`. Polls once a second; costs nothing
 * measurable. Killed by the caller when the server stops normally.
 */
export function startWatchdog(pgid: number, removeDir?: string): ChildProcess {
  const parent = process.pid;
  const script = [
    `alive() { kill -0 ${parent} 2>/dev/null && ! grep -qs ') Z' /proc/${parent}/stat; }`,
    'trap "" INT HUP',
    'while alive; do sleep 1; done',
    `kill -KILL -${pgid} 2>/dev/null`,
    removeDir ? `n=0; while kill -0 -${pgid} 2>/dev/null && [ $n -lt 50 ]; do sleep 0.1; n=$((n+1)); done; rm -rf ${shellQuote(removeDir)}` : 'true',
  ].join('\n');
  const w = spawn('/bin/sh', ['-c', script], { detached: true, stdio: 'ignore' });
  w.on('error', () => undefined);
  w.unref();
  return w;
}

export function spawnServer(o: SpawnServerOptions): ServerProcess {
  const child: ChildProcess = spawn(o.command, o.args, {
    cwd: o.cwd,
    detached: true,
    stdio: ['ignore', o.logFd, o.logFd],
    env: o.env ?? { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C', LC_ALL: 'C' },
    ...(o.runAs ? { uid: o.runAs.uid, gid: o.runAs.gid } : {}),
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not start ${o.command}`);
  const watchdog = o.watchdog ? startWatchdog(pid, o.watchdog.removeDir) : null;
  const stopWatchdog = () => {
    if (watchdog && watchdog.exitCode === null && watchdog.signalCode === null) watchdog.kill('SIGKILL');
  };
  let exited = false;
  const exitedPromise = new Promise<void>((resolve) => {
    child.once('exit', () => {
      exited = true;
      resolve();
    });
    child.once('error', () => {
      exited = true;
      resolve();
    });
  });
  const urgentStop = () => {
    if (exited) return;
    killGroup(pid, o.urgentSignal);
    const deadline = Date.now() + 3000;
    while (running(pid) && Date.now() < deadline) sleepSync(20);
    killGroup(pid, 'SIGKILL');
    stopWatchdog();
  };
  const unhook = onExit(urgentStop);
  return {
    pid,
    get exited() {
      return exited;
    },
    async stop() {
      unhook();
      if (!exited) {
        killGroup(pid, o.stopSignal);
        const timer = setTimeout(() => killGroup(pid, 'SIGKILL'), 15_000);
        await exitedPromise;
        clearTimeout(timer);
      }
      // Children the server left (none normally) go with the group.
      killGroup(pid, 'SIGKILL');
      stopWatchdog();
    },
    release() {
      unhook();
      stopWatchdog();
      child.unref();
    },
  };
}

/** Waits until `check` passes, the process dies, or the time is up (then says why, with the log's tail). */
export async function waitReady(check: () => Promise<boolean>, what: string, server: ServerProcess, logFile: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && !server.exited) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  const tail = existsSync(logFile) ? readFileSync(logFile, 'utf8').slice(-2000) : '';
  throw new Error(`${what} did not become ready${server.exited ? ' (it exited)' : ` within ${timeoutMs / 1000}s`}; its log ends:\n${tail}`);
}

/** Removes a temp dir now and, should the process exit first, at exit. */
export function removeLater(dir: string): { remove(): void; keep(): void } {
  const remove = () => rmSync(dir, { recursive: true, force: true });
  const unhook = onExit(remove);
  return {
    remove() {
      unhook();
      remove();
    },
    keep() {
      unhook();
    },
  };
}

/**
 * stop() and keep() of a demo server: stop ends the process group, removes its dir
 * and the OS user made for it; keep lets all three outlive the demo and returns the
 * shell command that ends them (`stopCommand` is the server's own shutdown signal).
 */
export function serverLifetime(server: ServerProcess, tidy: { remove(): void; keep(): void }, runAs: RunAs | null, dir: string, stopCommand: string): { stop(): Promise<void>; keep(): string } {
  return {
    async stop() {
      await server.stop();
      tidy.remove();
      removeUser(runAs);
    },
    keep() {
      server.release();
      tidy.keep();
      const user = runAs?.created ? `; userdel ${runAs.name}` : '';
      if (runAs) runAs.created = false;
      return `${stopCommand} ${server.pid}; while kill -0 ${server.pid} 2>/dev/null; do sleep 0.2; done; rm -rf ${dir}${user}`;
    },
  };
}
