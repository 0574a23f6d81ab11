// The MySQL/MariaDB dialect: one session per job, wiring the role files together.

import type { RowDataPacket } from 'mysql2/promise';
import type {
  AlterAnalysis, ArtefactLeft, ArtefactNames, ChangeStream, CopyPlan, DialectFactory, DialectSession, Leftover, StreamPosition, StreamPositionProblem,
  LoadProbes, ObservedWait, PreflightCheck, ServerInfo, TableInfo, TableRef,
} from '../dialect.js';
import { observeWaits } from './mysql-waits.js';
import { createMysqlProbes } from './mysql-probes.js';
import type { ConnectionConfig } from '../../util/connection-url.js';
import type { Logger } from '../../util/logger.js';
import { ShadowshiftError } from '../../util/errors.js';
import { createPool, type MyContext } from './mysql-context.js';
import { quoteIdent } from './mysql-quote.js';
import { inspectTable, resolveTableName } from './mysql-inspector.js';
import { analyzeAlter } from './mysql-alter-analysis.js';
import { mysqlArtefactNames } from './mysql-names.js';
import { MysqlJobLocks } from './mysql-job-lock.js';
import { createShadow, dropArtefacts, previewShadow } from './mysql-shadow.js';
import { deferralConcern, finishShadow } from './mysql-deferred-indexes.js';
import { MysqlChangeStream, unreadablePosition } from './mysql-change-stream.js';
import { MysqlCopier } from './mysql-copier.js';
import { MysqlApplier } from './mysql-applier.js';
import { MysqlCutover } from './mysql-cutover.js';
import { endStoppedRun, listLeftovers, removeLeftover } from './mysql-leftovers.js';
import { mysqlChecks } from './checks/index.js';
import { MysqlCheckpointStore } from './mysql-checkpoints.js';
import { MysqlChecksummer } from './mysql-checksum.js';
import { MysqlRevertSupport } from './mysql-revert.js';

export class MysqlSession implements DialectSession {
  readonly name = 'mysql' as const;
  /** The applier deletes by key before inserting when the shadow's unique index is wider (mysql-applier.ts). */
  readonly matchesByContainedKey = true;
  readonly columnNamesIgnoreCase = true;
  readonly streamHoldsServerLog = false;
  readonly copier: MysqlCopier;
  readonly applier: MysqlApplier;
  readonly cutover: MysqlCutover;
  readonly checkpoints: MysqlCheckpointStore;
  readonly checksummer: MysqlChecksummer;
  readonly revert: MysqlRevertSupport;
  private readonly locks: MysqlJobLocks;
  private readonly streams = new Set<MysqlChangeStream>();

  constructor(
    readonly ctx: MyContext,
    readonly server: ServerInfo,
  ) {
    this.copier = new MysqlCopier(ctx);
    this.applier = new MysqlApplier(ctx);
    this.cutover = new MysqlCutover(ctx);
    this.checkpoints = new MysqlCheckpointStore(ctx);
    this.checksummer = new MysqlChecksummer(ctx);
    this.revert = new MysqlRevertSupport(ctx);
    this.locks = new MysqlJobLocks(ctx);
  }

  quoteIdentifier(name: string): string {
    return quoteIdent(name);
  }

  resolveTable(name: string): TableRef {
    return resolveTableName(name, this.ctx.config.database);
  }

  inspectTable(ref: TableRef): Promise<TableInfo | null> {
    return inspectTable(this.ctx.pool, ref);
  }

  analyzeAlter(alter: string): AlterAnalysis {
    return analyzeAlter(alter);
  }

  preflightChecks(): PreflightCheck[] {
    return mysqlChecks(this.ctx, this.server.flavor === 'mariadb' ? 'mariadb' : 'mysql');
  }

  /** Index names are per table in MySQL: only the table names matter (`alter` is not needed). */
  artefactNames(table: TableRef, jobId: string, options?: { resumable?: boolean; alter?: string }): ArtefactNames {
    return mysqlArtefactNames(table, jobId, options);
  }

