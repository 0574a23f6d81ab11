// Documentation and comments point at files that exist: docs/ARCHITECTURE.md names
// the test guarding each invariant, and a source comment that cites a file someone
// renamed or never wrote sends the reader nowhere.

import { describe, it, expect } from 'vitest';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, join, relative } from 'node:path';

const root = join(__dirname, '..', '..');
const SKIP = new Set(['node_modules', 'dist', '.git']);

function files(dir: string, out: string[] = []): string[] {
  for (const entry of readdirSync(dir)) {
    if (SKIP.has(entry) || entry.startsWith('.')) continue;
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) files(path, out);
    else out.push(relative(root, path));
  }
  return out;
}

const all = files(root);
const names = new Set(all.map((f) => basename(f)));
const paths = new Set(all);

/** File names cited in `text`: one with a directory must exist as a path (or a path's tail), a bare one as some file's name. */
function missing(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/(?<![\w@/.<>-])((?:[\w-]+\/)*[\w-]+(?:\.[\w-]+)*\.(?:ts|md))(?![\w/])/g)) {
    const ref = m[1]!;
    const found = ref.includes('/') ? paths.has(ref) || all.some((p) => p.endsWith(`/${ref}`)) : names.has(ref);
    if (!found) out.push(ref);
  }
  return out;
}

/** Comments of a TypeScript file (line and block), where file references live. */
function comments(source: string): string {
  return [...source.matchAll(/\/\/[^\n]*|\/\*[\s\S]*?\*\//g)].map((m) => m[0]).join('\n');
}

describe('references to files', () => {
  it('docs/ARCHITECTURE.md names only files that exist', () => {
    expect(missing(readFileSync(join(root, 'docs', 'ARCHITECTURE.md'), 'utf8'))).toEqual([]);
  });

  it('every test ARCHITECTURE.md names for an invariant exists', () => {
    const doc = readFileSync(join(root, 'docs', 'ARCHITECTURE.md'), 'utf8');
    const section = doc.slice(doc.indexOf('## Invariants'), doc.indexOf('\n## ', doc.indexOf('## Invariants') + 1));
    const tests = [...section.matchAll(/`(test\/[^`]+\.test\.ts)`/g)].map((m) => m[1]!);
    expect(tests.length).toBeGreaterThan(20);
    expect(tests.filter((t) => !paths.has(t))).toEqual([]);
  });

  it('source and test comments, and the other docs, cite only files that exist', () => {
    const problems: string[] = [];
    for (const f of all) {
      if (/\.(ts|mts)$/.test(f)) for (const ref of missing(comments(readFileSync(join(root, f), 'utf8')))) problems.push(`${f}: ${ref}`);
      else if (f.endsWith('.md')) for (const ref of missing(readFileSync(join(root, f), 'utf8'))) problems.push(`${f}: ${ref}`);
    }
    expect(problems).toEqual([]);
  });
});
