// The one place that knows which dialects exist. Code outside src/dialects
// never tests a dialect's name: it asks the registry for the dialect's module
// (session, migration store, planner half) or for its syntax, so a third
// dialect is a folder and an entry here, and a name without an entry is an
// error instead of silently taking another dialect's code.
//
// The syntax is imported eagerly because it is needed synchronously and before
// any connection (URL parsing, statement splitting, lint); it is plain data.
// The module itself (drivers, the session) loads only when a job uses it.

import type { DialectFactory, DialectName } from './dialect.js';
import type { DialectSyntax } from './dialect-syntax.js';
import type { OpenMigrationStore } from '../migrations/migration-store.js';
import type { PlannerHalf } from '../migrations/planner.js';
import { ShadowshiftError } from '../util/errors.js';
import { mysqlSyntax } from './mysql/mysql-syntax.js';
import { postgresSyntax } from './postgres/postgres-syntax.js';

/** Everything a dialect provides, loaded on first use. */
export interface DialectModule {
  readonly syntax: DialectSyntax;
  /** Opens a session for the online engine (dialect.ts). */
  readonly factory: DialectFactory;
  /** Opens the migration runner's store (migration-store.ts). */
  readonly openMigrationStore: OpenMigrationStore;
  /** How the migration planner runs each kind of statement on this dialect. */
  readonly planner: PlannerHalf;
}

export interface DialectEntry {
  readonly syntax: DialectSyntax;
  load(): Promise<DialectModule>;
}

const BUILT_IN: Record<DialectName, DialectEntry> = {
  mysql: { syntax: mysqlSyntax, load: async () => (await import('./mysql/mysql-module.js')).mysqlModule },
  postgres: { syntax: postgresSyntax, load: async () => (await import('./postgres/postgres-module.js')).postgresModule },
};

const entries = new Map<string, DialectEntry>(Object.entries(BUILT_IN));

/**
 * Adds a dialect at run time (tests register a stub this way; a built-in one is an
 * entry in BUILT_IN). Returns the function that removes it again.
 */
export function registerDialect(entry: DialectEntry): () => void {
  const name = entry.syntax.name;
  if (entries.has(name)) throw new ShadowshiftError(`a dialect named ${name} is already registered`);
  entries.set(name, entry);
  return () => void entries.delete(name);
}

export function dialectNames(): DialectName[] {
  return [...entries.keys()] as DialectName[];
}

export function dialectEntry(name: string): DialectEntry {
  const entry = entries.get(name);
  if (!entry) throw new ShadowshiftError(`no dialect named "${name}" is registered (known: ${dialectNames().join(', ')}); src/dialects/registry.ts lists them`);
  return entry;
}

export function syntaxOf(name: string): DialectSyntax {
  return dialectEntry(name).syntax;
}

export async function loadDialect(name: string): Promise<DialectModule> {
  return dialectEntry(name).load();
}

/** The dialect a URL scheme names (`mariadb` -> mysql), or null. */
export function dialectForScheme(scheme: string): DialectName | null {
  for (const e of entries.values()) if (e.syntax.urlSchemes.includes(scheme)) return e.syntax.name;
  return null;
}

/** Every URL scheme some dialect takes, for messages. */
export function urlSchemes(): string[] {
  return [...entries.values()].flatMap((e) => e.syntax.urlSchemes);
}
