// The one way identifiers reach MySQL/MariaDB SQL: backticks, with any backtick
// inside the name doubled. Values never go through here: they are bound parameters.

export function quoteIdent(name: string): string {
  if (name.includes('\u0000')) throw new Error(`identifier contains a NUL character: ${JSON.stringify(name)}`);
  return '`' + name.replace(/`/g, '``') + '`';
}

export function quoteTable(schema: string, name: string): string {
  return `${quoteIdent(schema)}.${quoteIdent(name)}`;
}

export function quoteList(names: string[]): string {
  return names.map(quoteIdent).join(', ');
}
