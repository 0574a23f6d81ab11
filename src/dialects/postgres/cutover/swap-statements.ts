// The swap's statements, built from the catalog facts alone (catalog-facts.ts), one
// function a step, in the order the server runs them. Nothing here queries: under the
// lock the statements go to the server in one round trip.

import type { ArtefactNames, CopyPlan } from '../../dialect.js';
import { parseTextArray as parseArrayText } from '../postgres-inspector.js';
import { asideName, jobTag, parseArtefactName, truncateBytes } from '../postgres-names.js';
import { indexRenames } from '../postgres-index-names.js';
import { quoteIdent, quoteLiteral, quoteQualified } from '../postgres-quote.js';
import { ShadowshiftError } from '../../../util/errors.js';
import { indexServesMax, type AclFact, type Facts, type IndexFact, type ViewFact } from './catalog-facts.js';

/** A foreign key the swap adds NOT VALID under the lock, validated after the commit. */
export interface FkFrom {
  schema: string;
  table: string;
  name: string;
  def: string;
}

/** The swap as statements, in the order they run; views go one by one after them (a view may need recreating). */
export interface SwapSql {
  statements: string[];
  views: ViewFact[];
  validate: FkFrom[];
  /**
   * Run after COMMIT, each on its own with a short lock_timeout: dropping a foreign key
   * locks its parent ACCESS EXCLUSIVE, which under the swap's lock would queue every
   * reader of the parent behind the cut-over (and a long reader would fail every attempt).
   */
  afterCommit: string[];
}

const grantee = (g: string | null) => (g === null ? 'PUBLIC' : quoteIdent(g));

/** One privilege of an ACL granted again on `on` (a table or a view), on one column of it when `column` is given. */
export function grantSql(g: AclFact, on: string, column?: string): string {
  const what = column === undefined ? g.privilege : `${g.privilege} (${quoteIdent(column)})`;
  return `GRANT ${what} ON ${on} TO ${grantee(g.grantee)}${g.grantable === 'true' ? ' WITH GRANT OPTION' : ''}`;
}

export function columnMapper(plan: CopyPlan): { colMap: Map<string, string>; mapCol: (name: string) => string } {
  const colMap = new Map(plan.columns.map((m) => [m.source, m.target]));
  for (const k of plan.key) colMap.set(k.source, k.target);
  const mapCol = (name: string): string => {
    const t = colMap.get(name);
    if (t === undefined) throw new ShadowshiftError(`cut-over: column ${name} of ${plan.original.ref.name} is used by a dependent object but has no counterpart in the new table`);
    return t;
  };
  return { colMap, mapCol };
}

/** Names the swap may give the shadow's own indexes (`<shadow>_col_idx` → `<table>_col_idx`, and the names the ALTER asked for). */
export function nameCandidates(plan: CopyPlan, names: ArtefactNames, f: Facts): string[] {
  const out = f.sIdx.filter((sh) => sh.name.startsWith(names.shadow)).map((sh) => newIndexName(plan, names, sh.name));
  const asideRest = f.sIdx.map((sh) => parseArtefactName(sh.name)).filter((p) => p !== null && /^o\d+$/.test(p.kind) && p.rest).map((p) => p!.rest);
  return [...new Set([...out, ...asideRest, ...indexRenames(names.extra).values()])].sort();
}

function newIndexName(plan: CopyPlan, names: ArtefactNames, shadowIndex: string): string {
  return truncateBytes(plan.original.ref.name + shadowIndex.slice(names.shadow.length), 63);
}

/** The new table's identity columns whose sequence the swap sets past max(column). */
export function identityColumns(plan: CopyPlan, f: Facts): string[] {
  const { colMap } = columnMapper(plan);
  const out: string[] = [];
  for (const s of f.seqs) {
    const col = colMap.get(s.col);
    if (s.deptype === 'i' && col !== undefined && f.shadowIdentitySeqs.some((x) => x.col === col)) out.push(col);
  }
  return out;
}

