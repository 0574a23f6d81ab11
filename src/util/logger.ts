import { pino, type Logger as PinoLogger } from 'pino';
import { tapLog } from './log-tap.js';

export type Logger = PinoLogger;

export interface LoggerOptions {
  level?: string;
  /** Pretty, human output; defaults to whether stderr is a terminal. */
  pretty?: boolean;
  /** Pretty output shows each line's message only, not its fields (the demo, where the summary carries the numbers). */
  messagesOnly?: boolean;
}

// Anything that may hold a secret is censored even if a caller logs it by mistake.
const REDACT_PATHS = ['password', '*.password', 'url', '*.url', 'connectionString', '*.connectionString'];

/** Logs go to stderr so stdout stays free for plans and `--json` output. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const pretty = options.pretty ?? Boolean(process.stderr.isTTY);
  const base = {
    level: options.level ?? process.env.SHADOWSHIFT_LOG_LEVEL ?? 'info',
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    base: undefined,
    // Every line is offered to the log taps too (the dashboard's ring of recent events).
    hooks: {
      logMethod(this: PinoLogger, args: Parameters<PinoLogger['info']>, method: (...a: unknown[]) => void, level: number) {
        tapLog(level, args as unknown[]);
        method.apply(this, args as unknown[]);
      },
    },
  };
  if (pretty) {
    return pino({
      ...base,
      transport: { target: 'pino-pretty', options: { destination: 2, colorize: true, translateTime: 'HH:MM:ss', hideObject: Boolean(options.messagesOnly) } },
    });
  }
  return pino(base, pino.destination({ fd: 2, sync: true }));
}

export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
