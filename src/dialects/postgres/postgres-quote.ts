// The one way identifiers reach SQL in the PostgreSQL dialect.

/** Quotes one identifier: always double-quoted, embedded quotes doubled. NUL is refused. */
export function quoteIdent(name: string): string {
  if (name.includes('\u0000')) throw new Error(`identifier contains a NUL character: ${JSON.stringify(name)}`);
  return '"' + name.replace(/"/g, '""') + '"';
}

/** schema.name, both quoted. */
export function quoteQualified(schema: string, name: string): string {
  return `${quoteIdent(schema)}.${quoteIdent(name)}`;
}

/** A string literal (for the few places a value cannot be a bound parameter, e.g. DDL). */
export function quoteLiteral(value: string): string {
  if (value.includes('\u0000')) throw new Error('string literal contains a NUL character');
  return "E'" + value.replace(/\\/g, '\\\\').replace(/'/g, "''") + "'";
}