/** What every step reads and appends to. */
interface Build {
  plan: CopyPlan;
  names: ArtefactNames;
  f: Facts;
  schema: string;
  origName: string;
  /** The original's name, quoted: after step 2 it names the new table. */
  tbl: string;
  colMap: Map<string, string>;
  mapCol: (name: string) => string;
  sql: string[];
  validate: FkFrom[];
  afterCommit: string[];
  /**
   * Names freed or taken by earlier steps, so the check whether a new index's name is
   * free needs no query under the lock.
   */
  moved(from: string, to: string): void;
  taken(name: string): boolean;
  /** Identity sequences moved aside in step 1 (`schema.name` → the name aside). */
  asideSeq: Map<string, string>;
  /** The original's indexes whose names the new table's indexes took in step 3. */
  matched: Set<string>;
  /** The shadow's indexes that have their final name. */
  used: Set<string>;
}

/**
 * The swap's statements, built from the facts alone (the same order of steps the
 * server runs them in).
 */
export function buildSwap(plan: CopyPlan, names: ArtefactNames, f: Facts, preMax: Map<string, string | null>): SwapSql {
  const schema = plan.original.ref.schema;
  const origName = plan.original.ref.name;
  if (!f.o || !f.s || !f.meta) throw new ShadowshiftError(`cut-over: ${!f.o ? origName : names.shadow} does not exist`);
  if (f.matviews.length) {
    throw new ShadowshiftError(`materialized view(s) ${f.matviews.map((r) => r.name).join(', ')} depend on ${origName}; shadowshift cannot re-point them yet. Drop them before the job and recreate them after.`);
  }
  // Which relation names exist in the schema as the statements run.
  const initially = new Set(f.taken.map((r) => r.relname));
  const now = new Map<string, boolean>();
  const b: Build = {
    plan,
    names,
    f,
    schema,
    origName,
    tbl: quoteQualified(schema, origName),
    ...columnMapper(plan),
    sql: [],
    validate: [],
    afterCommit: [],
    moved: (from, to) => {
      now.set(from, false);
      now.set(to, true);
    },
    taken: (name) => now.get(name) ?? initially.has(name),
    asideSeq: new Map(),
    matched: new Set(),
    used: new Set(),
  };
  moveOriginalNamesAside(b);
  swapTableNames(b);
  nameIndexesLikeTheOriginal(b);
  nameNewIndexesAndConstraints(b);
  takeOverSequences(b, preMax);
  ownerGrantsAndSecurity(b);
  declaredForeignKeys(b);
  referencingForeignKeys(b);
  publications(b);
  triggers(b);
  // 10. Views (run one by one after these): same definition, now resolving to the new
  //     table; CREATE OR REPLACE keeps their grants, owners and dependents.
  return { statements: b.sql, views: f.views, validate: b.validate, afterCommit: b.afterCommit };
}

/** 1. Move the original's index (and so constraint) names and identity sequences aside. */
function moveOriginalNamesAside(b: Build): void {
  const { f, schema, sql } = b;
  const tag = b.names.extra.tag ?? jobTag(b.names.shadow);
  let n = 0;
  for (const idx of f.oIdx) {
    const aside = asideName(tag, ++n, idx.name);
    sql.push(`ALTER INDEX ${quoteQualified(schema, idx.name)} RENAME TO ${quoteIdent(aside)}`);
    b.moved(idx.name, aside);
  }
  for (const s of f.seqs.filter((x) => x.deptype === 'i')) {
    const aside = asideName(tag, ++n, s.seq);
    sql.push(`ALTER SEQUENCE ${quoteQualified(s.seqschema, s.seq)} RENAME TO ${quoteIdent(aside)}`);
    b.asideSeq.set(`${s.seqschema}.${s.seq}`, aside);
    if (s.seqschema === schema) b.moved(s.seq, aside);
  }
}

/** 2. Swap the names. */
function swapTableNames(b: Build): void {
  const { names, origName } = b;
  b.sql.push(`ALTER TABLE ${b.tbl} RENAME TO ${quoteIdent(names.backup)}`);
  b.moved(origName, names.backup);
  b.sql.push(`ALTER TABLE ${quoteQualified(b.schema, names.shadow)} RENAME TO ${quoteIdent(origName)}`);
  b.moved(names.shadow, origName);
}

/**
 * 3. Index and constraint names as the original had them: the same definition, or,
 *    when the ALTER renamed columns, the same plain columns (mapped) and kind.
 */
