// Shared helpers for migration tests: the CLI as a real process (through tsx,
// so no build is needed), per-dialect databases and migration directories.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createMysqlDatabase, createPgDatabase } from '../support/databases.js';
import { openDb, type Db } from '../support/db.js';

export type Dialect = 'mysql' | 'postgres';

export const ROOT = resolve(import.meta.dirname, '../..');
const MAIN = join(ROOT, 'src/cli/main.ts');

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function startCli(args: string[], env: Record<string, string> = {}): { child: ChildProcess; done: Promise<Run> } {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], {
    cwd: ROOT,
    env: { ...process.env, SHADOWSHIFT_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const done = new Promise<Run>((res) => child.on('close', (code) => res({ code, stdout, stderr })));
  return { child, done };
}

export const cli = (args: string[], env?: Record<string, string>) => startCli(args, env).done;

/** Parses the last JSON line of stdout. */
export function json<T = any>(r: Run): T {
  const line = r.stdout.trim().split('\n').filter((l) => l.startsWith('{')).pop();
  if (!line) throw new Error(`no JSON on stdout (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
  return JSON.parse(line) as T;
}

export async function newDatabase(dialect: Dialect, prefix: string): Promise<{ url: string; db: Db }> {
  const t = dialect === 'mysql' ? await createMysqlDatabase(prefix) : await createPgDatabase(prefix);
  return { url: t.url, db: await openDb(t.url) };
}

export function tempDir(prefix = 'ss-mig-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function write(dir: string, file: string, content: string): string {
  const p = join(dir, file);
  writeFileSync(p, content);
  return p;
}

export async function tableExists(db: Db, table: string): Promise<boolean> {
  const rows =
    db.dialect === 'mysql'
      ? await db.query('SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?', [table])
      : await db.query('SELECT 1 FROM pg_class WHERE relname = $1 AND relnamespace = current_schema()::regnamespace', [table]);
  return rows.length > 0;
}

export async function indexExists(db: Db, table: string, index: string): Promise<boolean> {
  const rows =
    db.dialect === 'mysql'
      ? await db.query('SELECT 1 FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND INDEX_NAME = ?', [table, index])
      : await db.query('SELECT 1 FROM pg_indexes WHERE schemaname = current_schema() AND tablename = $1 AND indexname = $2', [table, index]);
  return rows.length > 0;
}

export async function columnInfo(db: Db, table: string, column: string): Promise<{ type: string; nullable: boolean } | null> {
  const rows =
    db.dialect === 'mysql'
      ? await db.query<{ t: string; n: string }>('SELECT COLUMN_TYPE AS t, IS_NULLABLE AS n FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND COLUMN_NAME = ?', [table, column])
      : await db.query<{ t: string; n: string }>('SELECT data_type AS t, is_nullable AS n FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1 AND column_name = $2', [table, column]);
  return rows[0] ? { type: String(rows[0].t).toLowerCase(), nullable: rows[0].n === 'YES' } : null;
}

/** Resolves once the running CLI has printed `pattern` on stderr. */
export async function stderrShows(run: { child: import('node:child_process').ChildProcess }, pattern: RegExp, timeoutMs = 30_000): Promise<void> {
  let text = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`stderr never matched ${pattern}: ${text}`)), timeoutMs);
    run.child.stderr!.on('data', (d) => {
      text += d;
      if (pattern.test(text)) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
}

