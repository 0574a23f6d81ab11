// A third dialect is a folder and a registry entry: a stub one, registered here,
// is reached by the URL parser, the session opener, the migration store, the
// planner and the statement splitter, without any of them naming it. And a
// dialect name nobody registered fails with its name instead of running
// another dialect's code.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DialectName, DialectSession } from '../../src/dialects/dialect.js';
import type { DialectSyntax } from '../../src/dialects/dialect-syntax.js';
import { dialectForScheme, loadDialect, registerDialect, syntaxOf, type DialectModule } from '../../src/dialects/registry.js';
import { openDialect } from '../../src/dialects/open-dialect.js';
import { openMigrationStore, type MigrationStore } from '../../src/migrations/migration-store.js';
import { DEFAULT_ONLINE_THRESHOLD, planPhase } from '../../src/migrations/planner.js';
import { splitStatements } from '../../src/migrations/statement-splitter.js';
import { parseConnectionUrl, type ConnectionConfig } from '../../src/util/connection-url.js';
import { silentLogger } from '../../src/util/logger.js';
import { dialectFromPath } from '../../src/lint/lint-runner.js';
import { postgresSyntax } from '../../src/dialects/postgres/postgres-syntax.js';

// Not a DialectName to the compiler: the union lists the built-in dialects only.
const STUB = 'stub' as DialectName;

const stubSyntax: DialectSyntax = {
  ...postgresSyntax,
  name: STUB,
  label: 'Stub',
  urlSchemes: ['stub', 'stubdb'],
  pathNames: ['stub'],
  defaultPort: 7777,
  defaultUser: 'stubby',
  quoteIdentifier: (name) => `[${name}]`,
  // `#` comments, so the splitter is seen to take the stub's rules and not PostgreSQL's.
  lexical: { ...postgresSyntax.lexical, hashComments: true },
};

const opened: ConnectionConfig[] = [];
const stubSession = { name: STUB } as unknown as DialectSession;
const stubStore = { dialect: STUB } as unknown as MigrationStore;

const stubModule: DialectModule = {
  syntax: stubSyntax,
  factory: {
    async open(config) {
      opened.push(config);
      return stubSession;
    },
  },
  openMigrationStore: async () => stubStore,
  planner: {
    plan: (base, parsed, stats) => ({ ...base, class: 'instant', how: `stub plan of ${parsed.kind} on ${stats?.name ?? parsed.table}`, steps: [{ kind: 'exec', sql: base.sql }] }),
  },
};

let unregister: () => void;
beforeAll(() => {
  unregister = registerDialect({ syntax: stubSyntax, load: async () => stubModule });
});
afterAll(() => unregister());

describe('a registered third dialect', () => {
  it('is what its URL schemes name, with its own default port and user', () => {
    expect(dialectForScheme('stubdb')).toBe(STUB);
    const config = parseConnectionUrl('stub://h/db');
    expect(config).toMatchObject({ dialect: STUB, host: 'h', port: 7777, user: 'stubby', database: 'db' });
  });

  it('opens its own session and migration store from a URL (the CLI path: URL -> dialect -> registry entry)', async () => {
    const config = parseConnectionUrl('stubdb://u:pw@h:1/db');
    expect(await openDialect(config, silentLogger())).toBe(stubSession);
    expect(opened.at(-1)).toBe(config);
    expect(await openMigrationStore(config)).toBe(stubStore);
  });

  it('gets its statements split by its lexical rules and planned by its planner half', async () => {
    const statements = splitStatements('# a comment; not a statement\nALTER TABLE t ADD COLUMN x int;', STUB);
    expect(statements.map((s) => s.text)).toEqual(['ALTER TABLE t ADD COLUMN x int']);
    const stats = { schema: 's', name: 't', rows: 10, bytes: 100, columns: [], primaryKey: ['id'] };
    const [plan] = await planPhase(statements, 'expand', { dialect: STUB, stats: async () => stats, threshold: DEFAULT_ONLINE_THRESHOLD });
    expect(plan!.how).toBe('stub plan of alter-table on t');
  });

  it('is the dialect of migration files under a directory named after it', () => {
    expect(dialectFromPath('migrations/stub/001_x.sql')).toBe(STUB);
  });
});

describe('a dialect nobody registered', () => {
  const oracle = 'oracle' as DialectName;
  const message = /no dialect named "oracle" is registered \(known: mysql, postgres, stub\)/;

  it('fails with its name everywhere a dialect is chosen, instead of running PostgreSQL code', async () => {
    expect(() => syntaxOf(oracle)).toThrow(message);
    await expect(loadDialect(oracle)).rejects.toThrow(message);
    const config = { ...parseConnectionUrl('postgres://h/db'), dialect: oracle };
    await expect(openDialect(config, silentLogger())).rejects.toThrow(message);
    await expect(openMigrationStore(config)).rejects.toThrow(message);
    await expect(planPhase([], 'expand', { dialect: oracle, stats: async () => null, threshold: DEFAULT_ONLINE_THRESHOLD })).rejects.toThrow(message);
    expect(() => splitStatements('SELECT 1', oracle)).toThrow(message);
  });

  it('is an unsupported URL scheme, naming the schemes there are', () => {
    expect(() => parseConnectionUrl('oracle://h/db')).toThrow(/unsupported URL scheme "oracle:"; use mysql:\/\/, mariadb:\/\/, postgres:\/\/, postgresql:\/\/, stub:\/\/ or stubdb:\/\//);
  });

  it('cannot take the name of one already there', () => {
    expect(() => registerDialect({ syntax: { ...stubSyntax, name: 'mysql' }, load: async () => stubModule })).toThrow(/already registered/);
  });
});