  acquireJobLock(table: TableRef): Promise<void> {
    return this.locks.acquire(table);
  }

  jobLockLost(table: TableRef): Promise<never> {
    return this.locks.lost(table);
  }

  releaseJobLock(table: TableRef): Promise<void> {
    return this.locks.release(table);
  }

  previewShadow(original: TableInfo, alter: string): Promise<TableInfo> {
    return previewShadow(this.ctx, original, alter);
  }

  createShadow(original: TableInfo, alter: string, names: ArtefactNames, options?: { deferIndexes?: boolean }): Promise<TableInfo> {
    return createShadow(this.ctx, original, alter, names, options);
  }

  /** See mysql-deferred-indexes.ts. */
  async finishShadow(shadow: TableRef, options?: { signal?: AbortSignal }): Promise<TableInfo> {
    await finishShadow(this.ctx, shadow, options?.signal);
    const info = await this.inspectTable(shadow);
    if (!info) throw new ShadowshiftError(`the shadow table ${shadow.name} is gone`);
    return info;
  }

  indexDeferralConcern(): Promise<string | null> {
    return deferralConcern(this.ctx);
  }

  dropArtefacts(names: ArtefactNames, opts: { keepBackup: boolean; keepShadow?: boolean; keepStream?: boolean; lockTimeoutMs?: number }): Promise<ArtefactLeft[]> {
    return dropArtefacts(this.ctx, names, names.extra.schema ?? this.ctx.config.database, opts);
  }

  openChangeStream(plan: CopyPlan, names: ArtefactNames, jobId: string): ChangeStream {
    const stream = new MysqlChangeStream(this.ctx, plan, names.changelog, `shadowshift:${jobId}:`);
    this.streams.add(stream);
    const stop = stream.stop.bind(stream);
    stream.stop = async () => {
      this.streams.delete(stream);
      await stop();
    };
    return stream;
  }

  /** Throttle probes (mysql-probes.ts); the heartbeat row is keyed by the job id. */
  openProbes(names: ArtefactNames): LoadProbes {
    return createMysqlProbes(this.ctx.pool, { jobId: (names.extra.jobId ?? names.backup).slice(0, 64), schema: names.extra.schema ?? this.ctx.config.database });
  }

  listLeftovers(): Promise<Leftover[]> {
    return listLeftovers(this.ctx);
  }

  removeLeftover(item: Leftover): Promise<void> {
    return removeLeftover(this.ctx, item);
  }

  observeWaits(tables: TableRef[]): Promise<ObservedWait | null> {
    return observeWaits(this.ctx, tables);
  }

  endStoppedRun(names: ArtefactNames): Promise<number[]> {
    return endStoppedRun(this.ctx, names);
  }

  async streamPositionProblem(position: StreamPosition, names: ArtefactNames): Promise<StreamPositionProblem | null> {
    const problem = await unreadablePosition(this.ctx, position);
    return problem === null ? null : { problem, left: [names.shadow, names.changelog] };
  }

  async close(): Promise<void> {
    for (const s of [...this.streams]) await s.stop().catch((err: Error) => this.ctx.log.warn({ err: err.message }, 'stopping change stream'));
    await this.locks.releaseAll();
    await this.ctx.pool.end();
  }
}

export const mysqlDialect: DialectFactory = {
  async open(config: ConnectionConfig, log: Logger): Promise<DialectSession> {
    const ctx = createPool(config, log);
    try {
      const [r] = await ctx.pool.query<RowDataPacket[]>('SELECT VERSION() AS v');
      const version = String(r[0]!.v);
      const server: ServerInfo = { dialect: 'mysql', version, flavor: /mariadb/i.test(version) ? 'mariadb' : 'mysql' };
      ctx.flavor = server.flavor === 'mariadb' ? 'mariadb' : 'mysql';
      return new MysqlSession(ctx, server);
    } catch (err) {
      await ctx.pool.end().catch(() => undefined);
      throw new ShadowshiftError(`cannot connect to MySQL at ${config.redacted}: ${(err as Error).message}`, { cause: err });
    }
  },
};
