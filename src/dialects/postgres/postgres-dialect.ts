// The PostgreSQL dialect: one session per job, wiring the role files together.

import pg from 'pg';
import type {
  AlterAnalysis, ArtefactLeft, ArtefactNames, ChangeStream, CopyPlan, DialectFactory, DialectSession, Leftover, LoadProbes, ObservedWait,
  PreflightCheck, ServerInfo, StreamPosition, StreamPositionProblem, TableInfo, TableRef,
} from '../dialect.js';
import type { ConnectionConfig } from '../../util/connection-url.js';
import type { Logger } from '../../util/logger.js';
import { ShadowshiftError } from '../../util/errors.js';
import { clientConfigFor, noteConnectFailure, retryEndedConnections, trackSession, type PgContext } from './postgres-context.js';
import { observeWaits } from './postgres-waits.js';
import { quoteIdent } from './postgres-quote.js';
import { inspectTable, loadVisibleTables, resolveTableName } from './postgres-inspector.js';
import { analyzeAlter } from './postgres-alter-analysis.js';
import { postgresArtefactNames } from './postgres-names.js';
import { jobIndexNames, namedIndexes } from './postgres-index-names.js';
import { PostgresJobLocks } from './postgres-job-lock.js';
import { previewShadow, createShadow, dropArtefacts } from './postgres-shadow.js';
import { PostgresChangeStream } from './postgres-change-stream.js';
import { keptSlotProblem, readKeptSlot } from './postgres-slot.js';
import { PostgresCopier } from './postgres-copier.js';
import { PostgresApplier } from './postgres-applier.js';
import { PostgresCutover } from './cutover/swap-transaction.js';
import { listLeftovers, removeLeftover, endStoppedRun } from './postgres-leftovers.js';
import { postgresChecks } from './checks/index.js';
import { PostgresChecksummer } from './postgres-checksum.js';
import { PostgresRevertSupport } from './postgres-revert.js';
import { PostgresCheckpointStore } from './postgres-checkpoints.js';
import { PostgresProbes } from './postgres-probes.js';
import { finishShadow } from './postgres-deferred-indexes.js';
import { holdVacuumGuard, releaseVacuumGuard } from './postgres-vacuum-guard.js';
import { ShadowReads } from './postgres-original-reads.js';

export class PostgresSession implements DialectSession {
  readonly name = 'postgres' as const;
  readonly columnNamesIgnoreCase = false;
  /** The applier matches rows on a key the shadow holds unique on its own only. */
  readonly matchesByContainedKey = false;
  readonly streamHoldsServerLog = true;
  readonly copier: PostgresCopier;
  readonly applier: PostgresApplier;
  readonly cutover: PostgresCutover;
  readonly checksummer: PostgresChecksummer;
  readonly revert: PostgresRevertSupport;
  readonly checkpoints: PostgresCheckpointStore;
  private readonly locks: PostgresJobLocks;
  private readonly streams = new Set<ChangeStream>();

  constructor(
    readonly ctx: PgContext,
    readonly server: ServerInfo,
    private readonly searchPath: string[],
    private readonly visible: Map<string, string>,
  ) {
    this.copier = new PostgresCopier(ctx);
    this.applier = new PostgresApplier(ctx);
    this.cutover = new PostgresCutover(ctx);
    this.checksummer = new PostgresChecksummer(ctx);
    this.revert = new PostgresRevertSupport(ctx);
    this.checkpoints = new PostgresCheckpointStore(ctx);
    this.locks = new PostgresJobLocks(ctx);
  }

  quoteIdentifier(name: string): string {
    return quoteIdent(name);
  }

  resolveTable(name: string): TableRef {
    return resolveTableName(name, this.searchPath, this.visible);
  }

  inspectTable(ref: TableRef): Promise<TableInfo | null> {
    return inspectTable(this.ctx.pool, ref);
  }

  analyzeAlter(alter: string): AlterAnalysis {
    return { ...analyzeAlter(alter), namedIndexes: namedIndexes(alter) };
  }

  preflightChecks(): PreflightCheck[] {
    return postgresChecks(this.ctx);
  }

  artefactNames(table: TableRef, jobId: string, options?: { resumable?: boolean; alter?: string }): ArtefactNames {
    const names = postgresArtefactNames(table, jobId, options);
    const indexNames = options?.alter ? jobIndexNames(options.alter, names.extra.tag!) : null;
    return indexNames ? { ...names, extra: { ...names.extra, ...indexNames } } : names;
  }

  acquireJobLock(table: TableRef): Promise<void> {
    return this.locks.acquire(table);
  }

  releaseJobLock(table: TableRef): Promise<void> {
    return this.locks.release(table);
  }

  /**
   * Rejects with a ShadowshiftError when the job lock of `table` is lost for good — its connection ended (pg_terminate_backend,
   * restart) and it could not be taken again, or another job took it meanwhile. A lost
   * connection alone is repaired silently (the lock is taken again on a new one).
   * Race it against the job's work like ChangeStream.failed.
   */
  jobLockLost(table: TableRef): Promise<never> {
    return this.locks.lost(table);
  }

  /** Callback form of jobLockLost(); returns a function that unregisters it. */
  onJobLockLost(listener: (table: TableRef, err: Error) => void): () => void {
    return this.locks.onLost(listener);
  }

  /** The job locks themselves (tests). */
  get jobLocks(): PostgresJobLocks {
    return this.locks;
  }

  previewShadow(original: TableInfo, alter: string): Promise<TableInfo> {
    return previewShadow(this.ctx, original, alter);
  }

