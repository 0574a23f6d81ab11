// Starts the servers the suite talks to, once per run, and hands their URLs to
// every test file through vitest's provide/inject.
//
//   SHADOWSHIFT_TEST_MYSQL_URL / SHADOWSHIFT_TEST_PG_URL  use these servers instead
//   SHADOWSHIFT_TEST_MYSQL_IMAGE=mysql:8.0                 run MySQL in a container (testcontainers; needs Docker)

import type { TestProject } from 'vitest/node';
import { startMariaDb, startPostgres, type RunningServer } from './servers.js';
import { startMysqlContainer } from './containers.js';

declare module 'vitest' {
  export interface ProvidedContext {
    mysqlAdminUrl: string;
    pgAdminUrl: string;
  }
}

const running: Array<{ stop(): Promise<void> }> = [];

function withoutDatabase(url: string): string {
  const u = new URL(url);
  u.pathname = '/';
  return u.toString();
}

export async function setup(project: TestProject): Promise<void> {
  const [mysqlUrl, pgUrl] = await Promise.all([
    (async () => {
      if (process.env.SHADOWSHIFT_TEST_MYSQL_URL) return process.env.SHADOWSHIFT_TEST_MYSQL_URL;
      const server: RunningServer | { url: string; stop(): Promise<void> } = process.env.SHADOWSHIFT_TEST_MYSQL_IMAGE
        ? await startMysqlContainer(process.env.SHADOWSHIFT_TEST_MYSQL_IMAGE)
        : await startMariaDb();
      running.push(server);
      return server.url;
    })(),
    (async () => {
      if (process.env.SHADOWSHIFT_TEST_PG_URL) return process.env.SHADOWSHIFT_TEST_PG_URL;
      const server = await startPostgres();
      running.push(server);
      return server.url;
    })(),
  ]);
  project.provide('mysqlAdminUrl', withoutDatabase(mysqlUrl));
  project.provide('pgAdminUrl', withoutDatabase(pgUrl));
}

export async function teardown(): Promise<void> {
  await Promise.all(running.map((s) => s.stop()));
}
