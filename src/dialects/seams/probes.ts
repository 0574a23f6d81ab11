// The read-only load signals the throttler polls.
// Part of the seam between the engine and a database: see ../dialect.ts.

/** Read-only signals the throttler polls (issue: operator controls). */
export interface LoadProbes {
  /** Numeric server status values by name (MySQL SHOW GLOBAL STATUS; PostgreSQL: active_backends, ...). */
  readStatus(names: string[]): Promise<Record<string, number>>;
  /** Runs the operator's --throttle-query; the first column of the first row as a number (0 when no row). */
  throttleQueryValue(sql: string): Promise<number>;
  /** Writes the heartbeat on the primary (the job's changelog). */
  writeHeartbeat(): Promise<void>;
  /** Seconds the replica at `url` is behind, from the newest heartbeat it has (and, on PostgreSQL, replay lag). */
  replicaLagSeconds(url: string): Promise<number>;
  /** Bytes of log the job's stream holds back on the server (PostgreSQL slot), or null where it does not apply. */
  streamRetainedBytes(): Promise<number | null>;
  close(): Promise<void>;
}
