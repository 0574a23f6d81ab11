// Cut-over: one transaction that write-locks the original, lets the engine drain the
// stream up to a marker, and swaps the tables by renaming, carrying everything LIKE
// does not copy. A waiting client query resolves the table name again after it gets
// its lock (PostgreSQL re-checks name lookups when invalidations arrive while it
// waits), so it lands in the new table: no client ever sees the name missing.
//
// Application writes queue from the moment the lock is requested until COMMIT, so the
// work under it is kept short: every catalog fact the swap needs is read (one query)
// and turned into statements before the lock. Under the lock the same query runs again
// while the engine drains, and when its answer is unchanged (it usually is: the lock
// keeps DDL out; a GRANT, which takes no lock on the table, is the exception) the
// prepared statements and the COMMIT go to the server in one round trip. A changed
// answer builds the statements again from it, under the lock. Nothing under the lock
// scans a table: max() of an identity column is read there only when an index serves
// it. Measured (bench/RESULTS.md workload, 300 ops/s): the original locked 450-480 ms
// before, about 20 ms after (most of the old time was the marker's commit waiting for
// the WAL writer; see writeMarker in postgres-change-stream.ts).
//
// The parts: catalog-facts.ts (the one query), swap-statements.ts (the statements,
// one function a step), views.ts (dependent views); this file drives the transaction.

import type pg from 'pg';
import type { ArtefactNames, CopyPlan, Cutover, CutoverOptions, CutoverTiming, ForeignKeyViolation, SnapshotFence } from '../../dialect.js';
import { dedicatedClient, type PgContext } from '../postgres-context.js';
import { isTransient, pgCode } from '../postgres-errors.js';
import { RetryBudget, backoffMs } from '../../../util/reconnect.js';
import { finishShadow } from '../postgres-deferred-indexes.js';
import { holdVacuumGuard, releaseVacuumGuard } from '../postgres-vacuum-guard.js';
import { checkShadowDefinitions } from '../postgres-definitions.js';
import { snapshotFence } from '../postgres-snapshot-wait.js';
import { foreignKeyViolations } from '../postgres-fk-check.js';
import { CUTOVER_APPLICATION_NAME } from '../postgres-names.js';
import { quoteIdent, quoteQualified } from '../postgres-quote.js';
import { CutoverAttemptError, ShadowshiftError } from '../../../util/errors.js';
import { indexServesMax, readFacts, type Facts } from './catalog-facts.js';
import { buildSwap, identityColumns, nameCandidates, type FkFrom, type SwapSql } from './swap-statements.js';
import { repointView } from './views.js';
import { pgLockBlockers } from './lock-blockers.js';
import type { Logger } from '../../../util/logger.js';

const RETRYABLE = new Set(['55P03', '40P01', '57014', '40001']);

interface Prepared {
  facts: Facts;
  /** The candidate names whose existence `facts.taken` answers. */
  candidates: string[];
  /** max() of identity columns without a usable index, read before the lock. */
  preMax: Map<string, string | null>;
  swap: SwapSql;
}

export class PostgresCutover implements Cutover {
  constructor(private readonly ctx: PgContext) {}

  /** See postgres-snapshot-wait.ts: a snapshot older than the new table's rows reads it empty. */
  snapshotFence(): Promise<SnapshotFence> {
    return snapshotFence(this.ctx);
  }

  /** See postgres-fk-check.ts: the swap validates foreign keys only after its COMMIT. */
  foreignKeyViolations(plan: CopyPlan, names: ArtefactNames, recheck?: ForeignKeyViolation[]): Promise<ForeignKeyViolation[]> {
    return foreignKeyViolations(this.ctx, plan, names, recheck);
  }

