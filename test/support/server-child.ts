// Starts throwaway servers (servers.ts), prints their pids and dirs as one JSON
// line, then waits: test/unit/servers.test.ts kills it to see them go too.
//   node --import tsx test/support/server-child.ts mariadb,postgres [exit]

import { startMariaDb, startPostgres } from './servers.js';

const kinds = (process.argv[2] ?? 'postgres').split(',');
const servers = await Promise.all(kinds.map((k) => (k === 'mariadb' ? startMariaDb() : startPostgres())));
const pids = servers.map((s) => s.pid);
process.stdout.write(JSON.stringify({ pids, dirs: servers.map((s) => s.dataDir) }) + '\n');
if (process.argv[3] === 'exit') setTimeout(() => process.exit(0), 100);
else setInterval(() => undefined, 60_000);
