// `migrate up --execute --http` (issue 16): the dashboard's data names the migration and
// its phase, and shows the engine job while one runs; the controls steer that job with
// the token; without a job they answer 409.

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type pg from 'pg';
import { createPgDatabase, pgConnect } from '../support/databases.js';
import { startCli } from '../support/cli.js';
import { waitUntil } from '../support/alter.js';

const ROWS = 150_000;
const TOKEN = 'mig-token-51c2';

let url: string;
let admin: pg.Client;
let dir: string;

beforeAll(async () => {
  url = (await createPgDatabase('dashmig')).url;
  admin = await pgConnect(url);
  dir = mkdtempSync(join(tmpdir(), 'ss-dashmig-'));
  await admin.query('CREATE TABLE orders (id bigint PRIMARY KEY, user_id integer NOT NULL, note text)');
  await admin.query(`INSERT INTO orders SELECT g, g % 1000, 'n' || g FROM generate_series(1, ${ROWS}) g`);
  await admin.query('ANALYZE orders');
});
afterAll(async () => {
  await admin?.end();
  rmSync(dir, { recursive: true, force: true });
});

interface View {
  command: string;
  running: boolean;
  authorized: boolean;
  meta: { alter: string; table: string } | null;
  migrate: { action: string; migration: string | null; phase: string | null } | null;
  status: { state: string; throttled: string | null } | null;
  logs: unknown[] | null;
}

describe('migrate --http', () => {
  it('shows the migration, its phase and the engine job, and steers the job with the token', async () => {
    const migrations = join(dir, 'migrations');
    const tokenFile = join(dir, 'token');
    mkdirSync(migrations);
    writeFileSync(join(migrations, '100_widen_user_id.sql'), 'ALTER TABLE orders ALTER COLUMN user_id TYPE bigint;\n');
    writeFileSync(tokenFile, TOKEN + '\n', { mode: 0o600 });
    const run = startCli(
      ['migrate', 'up', '--execute', '--dir', migrations, '--online-threshold', '1000', '--http', '127.0.0.1:0', '--http-token-file', tokenFile, '--chunk-size', '500', '--nice-ratio', '3'],
      { SHADOWSHIFT_URL: url },
    );
    let base = '';
    await waitUntil(() => {
      base = /"dashboard":"(http:\/\/127\.0\.0\.1:\d+)\/"/.exec(run.stderrSoFar())?.[1] ?? '';
      return base !== '' || run.child.exitCode !== null;
    }, 'the dashboard URL in the log', 60_000, 100);
    expect(base, run.stderrSoFar()).not.toBe('');
    const state = async (token?: string) => (await (await fetch(`${base}/dashboard/state`, { headers: token ? { authorization: `Bearer ${token}` } : {} })).json()) as View;
    const post = (verb: string, token?: string) => fetch(`${base}/${verb}`, { method: 'POST', headers: token ? { authorization: `Bearer ${token}` } : {} });

    let view = await state();
    await waitUntil(async () => (view = await state()).running && view.status?.state === 'copying', 'the engine job copying', 60_000, 100);
    expect(view).toMatchObject({ command: 'migrate', authorized: false, logs: null, migrate: { action: 'up', migration: '100_widen_user_id.sql', phase: 'expand' } });
    expect(view.meta).toMatchObject({ table: 'public.orders', alter: expect.stringMatching(/user_id TYPE bigint/i) });

    expect((await post('throttle')).status).toBe(401);
    expect((await state()).status?.throttled).toBeNull();
    expect((await post('throttle', TOKEN)).status).toBe(200);
    const full = await state(TOKEN);
    expect(full.authorized).toBe(true);
    expect(full.status?.throttled).toMatch(/manual/);
    expect(full.logs?.length).toBeGreaterThan(0);
    expect((await post('unthrottle', TOKEN)).status).toBe(200);

    const r = await run.done;
    expect(r.code, r.stderr.slice(-2000)).toBe(0);
  }, 180_000);
});
