// Which names of an ALTER are index names (per schema on PostgreSQL), and the ALTER as
// the shadow runs it: exactly those replaced by the job's names, nothing else touched.

import { describe, expect, it } from 'vitest';
import { indexRenames, jobIndexNames, namedIndexes, withJobIndexNames } from '../../src/dialects/postgres/postgres-index-names.js';
import { alterClauses } from '../../src/dialects/postgres/postgres-alter-analysis.js';

const ALTER =
  `ALTER TABLE items ADD CONSTRAINT Items_Code_Key UNIQUE (code) DEFERRABLE, ADD CONSTRAINT pos CHECK (n > 0), ` +
  `ADD COLUMN note text DEFAULT 'constraint x unique' CONSTRAINT "Note Key" UNIQUE, ` +
  `/* constraint y unique */ ADD CONSTRAINT no_overlap EXCLUDE USING gist (during WITH &&) WHERE (kind = 'constraint z unique'), ` +
  `ADD CONSTRAINT fk FOREIGN KEY (p) REFERENCES p (id), ADD CONSTRAINT "pk""2" PRIMARY KEY (id, n), ADD COLUMN s text DEFAULT $$CONSTRAINT w UNIQUE$$`;

describe('PostgreSQL: index names an ALTER asks for', () => {
  it('are those of UNIQUE, PRIMARY KEY and EXCLUDE constraints, table or column, folded as the server folds them', () => {
    expect(namedIndexes(ALTER)).toEqual(['items_code_key', 'Note Key', 'no_overlap', 'pk"2']);
    expect(namedIndexes('ADD COLUMN x int, ADD UNIQUE (x), ADD CONSTRAINT c CHECK (x > 0)')).toEqual([]);
  });

  it('are replaced by the job\'s names in the shadow\'s ALTER, in order, and nothing else is', () => {
    const extra = jobIndexNames(ALTER, '0123456789')!;
    const renames = [...indexRenames(extra)];
    expect(renames).toEqual([
      ['_ss_0123456789_k1_items_code_key', 'items_code_key'],
      ['_ss_0123456789_k2_Note Key', 'Note Key'],
      ['_ss_0123456789_k3_no_overlap', 'no_overlap'],
      ['_ss_0123456789_k4_pk"2', 'pk"2'],
    ]);
    const shadowAlter = withJobIndexNames(alterClauses(ALTER), extra);
    expect(shadowAlter).toBe(
      `ADD CONSTRAINT "_ss_0123456789_k1_items_code_key" UNIQUE (code) DEFERRABLE, ADD CONSTRAINT pos CHECK (n > 0), ` +
        `ADD COLUMN note text DEFAULT 'constraint x unique' CONSTRAINT "_ss_0123456789_k2_Note Key" UNIQUE, ` +
        `/* constraint y unique */ ADD CONSTRAINT "_ss_0123456789_k3_no_overlap" EXCLUDE USING gist (during WITH &&) WHERE (kind = 'constraint z unique'), ` +
        `ADD CONSTRAINT fk FOREIGN KEY (p) REFERENCES p (id), ADD CONSTRAINT "_ss_0123456789_k4_pk""2" PRIMARY KEY (id, n), ADD COLUMN s text DEFAULT $$CONSTRAINT w UNIQUE$$`,
    );
    expect(namedIndexes(shadowAlter)).toEqual(renames.map(([job]) => job));
  });

  it('keeps a long name within 63 bytes, and records nothing when the ALTER names no index', () => {
    const long = 'x'.repeat(63);
    const [[job, asked]] = [...indexRenames(jobIndexNames(`ADD CONSTRAINT ${long} UNIQUE (code)`, '0123456789')!)];
    expect(asked).toBe(long);
    expect(Buffer.byteLength(job!)).toBe(63);
    expect(jobIndexNames('ADD COLUMN x int', '0123456789')).toBeNull();
    expect(withJobIndexNames('ADD COLUMN x int', {})).toBe('ADD COLUMN x int');
  });
});
