import type { Argv } from 'yargs';
import { openDialect } from '../dialects/open-dialect.js';
import { createLogger } from '../util/logger.js';
import { connectionFrom, withConnectionOptions } from './connection-options.js';

export function cleanupBuilder(y: Argv) {
  return withConnectionOptions(y)
    .option('execute', { type: 'boolean', default: false, describe: 'remove the leftovers no running job uses; without it they are only listed' })
    .option('json', { type: 'boolean', default: false });
}

type CleanupArgs = Awaited<ReturnType<typeof cleanupBuilder>['argv']>;

export async function cleanupCommand(args: CleanupArgs): Promise<number> {
  const log = createLogger();
  const session = await openDialect(connectionFrom(args), log);
  try {
    const leftovers = await session.listLeftovers();
    const removed: string[] = [];
    if (args.execute) {
      for (const item of leftovers.filter((l) => !l.inUse)) {
        await session.removeLeftover(item);
        removed.push(item.name);
        log.info({ kind: item.kind, name: item.name }, 'removed');
      }
    }
    if (args.json) {
      process.stdout.write(JSON.stringify({ leftovers, removed }) + '\n');
    } else if (leftovers.length === 0) {
      process.stdout.write('no shadowshift leftovers\n');
    } else {
      for (const l of leftovers) {
        const what = l.inUse ? 'in use by a running job, kept' : args.execute ? 'removed' : 'would be removed with --execute';
        process.stdout.write(`${l.kind.padEnd(12)} ${l.name}  (${what})\n`);
      }
    }
    return 0;
  } finally {
    await session.close();
  }
}
