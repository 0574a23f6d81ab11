// Optional HTTP control endpoint (--http 127.0.0.1:PORT): the control API and the live
// dashboard page (GET /). Reading status is open to whoever can reach the port, without
// the SQL of other sessions and without log lines; every mutating request, and the full
// view, needs the token. It binds to loopback unless the operator explicitly allows
// otherwise, and answers only requests whose Host header names this server (so a web
// page elsewhere cannot reach it through DNS rebinding).

import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';
import type { Logger } from '../util/logger.js';
import { UsageError } from '../util/errors.js';
import { listen, parseListenAddress, type Listening } from './listen.js';
import { CONTROL_COMMANDS, executeControl, type ControlCommand, type Controllable } from './control-server.js';
import { publicStatus, type Dashboard } from './dashboard/dashboard.js';
import { DASHBOARD_ASSETS } from './dashboard/assets.js';

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/;

/** undefined: no Authorization header; otherwise whether it carries the token. */
function tokenGiven(req: IncomingMessage, token: string): boolean | undefined {
  const header = req.headers.authorization;
  if (header === undefined) return undefined;
  const given = Buffer.from(header.replace(/^Bearer\s+/i, ''));
  const wanted = Buffer.from(token);
  return given.length === wanted.length && timingSafeEqual(given, wanted);
}

async function readBody(req: IncomingMessage): Promise<string> {
  let body = '';
  for await (const chunk of req) {
    body += chunk;
    if (body.length > 16 * 1024) throw new Error('request body too large');
  }
  return body;
}

/**
 * The Host values this server answers: its listen address, localhost, 127.0.0.1 and
 * [::1], each with the port. Bound to every interface (0.0.0.0, ::, with
 * --http-allow-remote), any IP literal with the port too: DNS rebinding needs a name.
 */
export function hostAllowed(hostHeader: string | undefined, listenHost: string, port: number): boolean {
  if (!hostHeader) return false;
  const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(hostHeader.trim().toLowerCase());
  if (!m || Number(m[2]) !== port) return false;
  const name = m[1]!.replace(/^\[|\]$/g, '');
  if (['localhost', '127.0.0.1', '::1', listenHost.toLowerCase()].includes(name)) return true;
  return (listenHost === '0.0.0.0' || listenHost === '::') && isIP(name) !== 0;
}

/** What the endpoint steers: one job, or (`migrate`) whichever engine job runs now. */
export type HttpTarget = Controllable | (() => Controllable | null);

export async function startHttpControl(
  address: string,
  options: { token?: string; allowRemote?: boolean },
  target: HttpTarget,
  log: Logger,
  dashboard?: Dashboard,
): Promise<Listening> {
  const { host, port } = parseListenAddress(address, '--http');
  if (!LOOPBACK.test(host) && !options.allowRemote) {
    throw new UsageError(`--http ${address} is not a loopback address; the control endpoint binds to 127.0.0.1 unless you add --http-allow-remote`);
  }
  if (!options.token) {
    throw new UsageError('--http needs a token for mutating requests: pass --http-token-file FILE (or SHADOWSHIFT_HTTP_TOKEN)');
  }
  const token = options.token;
  const currentJob = () => (typeof target === 'function' ? target() : target);
  let boundPort = port;
  const server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    const reply = (code: number, body: unknown) => {
      res.statusCode = code;
      res.setHeader('Content-Type', 'application/json');
      res.setHeader('Cache-Control', 'no-store');
      res.end(JSON.stringify(body) + '\n');
    };
    try {
      if (!hostAllowed(req.headers.host, host, boundPort)) {
        return reply(403, { ok: false, error: `Host ${JSON.stringify(req.headers.host ?? '')} is not this server's address; use http://127.0.0.1:${boundPort}/` });
      }
      const path = (req.url ?? '/').split('?')[0]!.replace(/^\/+/, '');
      const auth = tokenGiven(req, token);
      if (req.method === 'GET') {
        const asset = DASHBOARD_ASSETS[path];
        if (asset) {
          res.statusCode = 200;
          res.setHeader('Content-Type', asset.type);
          res.setHeader('Cache-Control', 'no-store');
          res.setHeader('X-Content-Type-Options', 'nosniff');
          res.setHeader('X-Frame-Options', 'DENY');
          res.setHeader('Referrer-Policy', 'no-referrer');
          res.setHeader('Content-Security-Policy', "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'");
          return res.end(asset.body);
        }
        if (auth === false) return reply(401, { ok: false, error: 'the token is not valid' });
        if (path === 'dashboard/state') {
          if (!dashboard) return reply(404, { ok: false, error: 'no dashboard on this endpoint' });
          return reply(200, dashboard.view(auth === true));
        }
        if (path === 'status') {
          const job = currentJob();
          if (!job) return reply(503, { ok: false, error: 'no engine job is running now', migrate: dashboard?.view(false).migrate ?? null });
          const status = job.status();
          return reply(200, auth ? status : publicStatus(status));
        }
        return reply(404, { ok: false, error: 'not found: GET / (dashboard), GET /status, or POST /<command>' });
      }
      if (req.method !== 'POST') return reply(405, { ok: false, error: 'use GET /status or POST /<command>' });
      if (!CONTROL_COMMANDS.includes(path as ControlCommand) || path === 'status') {
        return reply(404, { ok: false, error: `unknown command ${path}; use one of ${CONTROL_COMMANDS.join(', ')}` });
      }
      if (auth !== true) {
        log.warn({ command: path, remote: req.socket.remoteAddress }, 'refused a control request without a valid token');
        return reply(401, { ok: false, error: 'a valid "Authorization: Bearer <token>" header is required' });
      }
      const job = currentJob();
      if (!job) return reply(409, { ok: false, error: 'no engine job is running now: the controls steer an engine job while it runs' });
      const body = await readBody(req);
      const setting = body ? ((JSON.parse(body) as { setting?: string }).setting ?? undefined) : undefined;
      const result = await executeControl(job, { command: path as ControlCommand, setting }, log);
      return reply(result.ok ? 200 : 400, result);
    } catch (err) {
      return reply(400, { ok: false, error: (err as Error).message });
    }
  });
  const listening = await listen(server, host, port);
  boundPort = listening.port;
  return listening;
}
