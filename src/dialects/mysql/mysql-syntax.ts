// MySQL/MariaDB as text: what the registry hands to code that runs without a connection.

import type { DialectSyntax } from '../dialect-syntax.js';
import { quoteIdent } from './mysql-quote.js';

export const mysqlSyntax: DialectSyntax = {
  name: 'mysql',
  label: 'MySQL/MariaDB',
  urlSchemes: ['mysql', 'mariadb'],
  pathNames: ['mysql', 'mariadb'],
  defaultPort: 3306,
  defaultUser: 'root',
  quoteIdentifier: quoteIdent,
  // Table names are case-sensitive as stored (lower_case_table_names=0).
  foldsUnquotedToLower: false,
  lexical: {
    hashComments: true,
    nestedBlockComments: false,
    dollarQuotes: false,
    backslashEscapes: 'always',
    doubleQuotedStrings: true,
    backtickIdentifiers: true,
    delimiterDirective: true,
  },
  updateFromJoins: false,
  // A user variable lives as long as the connection and costs no privilege.
  backfillMarker: { set: 'SET @shadowshift_backfill = 1', clear: 'SET @shadowshift_backfill = NULL' },
  assignmentNeedsCast: false,
  setNotNull: (table, column, type) => `ALTER TABLE ${table} MODIFY COLUMN ${column} ${type} NOT NULL`,
  // MySQL reports a literal default unquoted (`abc`, not `'abc'`); numbers and CURRENT_TIMESTAMP stand as they are.
  defaultSql: (reported) => (/^[-\d.]+$|^current_timestamp/i.test(reported) || /^'/.test(reported) ? reported : `'${reported.replace(/'/g, "''")}'`),
  // lock_wait_timeout counts whole seconds: 2 s, not 1, so a rounded-down wait is never zero.
  lockTimeout: { setting: 'lock_wait_timeout', pattern: /^set\s+(session\s+|@@session\.)?lock_wait_timeout\b/i, defaultMs: 2000 },
};
