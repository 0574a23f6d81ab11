// Throwaway database servers for tests and benchmarks: started from the local
// binaries with the settings the engine needs, on free ports, in temp dirs.
// See shared FIELD-NOTES for why each flag is here.

import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync, readFileSync, writeFileSync, copyFileSync, chmodSync, chownSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface RunningServer {
  url: string;
  /** Root/superuser URL without a database path. */
  adminUrl: (database: string) => string;
  port: number;
  dataDir: string;
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

async function waitFor(check: () => Promise<boolean>, what: string, timeoutMs: number, proc: ChildProcess, logFile?: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) break;
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  const log = logFile && existsSync(logFile) ? readFileSync(logFile, 'utf8').slice(-3000) : '';
  throw new Error(`${what} did not become ready (exit code ${proc.exitCode})\n${log}`);
}

function stopProcess(proc: ChildProcess, signal: NodeJS.Signals, timeoutMs = 15000): Promise<void> {
  return new Promise((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
    }, timeoutMs);
    proc.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    proc.kill(signal);
  });
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
  execFileSync(installDb, ['--no-defaults', `--datadir=${dataDir}`, '--auth-root-authentication-method=normal', '--skip-test-db', ...(asRoot ? ['--user=root'] : [])], { stdio: 'pipe' });
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
  const proc = spawn(mariadbd, args, { stdio: 'ignore' });
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
  );
  const adminUrl = (db: string) => `mysql://root@127.0.0.1:${port}/${db}`;
  return {
    url: adminUrl('shadowshift_test'),
    adminUrl,
    port,
    dataDir,
    async stop() {
      await stopProcess(proc, 'SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function pgBinDir(): string {
  const fromPath = findBinary(['pg_config']);
  if (fromPath) {
    try {
      const dir = execFileSync(fromPath, ['--bindir'], { encoding: 'utf8' }).trim();
      if (existsSync(join(dir, 'initdb'))) return dir;
    } catch {
      /* fall through */
    }
  }
  for (const v of ['17', '16', '15', '14']) {
    const dir = `/usr/lib/postgresql/${v}/bin`;
    if (existsSync(join(dir, 'initdb'))) return dir;
  }
  throw new Error('PostgreSQL server binaries (initdb, postgres) not found: install postgresql or set SHADOWSHIFT_TEST_PG_URL');
}

export interface PostgresOptions {
  extraArgs?: string[];
  /**
   * Make this server a streaming hot standby of the server on this local port:
   * its data directory comes from `pg_basebackup -R` instead of initdb.
   */
  standbyOfPort?: number;
  /**
   * Serve TLS with this certificate and key (PEM files, copied into the data directory
   * with the owner and mode PostgreSQL demands). TCP connections without TLS are then
   * refused, replication connections included; the Unix socket stays open. Not for standbys.
   */
  tls?: { certFile: string; keyFile: string };
}

export async function startPostgres(options: PostgresOptions = {}): Promise<RunningServer> {
  const bin = pgBinDir();
  const dir = mkdtempSync(join(tmpdir(), 'shadowshift-pg-'));
  const dataDir = join(dir, 'data');
  const sockDir = join(dir, 'sock');
  mkdirSync(sockDir);
  const logFile = join(dir, 'postgres.log');
  // initdb and postgres refuse to run as root: drop to the postgres OS user.
  let wrap: (cmd: string, args: string[]) => [string, string[]] = (cmd, args) => [cmd, args];
  let owner: { uid: number; gid: number } | null = null;
  if (process.getuid?.() === 0) {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    owner = { uid, gid };
    chmodSync(dir, 0o755);
    chownSync(dir, uid, gid);
    chownSync(sockDir, uid, gid);
    wrap = (cmd, args) => ['setpriv', ['--reuid=postgres', '--regid=postgres', '--init-groups', cmd, ...args]];
  }
  const [initCmd, initArgs] =
    options.standbyOfPort === undefined
      ? wrap(join(bin, 'initdb'), ['-D', dataDir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C'])
      : wrap(join(bin, 'pg_basebackup'), ['-h', '127.0.0.1', '-p', String(options.standbyOfPort), '-U', 'postgres', '-D', dataDir, '-R', '-X', 'stream', '-c', 'fast']);
  execFileSync(initCmd, initArgs, { stdio: 'pipe' });
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
  const [cmd, args] = wrap(join(bin, 'postgres'), [
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
  ]);
  const { openSync } = await import('node:fs');
  const out = openSync(logFile, 'a');
  const proc = spawn(cmd, args, { stdio: ['ignore', out, out] });
  const pg = (await import('pg')).default;
  await waitFor(
    async () => {
      const c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres', ssl: options.tls ? { rejectUnauthorized: false } : undefined });
      await c.connect();
      await c.end();
      return true;
    },
    'PostgreSQL',
    30000,
    proc,
    logFile,
  );
  const adminUrl = (db: string) => `postgres://postgres@127.0.0.1:${port}/${db}`;
  return {
    url: adminUrl('postgres'),
    adminUrl,
    port,
    dataDir,
    async stop() {
      await stopProcess(proc, 'SIGINT');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
