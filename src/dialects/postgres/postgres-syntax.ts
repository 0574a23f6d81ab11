// PostgreSQL as text: what the registry hands to code that runs without a connection.

import type { DialectSyntax } from '../dialect-syntax.js';
import { quoteIdent } from './postgres-quote.js';

export const postgresSyntax: DialectSyntax = {
  name: 'postgres',
  label: 'PostgreSQL',
  urlSchemes: ['postgres', 'postgresql'],
  pathNames: ['postgres', 'postgresql', 'pg'],
  defaultPort: 5432,
  defaultUser: 'postgres',
  quoteIdentifier: quoteIdent,
  foldsUnquotedToLower: true,
  lexical: {
    hashComments: false,
    nestedBlockComments: true,
    dollarQuotes: true,
    backslashEscapes: 'e-strings',
    doubleQuotedStrings: false,
    backtickIdentifiers: false,
    delimiterDirective: false,
  },
  updateFromJoins: true,
  // A custom setting (a dotted name) needs no declaration and no privilege.
  backfillMarker: { set: "SET shadowshift.backfill = 'on'", clear: 'RESET shadowshift.backfill' },
  // No assignment cast exists between many types (text -> integer): the sync triggers cast.
  assignmentNeedsCast: true,
  setNotNull: (table, column) => `ALTER TABLE ${table} ALTER COLUMN ${column} SET NOT NULL`,
  defaultSql: (reported) => reported,
  lockTimeout: { setting: 'lock_timeout', pattern: /^set\s+(session\s+|local\s+)?lock_timeout\b/i, defaultMs: 1000 },
};
