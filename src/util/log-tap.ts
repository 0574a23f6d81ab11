// Lets a part of the process see each log line as it is written (the dashboard keeps
// the last ones), whatever logger wrote it: createLogger's loggers and their children
// call tapLog. Fields that may hold secrets are left out, as the logger redacts them.

export interface TappedLine {
  time: number;
  /** pino's level: 30 info, 40 warn, 50 error. */
  level: number;
  msg: string;
  /** Shallow fields, values shortened to text (no passwords, URLs or connection strings). */
  fields: Record<string, string>;
}

const SECRET_KEYS = /^(password|url|connectionString)$/i;
const taps = new Set<(line: TappedLine) => void>();

/** Calls `tap` with every log line from now on; returns the function that stops it. */
export function addLogTap(tap: (line: TappedLine) => void): () => void {
  taps.add(tap);
  return () => void taps.delete(tap);
}

function short(value: unknown): string {
  let text: string;
  if (typeof value === 'string') text = value;
  else {
    try {
      text = JSON.stringify(value, (k, v: unknown) => (SECRET_KEYS.test(k) ? '[redacted]' : v)) ?? String(value);
    } catch {
      text = String(value);
    }
  }
  return text.length > 300 ? text.slice(0, 297) + '...' : text;
}

/** pino's logMethod arguments: ([obj], msg, ...interpolation) or (msg, ...). */
export function tapLog(level: number, args: unknown[]): void {
  if (taps.size === 0) return;
  let msg = '';
  const fields: Record<string, string> = {};
  const [first, second] = args;
  if (first instanceof Error) {
    msg = typeof second === 'string' ? second : first.message;
    fields.err = first.message;
  } else if (first !== null && typeof first === 'object') {
    msg = typeof second === 'string' ? second : '';
    for (const [k, v] of Object.entries(first as Record<string, unknown>)) {
      if (v === undefined) continue;
      fields[k] = SECRET_KEYS.test(k) ? '[redacted]' : short(v);
    }
  } else {
    msg = String(first ?? '');
  }
  const line: TappedLine = { time: Date.now(), level, msg, fields };
  for (const tap of taps) {
    try {
      tap(line);
    } catch {
      /* a tap must not break logging */
    }
  }
}
