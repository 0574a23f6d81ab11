// The catalog facts a swap depends on: one query (one round trip) that returns them
// as one JSON document, read before the lock and again under it. The text as the
// server sent it is kept, so "did the catalog change meanwhile" is one string compare.

import type pg from 'pg';
import type { ArtefactNames, CopyPlan } from '../../dialect.js';
import { parseTextArray as parseArrayText } from '../postgres-inspector.js';
import { quoteQualified } from '../postgres-quote.js';

export interface AclFact {
  grantee: string | null;
  privilege: string;
  grantable: string;
}

export interface ViewFact {
  schema: string;
  name: string;
  def: string;
  options: string | null;
  owner: string;
  descr: string | null;
  acl: AclFact[];
}

export interface IndexFact {
  name: string;
  def: string;
  am: string;
  flags: string;
  cols: string;
  plain: string;
}

/** What the catalog says about the original and the shadow; `text` is the JSON as the server sent it (compared, never parsed twice). */
export interface Facts {
  text: string;
  o: string | null;
  s: string | null;
  views: ViewFact[];
  matviews: Array<{ name: string }>;
  triggers: Array<{ name: string; def: string; enabled: string }>;
  childFks: Array<{ name: string; cols: string; ref: string; refoid: string; refcols: string; tail: string | null; validated: string }>;
  parentFks: Array<{ schema: string; table: string; name: string; cols: string; refcols: string; tail: string | null }>;
  meta: { owner: string; relacl: string | null; rls: string; force: string; replident: string; descr: string | null } | null;
  grants: AclFact[];
  colGrants: Array<AclFact & { col: string }>;
  policies: Array<{ name: string; permissive: string; cmd: string; roles: string; qual: string | null; check: string | null }>;
  pubs: Array<{ name: string; cols: string | null; qual: string | null }>;
  replIndex: string | null;
  oIdx: IndexFact[];
  sIdx: IndexFact[];
  seqs: Array<{ seq: string; seqschema: string; col: string; deptype: string }>;
  shadowIdentitySeqs: Array<{ seq: string; col: string }>;
  shadowAcl: Array<{ grantee: string | null }>;
  shadowCons: Array<{ conname: string }>;
  /** Foreign keys the shadow declares: a revert's shadow is an old table whose own drop after its swap may not have run. */
  shadowFks: Array<{ conname: string }>;
  /** Which of the queried candidate names for new indexes already exist in the schema. */
  taken: Array<{ relname: string }>;
}

const O = '(SELECT o FROM ids)';
const S = '(SELECT s FROM ids)';
const list = (sql: string) => `coalesce((SELECT json_agg(q) FROM (${sql}) q), '[]'::json)`;
const one = (sql: string) => `(SELECT row_to_json(q) FROM (${sql}) q)`;
const aclJson = (acl: string) =>
  `coalesce((SELECT json_agg(json_build_object('grantee', CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END, 'privilege', a.privilege_type, 'grantable', a.is_grantable::text)) FROM aclexplode(${acl}) a), '[]'::json)`;
const ARRAY_OF = (keys: string, rel: string) =>
  `(SELECT array_agg(a.attname ORDER BY k.i) FROM unnest(${keys}) WITH ORDINALITY k(n, i) JOIN pg_attribute a ON a.attrelid = ${rel} AND a.attnum = k.n)::text`;
const FK_TAIL = `substring(pg_get_constraintdef(con.oid) from '\\)\\s*(MATCH.*|ON.*|DEFERRABLE.*|NOT DEFERRABLE.*)?$')`;
// An index's definition without its own and its table's name (the part from USING on).
const INDEXES = (rel: string) =>
  list(`SELECT ic.relname AS name,
                (CASE WHEN i.indisunique THEN 'UNIQUE ' ELSE '' END) || substring(pg_get_indexdef(i.indexrelid) from position(' USING ' in pg_get_indexdef(i.indexrelid)) + 1) AS def,
                am.amname AS am, (i.indisunique::text || i.indisprimary::text) AS flags,
                ARRAY(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY k(n, o) JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n ORDER BY k.o)::text AS cols,
                (i.indexprs IS NULL AND i.indpred IS NULL AND NOT (0 = ANY (i.indkey)))::text AS plain
           FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam
          WHERE i.indrelid = ${rel} ORDER BY i.indisprimary DESC, ic.oid`);

