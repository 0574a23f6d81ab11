// What code outside a dialect's folder needs to know about its SQL text and its
// URLs, without loading the dialect (its driver, its session): the statement
// splitter, the lint rules, the planner and the URL parser run before, or
// without, any connection. Each dialect's `<dialect>-syntax.ts` is one of these,
// imported eagerly by the registry; everything else of a dialect loads lazily.

import type { DialectName } from './dialect.js';

/** How the dialect's own client reads a script: what ends a token, what hides a `;`. */
export interface LexicalRules {
  /** `# ...` is a line comment (MySQL). */
  hashComments: boolean;
  /** Block comments nest (PostgreSQL); otherwise the first star-slash ends one however many opened. */
  nestedBlockComments: boolean;
  /** `$tag$ ... $tag$` bodies (PostgreSQL). */
  dollarQuotes: boolean;
  /** Backslash escapes in strings: in every string (MySQL), or only in `E'...'` strings. */
  backslashEscapes: 'always' | 'e-strings';
  /** `"..."` is a string, not an identifier (MySQL without ANSI_QUOTES). */
  doubleQuotedStrings: boolean;
  /** `` `name` `` quotes an identifier. */
  backtickIdentifiers: boolean;
  /** A `DELIMITER xx` line changes the statement delimiter (the mysql client). */
  delimiterDirective: boolean;
}

export interface DialectSyntax {
  readonly name: DialectName;
  /** For messages: `MySQL/MariaDB`, `PostgreSQL`. */
  readonly label: string;
  /** URL schemes that name this dialect (`mysql`, `mariadb`). */
  readonly urlSchemes: readonly string[];
  /** Directory names that mark a migration file as this dialect's (`lint` without --dialect). */
  readonly pathNames: readonly string[];
  readonly defaultPort: number;
  readonly defaultUser: string;
  /** Quotes one identifier for SQL. */
  quoteIdentifier(name: string): string;
  /** Unquoted identifiers are folded to lower case (PostgreSQL); otherwise kept as written. */
  readonly foldsUnquotedToLower: boolean;
  readonly lexical: LexicalRules;
  /** `UPDATE t SET ... FROM other` joins another table (PostgreSQL): such an UPDATE cannot be batched. */
  readonly updateFromJoins: boolean;
  /**
   * The session variable a batched backfill sets so the dialect's sync triggers
   * (MigrationStore.syncTriggers) leave the rows it writes alone; the triggers test it.
   */
  readonly backfillMarker: { set: string; clear: string };
  /** A value assigned to a column of another type needs an explicit CAST (PostgreSQL); otherwise the server converts it. */
  readonly assignmentNeedsCast: boolean;
  /** Makes a column NOT NULL; `table` and `column` come quoted, `type` is the column's full type (MySQL restates it). */
  setNotNull(table: string, column: string, type: string): string;
  /** A column default as the server reported it, turned into SQL that sets it again. */
  defaultSql(reported: string): string;
  /**
   * The SET statement of the DDL lock timeout: its name and a pattern matching it (lint),
   * and how long a migration's DDL waits for its lock by default.
   */
  readonly lockTimeout: { setting: string; pattern: RegExp; defaultMs: number };
}
