#!/usr/bin/env node
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { ShadowshiftError, UsageError } from '../util/errors.js';
import { alterBuilder, alterCommand } from './alter-command.js';
import { ctlBuilder, ctlCommand } from './ctl-command.js';
import { cleanupBuilder, cleanupCommand } from './cleanup-command.js';
import { migrateBuilder, migrateCommand } from './migrate-command.js';
import { lintBuilder, lintCommand } from './lint-command.js';
import { demoBuilder, demoCommand } from './demo-command.js';
import { revertBuilder, revertCommand } from './revert-command.js';

async function main(argv: string[]): Promise<number> {
  let exitCode = 0;
  await yargs(argv)
    .scriptName('shadowshift')
    .usage('$0 <command> [options]\n\nOnline schema changes for MySQL/MariaDB and PostgreSQL.')
    .command('demo', 'see it work: an online ALTER under live traffic, on a database the demo starts and stops itself', demoBuilder, async (a) => {
      exitCode = await demoCommand(a);
    })
    .command('alter', 'change a table online (plan only, unless --execute)', alterBuilder, async (a) => {
      exitCode = await alterCommand(a);
    })
    .command('revert', "undo the table's last `alter --revertible`, keeping every write made since (plan only, unless --execute)", revertBuilder, async (a) => {
      exitCode = await revertCommand(a);
    })
    .command('ctl <command> [setting]', 'talk to a running job over its control socket', ctlBuilder, async (a) => {
      exitCode = await ctlCommand(a);
    })
    .command('cleanup', 'list (and with --execute remove) what interrupted jobs left behind', cleanupBuilder, async (a) => {
      exitCode = await cleanupCommand(a);
    })
    .command('migrate <action> [arg]', 'versioned expand/contract migrations: up, contract, down, status, plan, new, baseline', migrateBuilder, async (a) => {
      exitCode = await migrateCommand(a as Parameters<typeof migrateCommand>[0]);
    })
    .command('lint [paths..]', 'check migration files for statements that block or break a running application', lintBuilder, async (a) => {
      exitCode = await lintCommand(a);
    })
    .demandCommand(1, 'name a command: demo, alter, revert, ctl, cleanup, migrate or lint (--help lists them)')
    .strict()
    .fail((msg, err) => {
      // yargs' own validation (unknown flag, missing value) is bad input: exit 2.
      throw err ?? new UsageError(`${msg}; see shadowshift --help`);
    })
    .help()
    .parseAsync();
  return exitCode;
}

main(hideBin(process.argv)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof ShadowshiftError) {
      process.stderr.write(`shadowshift: ${err.message}\n`);
      process.exit(err.exitCode);
    }
    process.stderr.write(`shadowshift: unexpected error: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(1);
  },
);