/**
 * Every catalog fact the swap depends on, as one JSON document, every list in a fixed
 * order (so the same catalog gives the same text). $1 original, $2 shadow (quoted,
 * qualified), $3 schema, $4 candidate names for new indexes.
 */
const FACTS_SQL = `WITH ids AS (
  SELECT (SELECT c.oid FROM pg_class c WHERE c.oid = to_regclass($1::text) AND c.relkind IN ('r','p')) AS o,
         (SELECT c.oid FROM pg_class c WHERE c.oid = to_regclass($2::text) AND c.relkind IN ('r','p')) AS s)
SELECT json_build_object(
  'o', (SELECT o::text FROM ids),
  's', (SELECT s::text FROM ids),
  'views', ${list(`SELECT vn.nspname AS schema, v.relname AS name, pg_get_viewdef(v.oid) AS def, array_to_string(v.reloptions, ',') AS options,
                          pg_get_userbyid(v.relowner) AS owner, obj_description(v.oid, 'pg_class') AS descr, ${aclJson('v.relacl')} AS acl
                     FROM pg_class v JOIN pg_namespace vn ON vn.oid = v.relnamespace
                    WHERE v.relkind = 'v' AND v.oid <> ${O}
                      AND v.oid IN (SELECT rw.ev_class FROM pg_depend d JOIN pg_rewrite rw ON rw.oid = d.objid WHERE d.classid = 'pg_rewrite'::regclass AND d.refobjid = ${O})
                    ORDER BY v.oid`)},
  'matviews', ${list(`SELECT DISTINCT v.relname AS name FROM pg_depend d JOIN pg_rewrite rw ON rw.oid = d.objid JOIN pg_class v ON v.oid = rw.ev_class
                       WHERE d.classid = 'pg_rewrite'::regclass AND d.refobjid = ${O} AND v.relkind = 'm' ORDER BY 1`)},
  'triggers', ${list(`SELECT tgname AS name, pg_get_triggerdef(oid) AS def, tgenabled::text AS enabled FROM pg_trigger WHERE tgrelid = ${O} AND NOT tgisinternal ORDER BY tgname`)},
  'childFks', ${list(`SELECT con.conname AS name, ${ARRAY_OF('con.conkey', 'con.conrelid')} AS cols,
                             con.confrelid::regclass::text AS ref, con.confrelid::text AS refoid, ${ARRAY_OF('con.confkey', 'con.confrelid')} AS refcols,
                             ${FK_TAIL} AS tail, con.convalidated::text AS validated
                        FROM pg_constraint con WHERE con.conrelid = ${O} AND con.contype = 'f' ORDER BY con.conname`)},
  'parentFks', ${list(`SELECT n.nspname AS schema, ch.relname AS table, con.conname AS name, ${ARRAY_OF('con.conkey', 'con.conrelid')} AS cols,
                              ${ARRAY_OF('con.confkey', 'con.confrelid')} AS refcols, ${FK_TAIL} AS tail
                         FROM pg_constraint con JOIN pg_class ch ON ch.oid = con.conrelid JOIN pg_namespace n ON n.oid = ch.relnamespace
                        WHERE con.confrelid = ${O} AND con.contype = 'f' AND con.conrelid <> ${O} ORDER BY 1, 2, 3`)},
  'meta', ${one(`SELECT pg_get_userbyid(relowner) AS owner, relacl::text AS relacl, relrowsecurity::text AS rls, relforcerowsecurity::text AS force,
                        relreplident::text AS replident, obj_description(oid, 'pg_class') AS descr
                   FROM pg_class WHERE oid = ${O}`)},
  'grants', ${list(`SELECT CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END AS grantee, a.privilege_type AS privilege, a.is_grantable::text AS grantable
                      FROM pg_class c, aclexplode(c.relacl) a WHERE c.oid = ${O}`)},
  'colGrants', ${list(`SELECT att.attname AS col, CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END AS grantee, a.privilege_type AS privilege, a.is_grantable::text AS grantable
                         FROM pg_attribute att, aclexplode(att.attacl) a
                        WHERE att.attrelid = ${O} AND att.attnum > 0 AND NOT att.attisdropped AND att.attacl IS NOT NULL
                        ORDER BY att.attnum, 2, 3, 4`)},
  'policies', ${list(`SELECT polname AS name, polpermissive::text AS permissive, polcmd::text AS cmd,
                             CASE WHEN polroles = '{0}' THEN 'PUBLIC' ELSE (SELECT string_agg(quote_ident(pg_get_userbyid(r)), ', ') FROM unnest(polroles) r) END AS roles,
                             pg_get_expr(polqual, polrelid) AS qual, pg_get_expr(polwithcheck, polrelid) AS check
                        FROM pg_policy WHERE polrelid = ${O} ORDER BY polname`)},
  'pubs', ${list(`SELECT p.pubname AS name,
                         (SELECT array_agg(a.attname ORDER BY a.attnum) FROM pg_attribute a WHERE a.attrelid = pr.prrelid AND a.attnum = ANY (pr.prattrs))::text AS cols,
                         pg_get_expr(pr.prqual, pr.prrelid) AS qual
                    FROM pg_publication_rel pr JOIN pg_publication p ON p.oid = pr.prpubid
                   WHERE pr.prrelid = ${O} AND p.pubname NOT LIKE '\\_ss\\_%' ORDER BY p.pubname`)},
  'replIndex', (SELECT ic.relname FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid WHERE i.indrelid = ${O} AND i.indisreplident LIMIT 1),
  'oIdx', ${INDEXES(O)},
  'sIdx', ${INDEXES(S)},
  'seqs', ${list(`SELECT s.relname AS seq, sn.nspname AS seqschema, a.attname AS col, d.deptype::text AS deptype
                    FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S' JOIN pg_namespace sn ON sn.oid = s.relnamespace
                    JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                   WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass AND d.refobjid = ${O} AND d.deptype IN ('a','i')
                   ORDER BY s.oid`)},
  'shadowIdentitySeqs', ${list(`SELECT s.relname AS seq, a.attname AS col FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
                                  JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                                 WHERE d.classid = 'pg_class'::regclass AND d.refobjid = ${S} AND d.deptype = 'i' ORDER BY s.oid`)},
  'shadowAcl', ${list(`SELECT DISTINCT CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END AS grantee FROM pg_class c, aclexplode(c.relacl) a WHERE c.oid = ${S} ORDER BY 1`)},
  'shadowCons', ${list(`SELECT conname FROM pg_constraint WHERE conrelid = ${S} AND conindid = 0 ORDER BY 1`)},
  'shadowFks', ${list(`SELECT conname FROM pg_constraint WHERE conrelid = ${S} AND contype = 'f' ORDER BY 1`)},
  'taken', ${list(`SELECT relname FROM pg_class WHERE relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = $3::text) AND relname = ANY ($4::text[]) ORDER BY 1`)}
)::text AS facts`;

/** Every catalog fact the swap depends on, in one query (one round trip), as JSON. */
export async function readFacts(c: pg.Client, plan: CopyPlan, names: ArtefactNames, candidates: string[]): Promise<Facts> {
  const schema = plan.original.ref.schema;
  const r = await c.query<{ facts: string }>(FACTS_SQL, [quoteQualified(schema, plan.original.ref.name), quoteQualified(schema, names.shadow), schema, candidates]);
  const text = r.rows[0]!.facts;
  return { ...(JSON.parse(text) as Omit<Facts, 'text'>), text };
}

/** A btree index of the new table leads with `col` (no expression, no predicate): max(col) is one index probe. */
export function indexServesMax(f: Facts, col: string): boolean {
  return f.sIdx.some((sh) => sh.am === 'btree' && sh.plain === 'true' && parseArrayText(sh.cols)[0] === col);
}