  /** `deferIndexes`: see postgres-deferred-indexes.ts. Autovacuum is kept off the new shadow from here on (postgres-vacuum-guard.ts). */
  async createShadow(original: TableInfo, alter: string, names: ArtefactNames, options?: { deferIndexes?: boolean }): Promise<TableInfo> {
    const shadow = await createShadow(this.ctx, original, alter, { ...names, extra: { ...names.extra, schema: names.extra.schema ?? original.ref.schema } }, options);
    await holdVacuumGuard(this.ctx, shadow.ref);
    return shadow;
  }

  async finishShadow(shadow: TableRef, options?: { signal?: AbortSignal }): Promise<TableInfo> {
    await finishShadow(this.ctx, shadow, options?.signal);
    await holdVacuumGuard(this.ctx, shadow);
    const info = await inspectTable(this.ctx.pool, shadow);
    if (!info) throw new ShadowshiftError(`the shadow table ${shadow.name} is gone`);
    return info;
  }

  async dropArtefacts(names: ArtefactNames, opts: { keepBackup: boolean; keepShadow?: boolean; keepStream?: boolean; lockTimeoutMs?: number }): Promise<ArtefactLeft[]> {
    await releaseVacuumGuard(this.ctx);
    return dropArtefacts(this.ctx, names, opts);
  }

  openChangeStream(plan: CopyPlan, names: ArtefactNames, jobId: string, options?: { exportCopySnapshot?: boolean }): ChangeStream {
    const slot = names.extra.slot;
    if (!slot) throw new ShadowshiftError('artefact names carry no replication slot name');
    const stream = new PostgresChangeStream(this.ctx, plan, {
      slot,
      publication: names.changelog,
      markerPrefix: `shadowshift:${names.extra.tag ?? jobId}`,
      exportCopySnapshot: options?.exportCopySnapshot,
    });
    this.streams.add(stream);
    const stop = stream.stop.bind(stream);
    stream.stop = async (options?: { keepForResume?: boolean }) => {
      this.streams.delete(stream);
      await stop(options);
    };
    return stream;
  }

  openProbes(names: ArtefactNames): LoadProbes {
    return new PostgresProbes(this.ctx, names);
  }

  observeWaits(): Promise<ObservedWait | null> {
    return observeWaits(this.ctx);
  }

  listLeftovers(): Promise<Leftover[]> {
    return listLeftovers(this.ctx);
  }

  removeLeftover(item: Leftover): Promise<void> {
    return removeLeftover(this.ctx, item);
  }

  endStoppedRun(names: ArtefactNames, table: TableRef): Promise<number[]> {
    return endStoppedRun(this.ctx, names, table);
  }

  async streamPositionProblem(position: StreamPosition, names: ArtefactNames): Promise<StreamPositionProblem | null> {
    const slot = names.extra.slot;
    if (!slot) return null;
    const state = await readKeptSlot(this.ctx.pool, slot, names.changelog);
    return keptSlotProblem(state, { shadow: names.shadow, slot, publication: names.changelog }, position);
  }

  async close(): Promise<void> {
    // Never leave a slot behind: a stream still open is stopped (and its slot dropped).
    for (const s of [...this.streams]) await s.stop().catch((err) => this.ctx.log.warn({ err: (err as Error).message }, 'stopping change stream'));
    await this.applier.close();
    await releaseVacuumGuard(this.ctx);
    await this.locks.releaseAll();
    await this.ctx.pool.end();
  }
}

export const postgresDialect: DialectFactory = {
  async open(config: ConnectionConfig, log: Logger): Promise<DialectSession> {
    const clientConfig = clientConfigFor(config);
    const pool = new pg.Pool({ ...clientConfig, max: 6, idleTimeoutMillis: 30_000 });
    pool.on('error', (err) => log.warn({ err: err.message }, 'idle PostgreSQL connection error'));
    // A client checked out of the pool (the applier keeps one between batches) has no
    // pool listener: a connection ended by the server (pg_terminate_backend, restart)
    // would emit an unhandled 'error'. Every pool client gets one for its whole life;
    // the failed query itself still rejects, and the pool discards the broken client.
    const sessions = new Set<number>();
    pool.on('connect', (client) => {
      client.on('error', (err) => log.warn({ err: err.message }, 'PostgreSQL connection error'));
      trackSession({ sessions }, client);
    });
    retryEndedConnections(pool, log);
    const ctx: PgContext = { pool, config, clientConfig, log, reads: new ShadowReads(), sessions, serverAway: new Set() };
    // Every checkout that cannot connect is a transient failure, also where connect() sits
    // outside a statement's own error handling; a refusal is passed on (noteConnectFailure).
    type Callback = (err: Error | undefined, client?: pg.PoolClient, done?: (release?: unknown) => void) => void;
    const connect = pool.connect.bind(pool) as (cb?: Callback) => Promise<pg.PoolClient> | void;
    (pool as unknown as { connect: (cb?: Callback) => Promise<pg.PoolClient> | void }).connect = (cb?: Callback) => {
      // pool.query() checks out with a callback and reports the error itself.
      if (cb) return connect((err, client, done) => (err && noteConnectFailure(ctx, err), cb(err, client, done)));
      return (connect() as Promise<pg.PoolClient>).catch((err: unknown) => Promise.reject(noteConnectFailure(ctx, err)));
    };
    try {
      const v = await pool.query<{ v: string }>(`SELECT current_setting('server_version') AS v`);
      const server: ServerInfo = { dialect: 'postgres', version: v.rows[0]!.v.split(' ')[0]!, flavor: 'postgres' };
      const { searchPath, visible } = await loadVisibleTables(pool);
      return new PostgresSession(ctx, server, searchPath, visible);
    } catch (err) {
      await pool.end().catch(() => undefined);
      throw new ShadowshiftError(`cannot connect to PostgreSQL at ${config.redacted}: ${(err as Error).message}`, { cause: err });
    }
  },
};