  async swap(plan: CopyPlan, names: ArtefactNames, options: CutoverOptions): Promise<CutoverTiming> {
    const entered = Date.now();
    // Never swap in a shadow whose deferred indexes are not built, or that enforces
    // other constraints than the ALTER asked for (before any lock).
    const shadowRef = { schema: plan.original.ref.schema, name: names.shadow };
    await finishShadow(this.ctx, shadowRef);
    await checkShadowDefinitions(this.ctx.pool, shadowRef, plan.original.ref.name, options.expectedShadow);
    const c = await dedicatedClient(this.ctx, CUTOVER_APPLICATION_NAME);
    let validate: FkFrom[] = [];
    let afterCommit: string[] = [];
    let newName = '';
    let committing = false;
    // When the lock was requested; application writes queue from here until COMMIT.
    let started = 0;
    let lockedMs = 0;
    let afterSwap: string | undefined;
    try {
      // Everything the swap needs is read and turned into statements before the lock
      // (a dependent object we cannot carry fails the job here, before anything waits).
      const prepared = await this.prepareSwap(c, plan, names);
      // The vacuum guard goes first (postgres-vacuum-guard.ts): a VACUUM queued behind it
      // holds a snapshot, which the wait for older snapshots would wait for in turn.
      await releaseVacuumGuard(this.ctx);
      // The engine's last step before the lock (it waits for older snapshots there, applying
      // the stream): nothing slow may come between it and the lock request.
      await options.beforeLock?.();
      await c.query(
        `BEGIN; SET LOCAL lock_timeout = ${Math.max(1, Math.floor(options.lockTimeoutMs))}; ` +
          `SET LOCAL statement_timeout = ${Math.max(30_000, options.lockTimeoutMs * 5)}; ` +
          `SET LOCAL idle_in_transaction_session_timeout = ${Math.max(60_000, options.lockTimeoutMs * 30)}`,
      );
      const orig = quoteQualified(plan.original.ref.schema, plan.original.ref.name);
      // Dependent views and tables with foreign keys to the original are changed under
      // the lock too. Lock them first, in one statement: a client that reads a view holds
      // the view while it waits for the original, so locking the original first would
      // deadlock with it (seen in the cut-over test: the client got 40P01).
      const others = await c.query<{ rel: string }>(
        `SELECT DISTINCT quote_ident(n.nspname) || '.' || quote_ident(v.relname) AS rel, 1 AS o
           FROM pg_depend d JOIN pg_rewrite rw ON rw.oid = d.objid JOIN pg_class v ON v.oid = rw.ev_class JOIN pg_namespace n ON n.oid = v.relnamespace
          WHERE d.classid = 'pg_rewrite'::regclass AND d.refobjid = $1::regclass AND v.oid <> $1::regclass AND v.relkind = 'v'
         UNION
         SELECT DISTINCT quote_ident(n.nspname) || '.' || quote_ident(ch.relname), 2
           FROM pg_constraint con JOIN pg_class ch ON ch.oid = con.conrelid JOIN pg_namespace n ON n.oid = ch.relnamespace
          WHERE con.confrelid = $1::regclass AND con.contype = 'f' AND con.conrelid <> $1::regclass
         ORDER BY 2, 1`,
        [orig],
      );
      // Where the time goes: the wait for vacuums (nothing queues behind it), then from the
      // lock request (application writes queue behind it from here) to COMMIT.
      const steps: Record<string, number> = {};
      let t0 = performance.now();
      const mark = (k: string) => {
        const n = performance.now();
        steps[k] = Math.round(n - t0);
        t0 = n;
      };
      // First, without blocking anyone: a (auto)vacuum or analyze of the shadow or the
      // original holds SHARE UPDATE EXCLUSIVE, which the swap's ACCESS EXCLUSIVE waits for;
      // an autovacuum worker is cancelled only after deadlock_timeout (1 s by default), so
      // that wait, under the original's lock, stalled every application write for 1 s (seen
      // twice in bench/RESULTS.md runs: the COMMIT step 1006 ms, right after the copy had
      // filled the shadow). Holding this mode keeps autovacuum off both tables (it does not
      // wait for locks) and lets the application's reads and writes through.
      // --kill-blockers-after watches both waits.
      const shadow = quoteQualified(plan.original.ref.schema, names.shadow);
      const blockers = options.killBlockers ? await pgLockBlockers(this.ctx, c) : null;
      const watch = blockers && options.killBlockers?.watch(blockers);
      try {
        await c.query(`LOCK TABLE ${shadow}, ${orig} IN SHARE UPDATE EXCLUSIVE MODE`);
        mark('vacuumWait');
        started = Date.now();
        await c.query(`LOCK TABLE ${[...others.rows.map((r) => r.rel), orig].join(', ')} IN ACCESS EXCLUSIVE MODE`);
      } finally {
        await watch?.stop();
        await blockers?.close();
      }
      mark('lockWait');
      // beforeLockMs: from entering swap() to the lock request; events committed meanwhile are drained under the lock.
      options.log.info({ table: plan.original.ref.name, beforeLockMs: started - entered, waitedMs: Date.now() - started }, 'original locked; draining');
      // While the engine drains the stream (other connections), this connection reads the
      // catalog again, now that the lock keeps DDL on the table out, in one query. Both
      // are awaited before anything else: the drain must never outlive the attempt.
      const [drained, reread] = await Promise.allSettled([options.drainUnderLock(), readFacts(c, plan, names, prepared.candidates)]);
      if (drained.status === 'rejected') throw drained.reason;
      if (reread.status === 'rejected') throw reread.reason;
      mark('drain');
      // Unchanged since the pre-read (the usual case): the prepared statements hold.
      // Otherwise build them again from what the catalog says now, under the lock.
      let swap = prepared.swap;
      if (reread.value.text !== prepared.facts.text) {
        options.log.info({ table: plan.original.ref.name }, 'the catalog changed between the pre-read and the lock; building the swap again under the lock');
        swap = (await this.prepareSwap(c, plan, names, { facts: reread.value, queried: prepared.candidates, preMax: prepared.preMax })).swap;
      }
      validate = swap.validate;
      afterCommit = swap.afterCommit;
      newName = plan.original.ref.name;
      // The last thing before COMMIT, under every lock the swap holds: each write to the
      // new table commits after this position, each of the applier's before it (a revert
      // point's start, seams/revert.ts).
      const position = 'SELECT pg_current_wal_insert_lsn()::text AS after_swap';
      let results: pg.QueryResult[];
      if (swap.views.length === 0) {
        // One round trip: every statement and the COMMIT. A dropped connection is
        // resolved by swapCommitted below, whichever statement it hit.
        committing = true;
        results = [await c.query(swap.statements.concat(position, 'COMMIT').join(';\n'))].flat() as pg.QueryResult[];
      } else {
        await c.query(swap.statements.join(';\n'));
        for (const v of swap.views) await repointView(c, v);
        const read = await c.query(position);
        committing = true;
        await c.query('COMMIT');
        results = [read];
      }
      afterSwap = results.find((r) => r.fields?.some((f) => f.name === 'after_swap'))?.rows[0]?.after_swap as string | undefined;
      mark('swapAndCommit');
      lockedMs = Date.now() - started;
      options.log.info({ table: plan.original.ref.name, lockedMs, steps, statements: swap.statements.length, catalogChanged: swap !== prepared.swap }, 'cut-over committed');
    } catch (err) {
      await c.query('ROLLBACK').catch(() => undefined);
      await c.end().catch(() => undefined);
      // The connection died during COMMIT: the swap may or may not have committed. Look.
      const committed = committing && isTransient(err) ? await this.swapCommitted(plan, names) : null;
      if (committed === true) {
        options.log.warn({ table: plan.original.ref.name, err: (err as Error).message }, 'the cut-over connection dropped during COMMIT, but the swap is committed');
        for (const statement of afterCommit) options.log.warn({ table: names.backup }, `the old table still declares a foreign key; drop it: ${statement}`);
        for (const fk of validate) {
          options.log.warn(
            { table: fk.table, constraint: fk.name },
            `foreign key left NOT VALID; validate it: ALTER TABLE ${quoteQualified(fk.schema, fk.table)} VALIDATE CONSTRAINT ${quoteIdent(fk.name)}`,
          );
        }
        // The commit's moment is unknown: up to now is an upper bound.
        return { lockedMs: Date.now() - started };
      }
      // Not swapped: the shadow waits for the next attempt, kept from autovacuum again.
      await holdVacuumGuard(this.ctx, shadowRef);
      // A dropped connection before COMMIT rolled the whole attempt back on the server.
      if (RETRYABLE.has(pgCode(err) ?? '') || (!committing && isTransient(err)) || committed === false) {
        throw new CutoverAttemptError(
          `cut-over attempt on ${plan.original.ref.name} gave up (${(err as Error).message}); everything is as it was before the attempt`,
          { cause: err },
        );
      }
      throw err;
    }
    // After the lock is gone: the old table gives up its foreign keys, validate re-pointed
    // ones (no blocking lock), and take statistics unless the shadow's were taken during the checksum.
    await runAfterCommit(c, afterCommit, options.log);
    try {
      for (const fk of validate) {
        await c.query(`ALTER TABLE ${quoteQualified(fk.schema, fk.table)} VALIDATE CONSTRAINT ${quoteIdent(fk.name)}`);
      }
      if (this.ctx.analyzedShadow !== names.shadow) await c.query(`ANALYZE ${quoteQualified(plan.original.ref.schema, newName)}`);
    } catch (err) {
      options.log.warn({ err: (err as Error).message }, 'after cut-over: validating foreign keys or ANALYZE failed; the swap itself is committed');
    } finally {
      await c.end().catch(() => undefined);
    }
    return { lockedMs, ...(afterSwap ? { afterSwap } : {}) };
  }

