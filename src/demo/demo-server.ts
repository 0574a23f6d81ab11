// The database the demo runs against: an embedded PostgreSQL from npm (default)
// or the system's MariaDB server, each started for the demo alone.

import type { DemoEngine } from './demo-db.js';
import { startEmbeddedPostgres } from './embedded-postgres.js';
import { startSystemMariaDb } from './system-mariadb.js';

export interface DemoServer {
  engine: DemoEngine;
  /** e.g. "PostgreSQL 15.18 (embedded-postgres 15.18.0-beta.17, running as nobody)". */
  description: string;
  /** URL of the demo's database (`shop`), superuser, no password. */
  url: string;
  /** The server's temp dir (data, socket, log). */
  dir: string;
  pid: number;
  /** Stops the server and removes its temp dir. */
  stop(): Promise<void>;
  /** --keep: leaves the server running after the demo exits; returns the shell command that stops it and removes its files. */
  keep(): string;
}

export interface ServerLog {
  info(o: object, msg: string): void;
}

export function startDemoServer(engine: DemoEngine, log: ServerLog): Promise<DemoServer> {
  return engine === 'mariadb' ? startSystemMariaDb(log) : startEmbeddedPostgres(log);
}
