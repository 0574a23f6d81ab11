// Starts the servers the suite talks to, once per run, and hands their URLs to
// every test file through vitest's provide/inject.
//
//   SHADOWSHIFT_TEST_MYSQL_URL / SHADOWSHIFT_TEST_PG_URL  use these servers instead
//   SHADOWSHIFT_TEST_MYSQL_IMAGE=mysql:8.0                 run MySQL in a container (testcontainers; needs Docker)
//   SHADOWSHIFT_TEST_PG_MAJOR=16                           PostgreSQL major of the test servers (servers.ts)
// A project's own env (vitest.config.ts: the second PostgreSQL major) wins over the
// process's; SHADOWSHIFT_TEST_DIALECTS=postgres starts no MySQL server.

import type { TestProject } from 'vitest/node';
import { startMariaDb, startPostgres, type RunningServer } from './servers.js';
import { startMysqlContainer } from './containers.js';

declare module 'vitest' {
  export interface ProvidedContext {
    mysqlAdminUrl: string;
    pgAdminUrl: string;
    /** The PostgreSQL major of the started server, or null for a server given by URL. */
    pgMajor: number | null;
  }
}

const running: Array<{ stop(): Promise<void> }> = [];

function withoutDatabase(url: string): string {
  const u = new URL(url);
  u.pathname = '/';
  return u.toString();
}

export async function setup(project: TestProject): Promise<void> {
  const env = { ...process.env, ...(project.config.env as Record<string, string> | undefined) };
  const dialects = env.SHADOWSHIFT_TEST_DIALECTS?.split(',').map((d) => d.trim()).filter(Boolean);
  const wantMysql = !dialects?.length || dialects.includes('mysql');
  let pgMajor: number | null = null;
  const [mysqlUrl, pgUrl] = await Promise.all([
    (async () => {
      if (!wantMysql) return '';
      if (process.env.SHADOWSHIFT_TEST_MYSQL_URL) return process.env.SHADOWSHIFT_TEST_MYSQL_URL;
      const server: RunningServer | { url: string; stop(): Promise<void> } = process.env.SHADOWSHIFT_TEST_MYSQL_IMAGE
        ? await startMysqlContainer(process.env.SHADOWSHIFT_TEST_MYSQL_IMAGE)
        : await startMariaDb();
      running.push(server);
      return server.url;
    })(),
    (async () => {
      if (process.env.SHADOWSHIFT_TEST_PG_URL) return process.env.SHADOWSHIFT_TEST_PG_URL;
      const major = env.SHADOWSHIFT_TEST_PG_MAJOR ? Number(env.SHADOWSHIFT_TEST_PG_MAJOR) : null;
      const server = await startPostgres({ major });
      running.push(server);
      pgMajor = server.major;
      process.stderr.write(`[${project.name || 'tests'}] PostgreSQL ${server.major} from ${server.binaries}\n`);
      return server.url;
    })(),
  ]);
  project.provide('mysqlAdminUrl', mysqlUrl ? withoutDatabase(mysqlUrl) : '');
  project.provide('pgAdminUrl', withoutDatabase(pgUrl));
  project.provide('pgMajor', pgMajor);
}

export async function teardown(): Promise<void> {
  await Promise.all(running.map((s) => s.stop()));
}
