// The heartbeat a job writes for replica-lag throttling, into a small table every
// job of the database shares: created on first use, created again if another job
// dropped it as it finished, and silent once closed. Each dialect supplies the SQL.

export interface HeartbeatSql {
  createTable(): Promise<void>;
  beat(): Promise<void>;
  isMissingTable(err: unknown): boolean;
}

export class HeartbeatWriter {
  private created: Promise<void> | null = null;
  private inflight: Promise<void> | null = null;
  private closed = false;

  constructor(private readonly sql: HeartbeatSql) {}

  async write(): Promise<void> {
    if (this.closed) return;
    const run = async () => {
      this.created ??= this.sql.createTable().catch((err) => {
        this.created = null;
        throw err;
      });
      await this.created;
      try {
        await this.sql.beat();
      } catch (err) {
        if (!this.sql.isMissingTable(err)) throw err;
        await this.sql.createTable();
        await this.sql.beat();
      }
    };
    const p = run();
    this.inflight = p.catch(() => undefined);
    await p;
  }

  /** Stops writing and waits for a beat in flight; true when the table was ever made (the caller removes its row). */
  async close(): Promise<boolean> {
    this.closed = true;
    await this.inflight;
    if (!this.created) return false;
    await this.created.catch(() => undefined);
    return true;
  }
}