function nameIndexesLikeTheOriginal(b: Build): void {
  const { f, schema, sql, matched, used } = b;
  const structural = (o: IndexFact, sh: IndexFact) => {
    if (o.plain !== 'true' || sh.plain !== 'true' || o.am !== sh.am || o.flags !== sh.flags) return false;
    const mapped = parseArrayText(o.cols).map((x) => b.colMap.get(x));
    return !mapped.includes(undefined) && JSON.stringify(mapped) === JSON.stringify(parseArrayText(sh.cols));
  };
  for (const pass of ['exact', 'structural'] as const) {
    for (const o of f.oIdx) {
      if (matched.has(o.name)) continue;
      const match = f.sIdx.find((sh) => !used.has(sh.name) && (pass === 'exact' ? sh.def === o.def : structural(o, sh)));
      if (!match) continue;
      used.add(match.name);
      matched.add(o.name);
      if (match.name !== o.name) {
        sql.push(`ALTER INDEX ${quoteQualified(schema, match.name)} RENAME TO ${quoteIdent(o.name)}`);
        b.moved(match.name, o.name);
      }
    }
  }
}

/** 3, continued: names for the indexes and constraints new with the ALTER. */
function nameNewIndexesAndConstraints(b: Build): void {
  const { f, schema, sql, names, origName, used } = b;
  // Indexes the ALTER created under names of its own carry the job's names on the shadow
  // (postgres-index-names.ts): now they take the names the ALTER asked for.
  const renames = indexRenames(names.extra);
  for (const sh of f.sIdx) {
    const asked = renames.get(sh.name);
    if (asked === undefined || used.has(sh.name)) continue;
    if (b.taken(asked)) {
      throw new ShadowshiftError(
        `cut-over: the ALTER names a new index or constraint ${asked}, but ${schema} already has a relation of that name; a native ALTER TABLE would fail the same way. ` +
          'Drop or rename that relation, or give the constraint another name, and run again. The original table is untouched',
      );
    }
    sql.push(`ALTER INDEX ${quoteQualified(schema, sh.name)} RENAME TO ${quoteIdent(asked)}`);
    b.moved(sh.name, asked);
    used.add(sh.name);
  }
  // Indexes and constraints new with the ALTER that got names from the shadow's name
  // (`<shadow>_col_idx`) are named after the table instead (`<table>_col_idx`), when free.
  for (const sh of f.sIdx) {
    if (used.has(sh.name) || !sh.name.startsWith(names.shadow)) continue;
    const name = newIndexName(b.plan, names, sh.name);
    if (!b.taken(name)) {
      sql.push(`ALTER INDEX ${quoteQualified(schema, sh.name)} RENAME TO ${quoteIdent(name)}`);
      b.moved(sh.name, name);
    }
  }
  // An index an earlier cut-over moved aside (`_ss_<tag>_o<n>_<name>`) on a table that comes
  // back (a revert's old table, one the ALTER dropped from the new table) takes its name back.
  for (const sh of f.sIdx) {
    const aside = parseArtefactName(sh.name);
    if (used.has(sh.name) || !aside || !/^o\d+$/.test(aside.kind) || !aside.rest || b.taken(aside.rest)) continue;
    sql.push(`ALTER INDEX ${quoteQualified(schema, sh.name)} RENAME TO ${quoteIdent(aside.rest)}`);
    b.moved(sh.name, aside.rest);
    used.add(sh.name);
  }
  const conNames = new Set(f.shadowCons.map((r) => r.conname));
  for (const { conname } of f.shadowCons) {
    if (!conname.startsWith(names.shadow)) continue;
    const name = truncateBytes(origName + conname.slice(names.shadow.length), 63);
    if (!conNames.has(name)) sql.push(`ALTER TABLE ${b.tbl} RENAME CONSTRAINT ${quoteIdent(conname)} TO ${quoteIdent(name)}`);
  }
}

/**
 * 4. Sequences: serial sequences now belong to the new table; identity sequences
 *    take the original's name and continue past its last value and the max.
 */
