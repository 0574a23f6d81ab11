// The live dashboard (issue 16) in a real browser: `alter --execute --http` on a real
// PostgreSQL table, the page opened in headless Chromium. It shows the state, the
// progress and a chart, and they move; without the token a click changes nothing and
// no log line is shown; with the token (typed once, kept in the page) Throttle throttles
// the job, as `ctl status` says too. On a phone-sized screen nothing overflows.

import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type pg from 'pg';
import { createPgDatabase, pgConnect } from '../support/databases.js';
import { startCli } from '../support/cli.js';
import { waitUntil } from '../support/alter.js';
import { launchBrowser } from '../support/browser.js';

const ROWS = 400_000;
const TOKEN = 'dash-token-7f3a9c';

let url: string;
let admin: pg.Client;
let dir: string;

beforeAll(async () => {
  url = (await createPgDatabase('dash')).url;
  admin = await pgConnect(url);
  dir = mkdtempSync(join(tmpdir(), 'ss-dash-'));
  await admin.query('CREATE TABLE orders (id bigint PRIMARY KEY, amount numeric(12,2) NOT NULL, note text)');
  await admin.query(`INSERT INTO orders SELECT g, g / 100.0, 'n' || g FROM generate_series(1, ${ROWS}) g`);
  await admin.query('ANALYZE orders');
});
afterAll(async () => {
  await admin?.end();
  rmSync(dir, { recursive: true, force: true });
});

describe('the dashboard in a browser', () => {
  it('shows a live job, stays read-only without the token, and throttles with it', async () => {
    const socket = join(dir, 'ctl.sock');
    const tokenFile = join(dir, 'token');
    const postpone = join(dir, 'postpone');
    writeFileSync(tokenFile, TOKEN + '\n', { mode: 0o600 });
    writeFileSync(postpone, '');
    // Small chunks with rests between them: the copy lasts long enough to watch.
    const job = startCli([
      'alter', '--url', url, '--table', 'orders', '--alter', 'ADD COLUMN status text NOT NULL DEFAULT \'new\'', '--execute',
      '--control-socket', socket, '--http', '127.0.0.1:0', '--http-token-file', tokenFile,
      '--chunk-size', '500', '--nice-ratio', '4', '--postpone-cutover-flag-file', postpone, '--status-interval', '1',
    ]);
    const ctlStatus = async () => {
      const r = await startCli(['ctl', '--control-socket', socket, 'status', '--json']).done;
      expect(r.code, r.stderr).toBe(0);
      return JSON.parse(r.stdout) as { state: string; throttled: string | null; rowsCopied: number };
    };
    const browser = await launchBrowser();
    try {
      let pageUrl = '';
      await waitUntil(() => {
        pageUrl = /"dashboard":"(http:\/\/127\.0\.0\.1:\d+\/)"/.exec(job.stderrSoFar())?.[1] ?? '';
        return pageUrl !== '' || job.child.exitCode !== null;
      }, 'the dashboard URL in the log', 60_000, 100);
      expect(pageUrl, job.stderrSoFar()).not.toBe('');
      const page = await browser.context.newPage();
      const dialogs: string[] = [];
      page.on('dialog', (d) => {
        dialogs.push(d.message());
        void d.dismiss();
      });
      await page.goto(pageUrl);

      // State, progress and a chart, and they change over time.
      await page.locator('#state-badge', { hasText: 'copying' }).waitFor({ timeout: 30_000 });
      await expect.poll(() => page.locator('#meta').innerText()).toMatch(/ADD COLUMN status[\s\S]*postgres/);
      await expect.poll(() => page.locator('#progress-text').innerText()).toMatch(/[\d,]+ of ~[\d,]+ rows copied/);
      await expect.poll(() => page.locator('#c-rate path.line').count(), { timeout: 30_000 }).toBeGreaterThan(0);
      const progress1 = await page.locator('#progress-text').innerText();
      const chart1 = await page.locator('#c-rate path.line').getAttribute('d');
      await expect.poll(() => page.locator('#progress-text').innerText(), { timeout: 15_000 }).not.toBe(progress1);
      await expect.poll(() => page.locator('#c-rate path.line').getAttribute('d'), { timeout: 15_000 }).not.toBe(chart1);
      await expect.poll(() => page.locator('#state-times li').first().innerText()).toMatch(/preflight|copying/);

      // Without the token: read-only, no log lines, and a click changes nothing.
      expect(await page.locator('#access-state').innerText()).toMatch(/Read-only/);
      expect(await page.locator('#log-list li').count()).toBe(0);
      await page.getByRole('button', { name: 'Throttle', exact: true }).click();
      await expect.poll(() => page.locator('#control-result').innerText()).toMatch(/throttle refused/);
      expect((await ctlStatus()).throttled).toBeNull();
      expect(await page.locator('#state-badge').innerText()).not.toMatch(/throttled/);

      // The token, typed once (Enter submits): log lines appear, Throttle throttles.
      await page.getByLabel('Control token').fill(TOKEN);
      await page.getByLabel('Control token').press('Enter');
      await expect.poll(() => page.locator('#access-state').innerText()).toMatch(/unlocked/);
      await expect.poll(() => page.locator('#log-list li').count()).toBeGreaterThan(0);
      expect(page.url()).not.toContain(TOKEN);
      expect(await page.evaluate<string>('JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }) + document.cookie')).not.toContain(TOKEN);
      // Abort asks first; dismissed, nothing happens.
      await page.getByRole('button', { name: 'Abort' }).click();
      await expect.poll(() => dialogs).toEqual([expect.stringMatching(/Abort the job\?/)]);
      expect((await ctlStatus()).state).not.toBe('aborted');
      const throttle = page.getByRole('button', { name: 'Throttle', exact: true });
      await throttle.focus();
      await page.keyboard.press('Enter');
      await expect.poll(() => page.locator('#control-result').innerText()).toMatch(/throttle: copy throttled/);
      expect((await ctlStatus()).throttled).toMatch(/manual/);
      await expect.poll(() => page.locator('#state-badge').innerText(), { timeout: 5_000 }).toMatch(/throttled/);
      await expect.poll(() => page.locator('#throttles').innerText(), { timeout: 5_000 }).toMatch(/manual/);
      // Throttled: the copy stands still.
      await new Promise((r) => setTimeout(r, 500)); // a chunk in flight when throttled ends first
      const held = (await ctlStatus()).rowsCopied;
      await new Promise((r) => setTimeout(r, 1500));
      expect((await ctlStatus()).rowsCopied).toBe(held);

      // A phone-sized screen: nothing wider than the screen.
      await page.setViewportSize({ width: 375, height: 740 });
      await page.waitForTimeout(1200);
      expect(await page.evaluate<boolean>('document.documentElement.scrollWidth <= window.innerWidth + 1')).toBe(true);
    } finally {
      await browser.close();
      await startCli(['ctl', '--control-socket', socket, 'abort']).done;
      const r = await job.done;
      expect(r.code, r.stderr.slice(-2000)).toBe(130);
    }
  }, 180_000);
});
