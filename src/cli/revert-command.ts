// `shadowshift revert`: undo the table's last revertible ALTER without losing a write
// (engine/revert-point.ts). Plans only, unless --execute; the job is the engine's, run
// through `alter`'s own runner, so controls, hooks, metrics and progress are the same.

import type { Argv } from 'yargs';
import { withConnectionOptions } from './connection-options.js';
import { printedRun, withJobCommandOptions } from './alter-command.js';

export function revertBuilder(y: Argv) {
  const own = withConnectionOptions(y)
    .option('table', { type: 'string', demandOption: true, describe: 'the table to take back to its definition before its last `alter --revertible` (db.table or table)' })
    .option('execute', { type: 'boolean', default: false, describe: 'run the revert; without it only the plan is printed' });
  return withJobCommandOptions(own);
}

type RevertArgs = Awaited<ReturnType<typeof revertBuilder>['argv']>;

export function revertCommand(args: RevertArgs): Promise<number> {
  return printedRun({ ...args, alter: '' }, { revert: true }, (result) =>
    `done: ${result.table} is back on its definition before the ALTER, with every write made since (${result.eventsApplied} changes applied); ` +
    `the table it replaces is kept as ${result.backupTable ?? '(dropped)'}, and \`shadowshift revert\` can undo this revert too`,
  );
}
