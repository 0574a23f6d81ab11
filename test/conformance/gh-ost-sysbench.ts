// A stand-in for the sysbench case of gh-ost's corpus (sysbench is not installed here):
// the table `sysbench oltp_write_only prepare` creates (sbtest1, 20,000 rows) and a
// write load of the same shape on two connections — per transaction an update of the
// indexed k, an update of c, and a delete and re-insert of one id — until stopped.

import mysql from 'mysql2/promise';

export interface Load {
  stop(): Promise<number>;
}

export async function prepareSbtest(port: number): Promise<void> {
  const c = await mysql.createConnection({ host: '127.0.0.1', port, user: 'root', database: 'test' });
  try {
    await c.query(
      "CREATE TABLE sbtest1 (id INT NOT NULL AUTO_INCREMENT, k INT NOT NULL DEFAULT '0', c CHAR(120) NOT NULL DEFAULT '', pad CHAR(60) NOT NULL DEFAULT '', PRIMARY KEY (id), KEY k_1 (k)) ENGINE=InnoDB",
    );
    await c.query("INSERT INTO sbtest1 (k, c, pad) SELECT FLOOR(RAND(seq) * 20000), REPEAT(MD5(seq), 3), LEFT(REPEAT(SHA1(seq), 2), 59) FROM seq_1_to_20000");
  } finally {
    await c.end();
  }
}

export function startSbtestLoad(port: number, threads = 2): Load {
  let stopping = false;
  let done = 0;
  const worker = async (n: number) => {
    const c = await mysql.createConnection({ host: '127.0.0.1', port, user: 'root', database: 'test' });
    let seed = 163 + n;
    const rnd = () => (seed = (seed * 1103515245 + 12345) % 2147483648) % 20000 + 1;
    try {
      while (!stopping) {
        const id = rnd();
        await c.query('BEGIN');
        await c.query('UPDATE sbtest1 SET k = k + 1 WHERE id = ?', [rnd()]);
        await c.query('UPDATE sbtest1 SET c = ? WHERE id = ?', [`c-${seed}`, rnd()]);
        await c.query('DELETE FROM sbtest1 WHERE id = ?', [id]);
        await c.query('INSERT INTO sbtest1 (id, k, c, pad) VALUES (?, ?, ?, ?)', [id, rnd(), `i-${seed}`, `p-${id}`]);
        await c.query('COMMIT');
        done++;
        await new Promise((r) => setTimeout(r, 10)); // about 100 transactions a second per thread
      }
    } finally {
      await c.end();
    }
  };
  const workers = Array.from({ length: threads }, (_, n) => worker(n));
  return {
    async stop() {
      stopping = true;
      await Promise.all(workers);
      return done;
    },
  };
}
