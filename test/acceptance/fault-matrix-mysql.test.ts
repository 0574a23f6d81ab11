// The fault matrix on MariaDB: {SIGTERM, ctl abort, every job session killed, server
// restart} x {copying, catching-up, checksum, postponed, cut-over waiting for its lock,
// cut-over holding it}, each under a write workload, on a server this file owns.
// Each case ends with the ALTER applied or the original untouched and nothing left;
// see test/support/fault-matrix/verdict.ts.

import { defineFaultMatrix } from '../support/fault-matrix/matrix.js';

defineFaultMatrix('mysql', { alter: "ADD COLUMN flag VARCHAR(8) NOT NULL DEFAULT 'r', ADD INDEX idx_status (status)" });
