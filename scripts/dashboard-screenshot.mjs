// The README's screenshot of the dashboard (docs/dashboard.png): runs `shadowshift demo
// --web` (1,000,000 rows by default) and, in Debian's headless Chromium, unlocks the
// controls with the printed token, throttles the copy for a few seconds (the shaded
// interval), and takes the picture; a phone-width one too, with the overflow checked.
//
//   npm run build && node scripts/dashboard-screenshot.mjs [demo flags]
//   (BEFORE, HOLD, AFTER: milliseconds before, during and after the throttle)
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(join(root, 'package.json'));
const { chromium } = require('playwright-core');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const demo = spawn(process.execPath, [join(root, 'bin/shadowshift.js'), 'demo', '--web', '--no-compare-native', ...process.argv.slice(2)], { stdio: ['ignore', 'pipe', 'pipe'] });
let err = '';
const closed = new Promise((r) => demo.on('close', r));
demo.stderr.on('data', (d) => { err += d; });
demo.stdout.on('data', (d) => process.stdout.write(d));
let url, token;
for (let i = 0; i < 600 && !url; i++) {
  await sleep(500);
  token ??= /token for its controls: (\w+)/.exec(err)?.[1];
  url = /dashboard: (http:\/\/[\d.:]+\/)/.exec(err)?.[1];
}
console.log('url', url, 'token', token);
const ctx = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), 'shot-')), { executablePath: '/usr/bin/chromium', headless: true, viewport: { width: 1280, height: 900 }, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
const page = await ctx.newPage();
await page.goto(url);
await page.getByLabel('Control token').fill(token);
await page.getByLabel('Control token').press('Enter');
await sleep(Number(process.env.BEFORE ?? 12000));
await page.getByRole('button', { name: 'Throttle', exact: true }).click();
await sleep(Number(process.env.HOLD ?? 3000));
await page.getByRole('button', { name: 'Unthrottle' }).click();
await sleep(Number(process.env.AFTER ?? 6000));
await page.screenshot({ path: join(root, 'docs/dashboard.png'), fullPage: true });
await page.setViewportSize({ width: 375, height: 800 });
await sleep(1500);
await page.screenshot({ path: join(tmpdir(), 'dashboard-phone.png'), fullPage: true });
console.log('overflow?', await page.evaluate('document.documentElement.scrollWidth + " vs " + window.innerWidth'));
await ctx.close();
const code = await closed;
console.log('demo exit', code);
console.log(err.split('\n').slice(-15).join('\n'));
