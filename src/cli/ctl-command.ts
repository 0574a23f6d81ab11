import type { Argv } from 'yargs';
import { sendControlCommand } from '../control/control-client.js';
import { CONTROL_COMMANDS, SETTINGS, type ControlCommand } from '../control/control-server.js';
import { ShadowshiftError } from '../util/errors.js';
import { describeWait } from '../engine/wait-watcher.js';
import type { JobStatus } from '../engine/job-state.js';

export function ctlBuilder(y: Argv) {
  return y
    .positional('command', { type: 'string', choices: CONTROL_COMMANDS, demandOption: true })
    .positional('setting', { type: 'string', describe: `for set: NAME=VALUE with NAME one of ${SETTINGS.join(', ')}` })
    .option('control-socket', { type: 'string', demandOption: true, describe: 'the socket the job printed when it started' })
    .option('json', { type: 'boolean', default: false });
}

type CtlArgs = Awaited<ReturnType<typeof ctlBuilder>['argv']>;

export function formatStatus(s: JobStatus): string {
  return [
    `state:          ${s.state}${s.phase && s.phase !== s.state ? ` (${s.phase})` : ''}`,
    `table:          ${s.table}  (shadow: ${s.shadowTable ?? '-'})`,
    `rows:           ${s.rowsCopied} / ~${s.rowsEstimated}`,
    `events applied: ${s.eventsApplied}  (backlog ${s.backlog}, lag ${s.lagSeconds ?? '-'}s)`,
    `throttled:      ${s.throttled ?? 'no'}`,
    `ETA:            ${s.etaSeconds === null ? '-' : `${s.etaSeconds}s`}`,
    ...(s.repairedChunks ? [`REPAIRED:       ${s.repairedChunks} chunk(s) by the checksum; the copy or the stream missed a change: report it with the job's log`] : []),
    ...(s.waitingFor ? [`waiting:        ${describeWait(s.waitingFor)}`] : []),
    ...(s.swapped ? [`swapped:        yes (the old table is kept as ${s.backupTable ?? '?'})`] : []),
    ...(s.error ? [`error:          ${s.error}`] : []),
  ].join('\n');
}

export async function ctlCommand(args: CtlArgs): Promise<number> {
  const reply = await sendControlCommand(args.controlSocket, { command: args.command as ControlCommand, setting: args.setting });
  if (!reply.ok) throw new ShadowshiftError(reply.error);
  if (args.json) process.stdout.write(JSON.stringify(args.command === 'status' ? reply.status : reply) + '\n');
  else process.stdout.write((reply.message ? reply.message + '\n' : '') + formatStatus(reply.status) + '\n');
  return 0;
}