  /** After an ambiguous COMMIT: true when the shadow's name is gone and the backup exists (the swap committed). */
  private async swapCommitted(plan: CopyPlan, names: ArtefactNames): Promise<boolean> {
    const schema = plan.original.ref.schema;
    // Asked until the server answers: five times, and through a restart (util/reconnect.ts).
    const budget = new RetryBudget(5);
    for (let attempt = 1; ; attempt++) {
      try {
        const r = await this.ctx.pool.query<{ done: string }>(
          `SELECT (to_regclass($1) IS NULL AND to_regclass($2) IS NOT NULL)::text AS done`,
          [quoteQualified(schema, names.shadow), quoteQualified(schema, names.backup)],
        );
        return r.rows[0]?.done === 'true';
      } catch {
        if (!budget.retryAfter(attempt)) break;
        await new Promise((res) => setTimeout(res, backoffMs(attempt)));
      }
    }
    throw new ShadowshiftError(
      `the cut-over connection dropped during COMMIT and the server cannot be asked whether the swap committed: check whether ${names.shadow} still exists (not committed) or ${names.backup} exists (committed)`,
    );
  }

  /**
   * Reads the catalog facts the swap needs (before the lock; under it, `again` hands in
   * the facts just read), makes sure the free-name check covered every name the swap
   * may give a new index, and builds the statements. Before the lock it also reads
   * max() of identity columns no index serves.
   */
  private async prepareSwap(
    c: pg.Client,
    plan: CopyPlan,
    names: ArtefactNames,
    again?: { facts: Facts; queried: string[]; preMax: Map<string, string | null> },
  ): Promise<Prepared> {
    let queried = again?.queried ?? [];
    let facts = again?.facts ?? (await readFacts(c, plan, names, queried));
    const candidates = nameCandidates(plan, names, facts);
    if (candidates.some((n) => !queried.includes(n))) {
      queried = [...new Set([...queried, ...candidates])].sort();
      facts = await readFacts(c, plan, names, queried);
    }
    // The identity sequences continue past their last value and max(column). Under the
    // lock that max is read only when a btree index leads with the column (one probe);
    // otherwise the column is scanned here, before the lock, and an explicit value
    // written between this read and the lock is not seen. Without such an index the
    // column has no unique constraint of its own (a partial or multi-column one aside),
    // and the original's sequence would have handed out the same values.
    const preMax = new Map(again?.preMax ?? []);
    if (!again) {
      const shadow = quoteQualified(plan.original.ref.schema, names.shadow);
      for (const col of identityColumns(plan, facts)) {
        if (indexServesMax(facts, col)) continue;
        const r = await c.query<{ m: string | null }>(`SELECT max(${quoteIdent(col)})::bigint::text AS m FROM ${shadow}`);
        preMax.set(col, r.rows[0]?.m ?? null);
      }
    }
    return { facts, candidates: queried, preMax, swap: buildSwap(plan, names, facts, preMax) };
  }
}

