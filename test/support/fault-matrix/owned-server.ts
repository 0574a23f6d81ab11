// A database server owned by one test file, started with servers.ts's helpers, that the
// file may restart (the "restart the database server" fault). The shared servers other
// files use are never restarted.
//
// A restart stops the server the way an operator's restart does (MariaDB: SIGTERM, a
// normal shutdown that ends every session; PostgreSQL: SIGINT, a fast shutdown) and
// starts it again with the exact command line it ran with, on the same port and data
// directory: MariaDB's from /proc/<pid>/cmdline, PostgreSQL's from postmaster.opts.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, openSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { startMariaDb, startPostgres, type RunningServer } from '../servers.js';
import { openDb, quoteIdent, withDb, type Dialect } from '../db.js';

export interface OwnedServer {
  dialect: Dialect;
  /** A superuser URL of `database`. */
  adminUrl(database: string): string;
  /** The URL the job connects with (MySQL: a user only jobs use, so their sessions can be told apart). */
  jobUrl(database: string): string;
  /** MySQL: the user the job connects as. */
  jobUser: string;
  createDatabase(prefix: string): Promise<string>;
  restart(): Promise<void>;
  stop(): Promise<void>;
}

const JOB_USER = 'ssjob';

export async function startOwnedServer(dialect: Dialect): Promise<OwnedServer> {
  const server = dialect === 'mysql' ? await startMariaDb() : await startPostgres();
  let restarted: ChildProcess | null = null;
  if (dialect === 'mysql') {
    await withDb(server.adminUrl(''), async (db) => {
      await db.exec(`CREATE USER '${JOB_USER}'@'%' IDENTIFIED BY 'pw'`);
      await db.exec(`GRANT ALL PRIVILEGES ON *.* TO '${JOB_USER}'@'%'`);
    });
  }
  const withUser = (url: string) => {
    const u = new URL(url);
    u.username = JOB_USER;
    u.password = 'pw';
    return u.toString();
  };
  return {
    dialect,
    jobUser: JOB_USER,
    adminUrl: (database) => server.adminUrl(database),
    jobUrl: (database) => (dialect === 'mysql' ? withUser(server.adminUrl(database)) : server.adminUrl(database)),
    async createDatabase(prefix) {
      const name = `${prefix}_${Date.now().toString(36)}_${randomBytes(2).toString('hex')}`;
      await withDb(server.adminUrl(dialect === 'mysql' ? '' : 'postgres'), (db) => db.exec(`CREATE DATABASE ${quoteIdent(dialect, name)}`));
      return name;
    },
    async restart() {
      const pid = serverPid(dialect, server);
      const command = dialect === 'mysql' ? mariadbCommand(pid) : postgresCommand(server);
      await signalAndWait(pid, dialect === 'mysql' ? 'SIGTERM' : 'SIGINT');
      restarted = spawnServer(command, server);
      await waitReady(server, restarted);
    },
    async stop() {
      if (restarted && restarted.exitCode === null && restarted.signalCode === null) {
        const proc = restarted;
        await new Promise<void>((res) => {
          const timer = setTimeout(() => proc.kill('SIGKILL'), 15_000);
          proc.once('exit', () => (clearTimeout(timer), res()));
          proc.kill(dialect === 'mysql' ? 'SIGTERM' : 'SIGINT');
        });
      }
      // The first process has exited (after a restart): this only removes the temp dir.
      await server.stop();
    },
  };
}

function serverPid(dialect: Dialect, server: RunningServer): number {
  const file = dialect === 'mysql' ? join(dirname(server.dataDir), 'mysqld.pid') : join(server.dataDir, 'postmaster.pid');
  return Number(readFileSync(file, 'utf8').split('\n')[0]!.trim());
}

function mariadbCommand(pid: number): string[] {
  return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((a) => a !== '');
}

/** postmaster.opts: the binary and every argument, each in double quotes. */
function postgresCommand(server: RunningServer): string[] {
  const text = readFileSync(join(server.dataDir, 'postmaster.opts'), 'utf8').trim();
  const [bin, ...rest] = text.split(/\s+(?=")/);
  return [bin!, ...rest.map((a) => a.replace(/^"|"$/g, ''))];
}

async function signalAndWait(pid: number, signal: NodeJS.Signals): Promise<void> {
  process.kill(pid, signal);
  const deadline = Date.now() + 60_000;
  // The server is a child of this process: node reaps it, and /proc/<pid> goes.
  while (existsSync(`/proc/${pid}`)) {
    if (Date.now() > deadline) throw new Error(`server ${pid} did not stop within 60 s of ${signal}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function spawnServer(command: string[], server: RunningServer): ChildProcess {
  const [cmd, ...args] = command;
  if (server.adminUrl('').startsWith('mysql:')) return spawn(cmd!, args, { stdio: 'ignore' });
  const out = openSync(join(dirname(server.dataDir), 'postgres.log'), 'a');
  // As servers.ts does: PostgreSQL refuses to run as root.
  const wrapped = process.getuid?.() === 0 ? ['setpriv', ['--reuid=postgres', '--regid=postgres', '--init-groups', cmd!, ...args]] as const : [cmd!, args] as const;
  return spawn(wrapped[0], [...wrapped[1]], { stdio: ['ignore', out, out] });
}

async function waitReady(server: RunningServer, proc: ChildProcess): Promise<void> {
  const url = server.adminUrl(server.adminUrl('').startsWith('mysql:') ? '' : 'postgres');
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`the restarted server exited with ${proc.exitCode}`);
    try {
      const db = await openDb(url);
      await db.query('SELECT 1');
      await db.close();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`the restarted server did not accept connections within 60 s: ${(err as Error).message}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
