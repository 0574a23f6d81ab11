// What one ALTER TABLE clause costs, from the text and (when known) the
// column's current type: what the classifiers of both dialects share. The
// classifiers live beside their dialects (src/dialects/*/<dialect>-alter-classes.ts),
// used by the planner halves (what to run) and the lint rules (what to warn about).

import type { ColumnDetail } from './migration-store.js';

export interface Classified<C> {
  cls: C;
  why: string;
}

export function columnOf(columns: ColumnDetail[] | undefined, name: string | null): ColumnDetail | undefined {
  if (!columns || !name) return undefined;
  return columns.find((c) => c.name.toLowerCase() === name.toLowerCase());
}