function takeOverSequences(b: Build, preMax: Map<string, string | null>): void {
  const { f, schema, sql, tbl } = b;
  for (const s of f.seqs) {
    const col = b.colMap.get(s.col);
    if (col === undefined) continue;
    if (s.deptype === 'a') {
      sql.push(`ALTER SEQUENCE ${quoteQualified(s.seqschema, s.seq)} OWNED BY ${tbl}.${quoteIdent(col)}`);
    } else {
      const mine = f.shadowIdentitySeqs.find((x) => x.col === col);
      if (!mine) continue;
      sql.push(`ALTER SEQUENCE ${quoteQualified(schema, mine.seq)} RENAME TO ${quoteIdent(s.seq)}`);
      b.moved(mine.seq, s.seq);
      // The original's sequence (moved aside) as it is now: nothing writes the original any more.
      const last = `(SELECT ps.last_value FROM pg_sequences ps WHERE ps.schemaname = ${quoteLiteral(s.seqschema)} AND ps.sequencename = ${quoteLiteral(b.asideSeq.get(`${s.seqschema}.${s.seq}`)!)})`;
      const pre = preMax.get(col);
      const max = !preMax.has(col) || indexServesMax(f, col) ? `(SELECT max(${quoteIdent(col)})::bigint FROM ${tbl})` : pre === null || pre === undefined ? 'NULL::bigint' : `${quoteLiteral(pre)}::bigint`;
      sql.push(`SELECT setval(${quoteLiteral(quoteQualified(schema, s.seq))}::regclass, greatest(coalesce(${last}, 1), ${max}, 1))`);
    }
  }
}

/** 5. Owner, grants (exactly the original's), comment, RLS, replica identity. */
function ownerGrantsAndSecurity(b: Build): void {
  const { f, sql, tbl } = b;
  const m = f.meta!;
  sql.push(`ALTER TABLE ${tbl} OWNER TO ${quoteIdent(m.owner)}`);
  // The shadow may have picked up grants from ALTER DEFAULT PRIVILEGES: start from
  // nothing but the owner, then grant exactly what the original had. A NULL ACL on the
  // original means the owner's default privileges only.
  for (const g of f.shadowAcl) {
    if (g.grantee === m.owner) continue;
    sql.push(`REVOKE ALL ON ${tbl} FROM ${grantee(g.grantee)}`);
  }
  if (m.relacl === null) {
    if (f.shadowAcl.length) sql.push(`GRANT ALL ON ${tbl} TO ${quoteIdent(m.owner)}`);
  } else {
    sql.push(`REVOKE ALL ON ${tbl} FROM ${quoteIdent(m.owner)}`);
  }
  for (const g of f.grants) sql.push(grantSql(g, tbl));
  for (const g of f.colGrants) {
    const col = b.colMap.get(g.col);
    if (col === undefined) continue;
    sql.push(grantSql(g, tbl, col));
  }
  sql.push(`COMMENT ON TABLE ${tbl} IS ${m.descr === null ? 'NULL' : quoteLiteral(m.descr)}`);
  for (const p of f.policies) {
    // A revert's shadow is an old table that still has its policies: the live table's replace them.
    if (b.names.extra.revert) sql.push(`DROP POLICY IF EXISTS ${quoteIdent(p.name)} ON ${tbl}`);
    const cmd = { r: 'SELECT', a: 'INSERT', w: 'UPDATE', d: 'DELETE', '*': 'ALL' }[p.cmd] ?? 'ALL';
    sql.push(
      `CREATE POLICY ${quoteIdent(p.name)} ON ${tbl} AS ${p.permissive === 'true' ? 'PERMISSIVE' : 'RESTRICTIVE'} FOR ${cmd} TO ${p.roles}` +
        (p.qual ? ` USING (${p.qual})` : '') + (p.check ? ` WITH CHECK (${p.check})` : ''),
    );
  }
  if (m.rls === 'true') sql.push(`ALTER TABLE ${tbl} ENABLE ROW LEVEL SECURITY`);
  if (m.force === 'true') sql.push(`ALTER TABLE ${tbl} FORCE ROW LEVEL SECURITY`);
  if (m.replident === 'f') sql.push(`ALTER TABLE ${tbl} REPLICA IDENTITY FULL`);
  else if (m.replident === 'n') sql.push(`ALTER TABLE ${tbl} REPLICA IDENTITY NOTHING`);
  else if (m.replident === 'i' && f.replIndex !== null) {
    const orig0 = f.oIdx.find((o) => o.name === f.replIndex);
    if (orig0 && b.matched.has(orig0.name)) sql.push(`ALTER TABLE ${tbl} REPLICA IDENTITY USING INDEX ${quoteIdent(orig0.name)}`);
  }
}

/**
 * 6. Foreign keys this table declares (LIKE does not copy them): added NOT VALID
 *    under the lock, validated after commit. The old table gives them up right after
 *    the commit (SwapSql.afterCommit): nothing writes it any more, and its rows as of
 *    the swap must not hold the parents (a parent's legal DELETE would fail on them,
 *    or cascade into them).
 */
