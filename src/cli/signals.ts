import type { Logger } from '../util/logger.js';
import type { JobControls } from '../control/job-controls.js';

/**
 * First SIGINT/SIGTERM: abort cleanly (a cut-over in progress finishes or rolls
 * back first). A second one exits at once and says what may be left: exit 5, since
 * 130 promises that nothing of the job is left and the cleanup was cut short.
 */
export function installSignalHandlers(controls: JobControls, log: Logger): () => void {
  let received = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    received++;
    if (received === 1) {
      log.warn({ signal }, `${signal}: aborting; cleaning up (send it again to exit at once)`);
      controls.abort(`received ${signal}`, { keepState: true });
      return;
    }
    log.error({ signal }, `${signal} again: exiting now; run \`shadowshift cleanup\` to list anything left behind, and \`shadowshift cleanup --execute\` to remove it`);
    process.exit(5);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
}
