// An application-like write workload with an exact model of what the table
// must hold afterwards. Used by acceptance tests (the model is compared with
// the table after a migration) and by benchmarks (latency, stalls, errors).
//
// Table: (id bigint PK, user_id int, amount decimal(12,2), status varchar(16),
// note varchar(255), created_at datetime(6)/timestamp(6), payload
// varbinary/bytea ~200 bytes), index on user_id.
//
// Open loop (scheduler.ts): operation i is scheduled at start + i/rate whether
// or not earlier ones finished. Every statement names the table, so the
// workload follows a rename swap (the cut-over) like an application would.
//
// The model (model.ts) holds, per id, the row that must be there after every
// ACKNOWLEDGED write; an operation that fails without telling whether it
// committed leaves its ids unknown (ModelState).
//
// Each operation kind (ops/) says how it picks its target ids, the SQL it
// runs and what each outcome means for the model; one seeded PRNG (random.ts)
// makes a run reproducible.

export type { Db, Dialect } from '../db.js';
export { classifyError } from './errors.js';
export { WorkloadModel, seedRow, type ModelState } from './model.js';
export type { OpMix } from './ops/mix.js';
export type { OpKind } from './ops/op.js';
export type { WorkloadOptions } from './options.js';
export { mulberry32 } from './random.js';
export { Workload, startWorkload } from './scheduler.js';
export { STATUSES, WORKLOAD_COLUMNS, createWorkloadTable, normalizeDatetime, workloadTableSql, type WorkloadColumn, type WorkloadRow } from './schema.js';
export { seedWorkloadTable, type SeedOptions } from './seed.js';
export { summarize, type LatencySummary, type WorkloadError, type WorkloadSample, type WorkloadStats } from './stats.js';
