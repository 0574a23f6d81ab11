import type { Argv } from 'yargs';
import type { DialectSession, Leftover } from '../dialects/dialect.js';
import { openDialect } from '../dialects/open-dialect.js';
import { createLogger } from '../util/logger.js';
import { connectionFrom, withConnectionOptions } from './connection-options.js';
import { formatSeconds } from '../engine/revert-point.js';

export function cleanupBuilder(y: Argv) {
  return withConnectionOptions(y)
    .option('execute', { type: 'boolean', default: false, describe: 'remove the leftovers no running job uses; without it they are only listed' })
    .option('wait', {
      type: 'number',
      default: 0,
      describe: 'with --execute: seconds to wait for leftovers still in use to be freed (a job that was just killed holds them until its last statement ends)',
    })
    .option('close-reverts', {
      type: 'boolean',
      default: false,
      describe: 'with --execute: also close open revert windows (remove revert points and the old tables they keep); `shadowshift revert` can then no longer undo those ALTERs',
    })
    .option('json', { type: 'boolean', default: false });
}

type CleanupArgs = Awaited<ReturnType<typeof cleanupBuilder>['argv']>;

/** Exit code when --execute had to keep something a job (running, or still dying) holds. */
export const CLEANUP_KEPT_IN_USE_EXIT = 5;
const WAIT_POLL_MS = 250;

/**
 * The shared heartbeat and checkpoint tables are in use whenever any job of the database
 * runs: keeping them is not debris, so they never make --execute fail.
 */
function isJobArtefact(l: Leftover): boolean {
  return l.kind !== 'heartbeat-table' && l.kind !== 'checkpoint-table';
}

/** A revert point, or an old table one keeps, while `shadowshift revert` may still need it. */
function keptForRevert(l: Leftover, closeReverts: boolean): boolean {
  return Boolean(l.revertWindow?.open) && !closeReverts;
}

function revertNote(l: Leftover): string {
  const w = l.revertWindow!;
  return w.open
    ? `kept for \`shadowshift revert\`: ${formatSeconds(w.ageSeconds)} old, window ${formatSeconds(w.windowSeconds)}; --close-reverts removes it`
    : `revert window closed (${formatSeconds(w.ageSeconds)} old, window ${formatSeconds(w.windowSeconds)}): would be removed with --execute`;
}

export async function cleanupCommand(args: CleanupArgs): Promise<number> {
  const log = createLogger();
  const session = await openDialect(connectionFrom(args), log);
  try {
    let leftovers = await session.listLeftovers();
    const removed: Leftover[] = [];
    if (args.execute) {
      const deadline = Date.now() + Math.max(0, args.wait) * 1000;
      // Each free item is tried once; an item freed while we wait (or created by a dead job's
      // last statement) is removed in a later round, before the in-use ones are looked at again.
      const tried = new Set<string>();
      const key = (l: Leftover) => `${l.kind} ${l.name} ${l.table?.schema ?? ''}.${l.table?.name ?? ''}`;
      for (;;) {
        const free = leftovers.filter((l) => !l.inUse && !tried.has(key(l)) && !keptForRevert(l, args.closeReverts));
        if (free.length > 0) {
          for (const l of free) tried.add(key(l));
          removed.push(...(await removeFree(session, free, log)));
        } else if (!leftovers.some((l) => l.inUse && isJobArtefact(l)) || Date.now() >= deadline) {
          break;
        } else {
          await new Promise((res) => setTimeout(res, WAIT_POLL_MS));
        }
        leftovers = await session.listLeftovers();
      }
    }
    const kept = args.execute ? leftovers.filter((l) => l.inUse && isJobArtefact(l)) : [];
    if (args.json) {
      process.stdout.write(JSON.stringify({ leftovers, removed: removed.map((l) => l.name), kept: kept.map((l) => l.name) }) + '\n');
    } else if (leftovers.length === 0 && removed.length === 0) {
      process.stdout.write('no shadowshift leftovers\n');
    } else {
      const line = (l: Leftover, what: string) => process.stdout.write(`${l.kind.padEnd(16)} ${l.name}  (${what})\n`);
      for (const l of removed) line(l, 'removed');
      for (const l of leftovers) line(l, l.inUse ? 'in use by a running job, kept' : l.revertWindow ? revertNote(l) : 'would be removed with --execute');
    }
    if (kept.length === 0) return 0;
    log.error(
      { kept: kept.map((l) => l.name) },
      `kept ${kept.length} leftover(s) a job still holds. If that job is running, stop it first; if it was just killed, ` +
        'its last statement is still ending on the server: run cleanup again, or with --wait 60',
    );
    return CLEANUP_KEPT_IN_USE_EXIT;
  } finally {
    await session.close();
  }
}

async function removeFree(session: DialectSession, leftovers: Leftover[], log: ReturnType<typeof createLogger>): Promise<Leftover[]> {
  const removed: Leftover[] = [];
  for (const item of leftovers.filter((l) => !l.inUse)) {
    await session.removeLeftover(item);
    removed.push(item);
    log.info({ kind: item.kind, name: item.name }, 'removed');
  }
  return removed;
}
