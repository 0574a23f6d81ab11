// Servers for benchmarks: the throwaway ones the tests use (test/support/servers.ts),
// or existing ones from SHADOWSHIFT_BENCH_MYSQL_URL / SHADOWSHIFT_BENCH_PG_URL
// (root/superuser URLs). Each benchmark gets a fresh database on them.
// SHADOWSHIFT_BENCH_MARIADB_ARGS adds server options to a started MariaDB
// (space-separated, e.g. --innodb-log-file-size=1G).

import { startMariaDb, startPostgres } from '../../test/support/servers.js';
import { createDatabaseOn, type Dialect } from '../../test/support/db.js';

export interface BenchServers {
  /** Admin URL per dialect that was asked for. */
  adminUrl: Partial<Record<Dialect, string>>;
  /** A fresh, empty database on that server; returns its URL. */
  database(dialect: Dialect, prefix?: string): Promise<string>;
  stop(): Promise<void>;
}

export async function startBenchServers(dialects: Dialect[] = ['mysql', 'postgres']): Promise<BenchServers> {
  const adminUrl: Partial<Record<Dialect, string>> = {};
  const stops: Array<() => Promise<void>> = [];
  try {
    await Promise.all(
      dialects.map(async (d) => {
        const fromEnv = d === 'mysql' ? process.env.SHADOWSHIFT_BENCH_MYSQL_URL : process.env.SHADOWSHIFT_BENCH_PG_URL;
        if (fromEnv) {
          adminUrl[d] = fromEnv;
          return;
        }
        const extraArgs = (process.env.SHADOWSHIFT_BENCH_MARIADB_ARGS ?? '').split(/\s+/).filter(Boolean);
        const server = d === 'mysql' ? await startMariaDb({ extraArgs }) : await startPostgres();
        stops.push(() => server.stop());
        adminUrl[d] = server.adminUrl(d === 'mysql' ? '' : 'postgres');
      }),
    );
  } catch (err) {
    await Promise.all(stops.map((s) => s()));
    throw err;
  }
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await Promise.all(stops.map((s) => s()));
  };
  // Don't leave servers behind on Ctrl-C.
  const onSignal = () => void stop().finally(() => process.exit(130));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  return {
    adminUrl,
    async database(dialect, prefix = 'bench') {
      const url = adminUrl[dialect];
      if (!url) throw new Error(`no ${dialect} server was started`);
      return (await createDatabaseOn(url, prefix)).url;
    },
    async stop() {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      await stop();
    },
  };
}
