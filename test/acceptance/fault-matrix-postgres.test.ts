// The fault matrix on PostgreSQL: {SIGTERM, ctl abort, every job session killed (the
// walsender included), server restart} x {copying, catching-up, checksum, postponed,
// deferred index build, cut-over waiting for its lock, cut-over holding it}, each under
// a write workload, on a server this file owns. Each case ends with the ALTER applied or
// the original untouched and nothing left; see test/support/fault-matrix/verdict.ts.

import { defineFaultMatrix } from '../support/fault-matrix/matrix.js';

// The type change rebuilds the user_id index, deferred until after the copy.
defineFaultMatrix('postgres', { alter: "ALTER COLUMN user_id TYPE bigint, ADD COLUMN flag varchar(8) NOT NULL DEFAULT 'r'" });
