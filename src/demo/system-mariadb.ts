// A throwaway MariaDB for `demo --engine mariadb`, from the server installed on
// this machine: no npm package ships a MariaDB server. Started with the binary
// log settings the engine's preflight requires (ROW format, FULL row image and
// row metadata), on a free port, in a temp dir, as an unprivileged user when we
// are root.

import { execFile } from 'node:child_process';
import { closeSync, existsSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import mysql from 'mysql2/promise';
import { UsageError } from '../util/errors.js';
import type { DemoServer, ServerLog } from './demo-server.js';
import { freePort, ownedTempDir, removeLater, removeUser, serverLifetime, spawnServer, unprivilegedUser, waitReady, type ServerProcess } from './server-process.js';

const run = promisify(execFile);

function findBinary(names: string[]): string | null {
  for (const name of names) {
    for (const dir of [...(process.env.PATH ?? '').split(':').filter(Boolean), '/usr/sbin', '/usr/local/sbin', '/usr/bin']) {
      if (existsSync(join(dir, name))) return join(dir, name);
    }
  }
  return null;
}

export async function startSystemMariaDb(log: ServerLog): Promise<DemoServer> {
  const mariadbd = findBinary(['mariadbd']);
  const installDb = findBinary(['mariadb-install-db', 'mysql_install_db']);
  if (!mariadbd || !installDb) {
    throw new UsageError(
      `--engine mariadb needs MariaDB's server on this machine (${mariadbd ? 'mariadb-install-db' : 'mariadbd'} not found), and no npm package ships one. ` +
        'Install it with the system\'s package manager (Debian/Ubuntu: apt-get install mariadb-server; it need not be running), ' +
        'or leave out --engine to use the embedded PostgreSQL',
    );
  }
  const runAs = unprivilegedUser();
  const dir = ownedTempDir('shadowshift-demo-mariadb-', runAs);
  const tidy = removeLater(dir);
  let server: ServerProcess | null = null;
  try {
    const dataDir = join(dir, 'data');
    const logFile = join(dir, 'error.log');
    const asUser = runAs ? { uid: runAs.uid, gid: runAs.gid } : {};
    const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C', LC_ALL: 'C' };
    // --no-defaults first: the machine's my.cnf (a service's datadir, socket, port) must not apply.
    await run(installDb, ['--no-defaults', `--datadir=${dataDir}`, '--auth-root-authentication-method=normal', '--skip-test-db', `--tmpdir=${dir}`], { cwd: dir, env, ...asUser }).catch(
      (err: Error & { stderr?: string }) => {
        throw new Error(`${installDb} failed: ${err.stderr?.trim() || err.message}`);
      },
    );
    const port = await freePort();
    const logFd = openSync(logFile, 'a');
    server = spawnServer({
      command: mariadbd,
      args: [
        '--no-defaults',
        `--datadir=${dataDir}`,
        `--socket=${join(dir, 'mysqld.sock')}`,
        `--pid-file=${join(dir, 'mysqld.pid')}`,
        `--port=${port}`,
        '--bind-address=127.0.0.1',
        `--tmpdir=${dir}`,
        // What the engine's preflight checks: the binary log, row based, full images and metadata.
        '--server-id=1',
        '--log-bin=mysql-bin',
        '--binlog-format=ROW',
        '--binlog-row-image=FULL',
        '--binlog-row-metadata=FULL',
        '--character-set-server=utf8mb4',
        '--collation-server=utf8mb4_unicode_ci',
        // A throwaway database: no durability, as on the test servers.
        '--innodb-flush-log-at-trx-commit=2',
        '--sync-binlog=0',
        '--innodb-buffer-pool-size=256M',
        // Shut down without flushing: the data dir is deleted right after (kept with --keep, it recovers on the next start).
        '--innodb-fast-shutdown=2',
        // Lets the cut-over see who holds the table's metadata lock (shipped with MariaDB, off by default).
        '--plugin-load-add=metadata_lock_info',
        `--log-error=${logFile}`,
      ],
      runAs,
      cwd: dir,
      logFd,
      env,
      stopSignal: 'SIGTERM',
      urgentSignal: 'SIGKILL',
    });
    closeSync(logFd);
    const adminUrl = `mysql://root@127.0.0.1:${port}/`;
    await waitReady(async () => {
      const c = await mysql.createConnection({ uri: adminUrl });
      await c.end();
      return true;
    }, 'MariaDB', server, logFile);
    const c = await mysql.createConnection({ uri: adminUrl });
    const [rows] = await c.query('SELECT VERSION() AS v');
    const version = String((rows as Array<{ v: string }>)[0]?.v);
    await c.query('CREATE DATABASE shop');
    await c.end();
    log.info({ port, dir, user: runAs?.name ?? null }, `MariaDB ${version} is up`);
    const started = server;
    return {
      engine: 'mariadb',
      description: `MariaDB ${version} (${mariadbd}${runAs ? `, running as ${runAs.name}` : ''})`,
      url: `mysql://root@127.0.0.1:${port}/shop`,
      dir,
      pid: started.pid,
      ...serverLifetime(started, tidy, runAs, dir, 'kill'),
    };
  } catch (err) {
    await server?.stop();
    tidy.remove();
    removeUser(runAs);
    throw err;
  }
}

