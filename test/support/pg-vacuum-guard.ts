// The job's vacuum guard (src/dialects/postgres/postgres-vacuum-guard.ts) holds SHARE
// UPDATE EXCLUSIVE on the shadow, which every lock a test takes to stage a race there
// (SHARE to hold a chunk, ACCESS EXCLUSIVE to alter the shadow) would wait for until the
// cut-over. Such a test ends the guard first: the job goes on without it, as it does
// when a vacuum already holds the shadow.

import { VACUUM_GUARD_APPLICATION_NAME } from '../../src/dialects/postgres/postgres-vacuum-guard.js';

export const END_VACUUM_GUARD = `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '${VACUUM_GUARD_APPLICATION_NAME}' AND datname = current_database()`;

export async function endVacuumGuard(db: { query(sql: string): Promise<unknown> }): Promise<void> {
  await db.query(END_VACUUM_GUARD);
}
