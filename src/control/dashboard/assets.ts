// The dashboard's files, served from memory by http-server.ts: no build step, no CDN.

import { PAGE_HTML } from './page-html.js';
import { PAGE_CSS } from './page-css.js';
import { APP_JS } from './app-js.js';

export const DASHBOARD_ASSETS: Record<string, { type: string; body: string }> = {
  '': { type: 'text/html; charset=utf-8', body: PAGE_HTML },
  'dashboard/app.css': { type: 'text/css; charset=utf-8', body: PAGE_CSS },
  'dashboard/app.js': { type: 'text/javascript; charset=utf-8', body: APP_JS },
};