/** Attempts at each after-commit statement, each waiting at most AFTER_COMMIT_LOCK_MS for its locks. */
const AFTER_COMMIT_ATTEMPTS = 5;
const AFTER_COMMIT_LOCK_MS = 200;

/**
 * SwapSql.afterCommit: each statement in a few short tries (a queued ACCESS EXCLUSIVE
 * holds up the parent's readers only as long as one try). One that never gets its lock
 * is left to the operator, said with the statement to run; the swap stands either way.
 */
async function runAfterCommit(c: pg.Client, statements: string[], log: Logger): Promise<void> {
  for (const statement of statements) {
    for (let attempt = 1; ; attempt++) {
      try {
        await c.query(`SET lock_timeout = ${AFTER_COMMIT_LOCK_MS}`);
        await c.query(statement);
        break;
      } catch (err) {
        if (pgCode(err) === '55P03' && attempt < AFTER_COMMIT_ATTEMPTS) {
          await new Promise((r) => setTimeout(r, AFTER_COMMIT_LOCK_MS * attempt));
          continue;
        }
        log.warn({ err: (err as Error).message }, `after cut-over: the old table still declares a foreign key, which holds its parent's rows; drop it: ${statement}`);
        break;
      }
    }
  }
  await c.query('RESET lock_timeout').catch(() => undefined);
}
