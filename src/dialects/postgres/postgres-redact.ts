// Other sessions' statements as the job's log may show them (blockers of the cut-over's
// lock, old snapshots the cut-over waits for): the log may be shipped and kept where
// the database's data must not go.

/**
 * A session's statement for the log: string literals, dollar-quoted bodies and
 * numbers replaced (they may carry passwords or personal data), whitespace squeezed,
 * cut to 120 characters.
 */
export function redactQuery(q: string): string {
  const out = q
    .replace(/\$([A-Za-z_][A-Za-z0-9_]*)?\$[\s\S]*?(\$\1\$|$)/g, '$$…$$')
    .replace(/[EeBbXxUu]?&?'(?:[^']|'')*('|$)/g, "'…'")
    .replace(/\b\d+(\.\d+)?\b/g, '?')
    .replace(/\s+/g, ' ')
    .trim();
  return out.length > 120 ? out.slice(0, 119) + '…' : out;
}
