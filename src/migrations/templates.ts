// `migrate new`: a migration file from a template, under the next free version.

import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { UsageError } from '../util/errors.js';
import { discoverMigrations, parseFileName, timestampVersion } from './migration-files.js';

const SQL_TEMPLATE = (name: string) => `-- ${name}
-- Phases: expand runs before the new application version is deployed,
-- backfill right after it (in key-range batches), contract after every
-- instance runs the new version (\`shadowshift migrate contract\`), down undoes expand.

-- shadowshift:expand


-- shadowshift:backfill


-- shadowshift:contract


-- shadowshift:down

`;

const TS_TEMPLATE = (name: string) => `// ${name}
import { defineMigration } from 'shadowshift/migrations';

export default defineMigration({
  // operations: [renameColumn({ table: 'users', from: 'name', to: 'full_name' })],
  async expand(db) {
    // await db.ddl('ALTER TABLE ...');
  },
  async backfill(db) {
    // await db.backfill({ table: 'users', set: 'full_name = name', where: 'full_name IS NULL' });
  },
  async contract(db) {},
  async down(db) {},
});
`;

/** Writes a new migration file from the template; returns its path. */
export function newMigrationFile(dir: string, name: string, kind: 'sql' | 'ts', now = new Date()): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9_-]*$/.test(name)) {
    throw new UsageError(`migration name "${name}" may only hold letters, digits, _ and -, e.g. add_order_status`);
  }
  if (!existsSync(dir)) mkdirSync(dir, { recursive: true });
  let version = timestampVersion(now);
  const taken = new Set(discoverMigrations(dir).map((f) => BigInt(f.version)));
  while (taken.has(BigInt(version))) version = (BigInt(version) + 1n).toString();
  const file = `${version}_${name}.${kind}`;
  if (!parseFileName(file)) throw new UsageError(`cannot build a valid file name from "${name}"`);
  const path = join(dir, file);
  writeFileSync(path, kind === 'sql' ? SQL_TEMPLATE(name) : TS_TEMPLATE(name), { flag: 'wx' });
  return path;
}