function declaredForeignKeys(b: Build): void {
  const { f, tbl, mapCol } = b;
  const backup = quoteQualified(b.schema, b.names.backup);
  for (const fk of f.childFks) {
    b.afterCommit.push(`ALTER TABLE ${backup} DROP CONSTRAINT IF EXISTS ${quoteIdent(fk.name)}`);
    // A revert's shadow is an old table: one whose drop after its own swap never got its lock still
    // declares the key. Renamed aside here (no lock on the parent), dropped after the commit.
    if (f.shadowFks.some((c) => c.conname === fk.name)) {
      const aside = truncateBytes(`_ss_${b.names.extra.tag ?? jobTag(b.names.shadow)}_fk_${fk.name}`, 63);
      b.sql.push(`ALTER TABLE ${tbl} RENAME CONSTRAINT ${quoteIdent(fk.name)} TO ${quoteIdent(aside)}`);
      b.afterCommit.push(`ALTER TABLE ${tbl} DROP CONSTRAINT IF EXISTS ${quoteIdent(aside)}`);
    }
    const cols = parseArrayText(fk.cols).map((x) => quoteIdent(mapCol(x))).join(', ');
    const refcols = parseArrayText(fk.refcols).map((x) => quoteIdent(fk.refoid === f.o ? mapCol(x) : x)).join(', ');
    b.sql.push(`ALTER TABLE ${tbl} ADD CONSTRAINT ${quoteIdent(fk.name)} FOREIGN KEY (${cols}) REFERENCES ${fk.ref} (${refcols}) ${fk.tail ?? ''} NOT VALID`);
    if (fk.validated === 'true') b.validate.push({ schema: b.schema, table: b.origName, name: fk.name, def: '' });
  }
}

/** 7. Foreign keys of other tables that point here: re-pointed to the new table. */
function referencingForeignKeys(b: Build): void {
  for (const fk of b.f.parentFks) {
    const refcols = parseArrayText(fk.refcols).map((x) => quoteIdent(b.mapCol(x))).join(', ');
    const child = quoteQualified(fk.schema, fk.table);
    b.sql.push(`ALTER TABLE ${child} DROP CONSTRAINT ${quoteIdent(fk.name)}`);
    const cols = parseArrayText(fk.cols).map(quoteIdent).join(', ');
    b.sql.push(`ALTER TABLE ${child} ADD CONSTRAINT ${quoteIdent(fk.name)} FOREIGN KEY (${cols}) REFERENCES ${b.tbl} (${refcols}) ${fk.tail ?? ''} NOT VALID`);
    b.validate.push({ schema: fk.schema, table: fk.table, name: fk.name, def: '' });
  }
}

/**
 * 8. Publications of the user (not FOR ALL TABLES, not ours) that include the
 *    original now include the new table, with the same column list and row filter.
 */
function publications(b: Build): void {
  for (const pub of b.f.pubs) {
    const cols = pub.cols ? ` (${parseArrayText(pub.cols).map((x) => quoteIdent(b.mapCol(x))).join(', ')})` : '';
    b.sql.push(`ALTER PUBLICATION ${quoteIdent(pub.name)} DROP TABLE ${quoteQualified(b.schema, b.names.backup)}`);
    b.sql.push(`ALTER PUBLICATION ${quoteIdent(pub.name)} ADD TABLE ${b.tbl}${cols}${pub.qual ? ` WHERE (${pub.qual})` : ''}`);
  }
}

/** 9. Triggers (definitions name the table as it was called: now the new one). */
function triggers(b: Build): void {
  for (const t of b.f.triggers) {
    // A revert's shadow is an old table that still has its triggers (disabled): the live table's replace them.
    if (b.names.extra.revert) b.sql.push(`DROP TRIGGER IF EXISTS ${quoteIdent(t.name)} ON ${b.tbl}`);
    b.sql.push(t.def);
    const mode = ({ D: 'DISABLE', R: 'ENABLE REPLICA', A: 'ENABLE ALWAYS' } as Record<string, string>)[t.enabled];
    if (mode) b.sql.push(`ALTER TABLE ${b.tbl} ${mode} TRIGGER ${quoteIdent(t.name)}`);
  }
}
