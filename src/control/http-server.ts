// Optional HTTP control endpoint (--http 127.0.0.1:PORT). Reading status is
// open to whoever can reach the port; every mutating request needs the token.
// It binds to loopback unless the operator explicitly allows otherwise.

import { createServer, type IncomingMessage } from 'node:http';
import { timingSafeEqual } from 'node:crypto';
import type { Logger } from '../util/logger.js';
import { UsageError } from '../util/errors.js';
import { listen, parseListenAddress, type Listening } from './listen.js';
import { CONTROL_COMMANDS, executeControl, type ControlCommand, type Controllable } from './control-server.js';

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/;

function tokenMatches(req: IncomingMessage, token: string): boolean {
  const header = req.headers.authorization ?? '';
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

export async function startHttpControl(
  address: string,
  options: { token?: string; allowRemote?: boolean },
  job: Controllable,
  log: Logger,
): Promise<Listening> {
  const { host, port } = parseListenAddress(address, '--http');
  if (!LOOPBACK.test(host) && !options.allowRemote) {
    throw new UsageError(`--http ${address} is not a loopback address; the control endpoint binds to 127.0.0.1 unless you add --http-allow-remote`);
  }
  if (!options.token) {
    throw new UsageError('--http needs a token for mutating requests: pass --http-token-file FILE (or SHADOWSHIFT_HTTP_TOKEN)');
  }
  const token = options.token;
  const server = createServer(async (req, res) => {
    const reply = (code: number, body: unknown) => {
      res.statusCode = code;
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify(body) + '\n');
    };
    try {
      const path = (req.url ?? '/').split('?')[0]!.replace(/^\/+/, '');
      if (req.method === 'GET' && (path === 'status' || path === '')) {
        return reply(200, job.status());
      }
      if (req.method !== 'POST') return reply(405, { ok: false, error: 'use GET /status or POST /<command>' });
      if (!CONTROL_COMMANDS.includes(path as ControlCommand) || path === 'status') {
        return reply(404, { ok: false, error: `unknown command ${path}; use one of ${CONTROL_COMMANDS.join(', ')}` });
      }
      if (!tokenMatches(req, token)) {
        log.warn({ command: path, remote: req.socket.remoteAddress }, 'refused a control request without a valid token');
        return reply(401, { ok: false, error: 'a valid "Authorization: Bearer <token>" header is required' });
      }
      const body = await readBody(req);
      const setting = body ? ((JSON.parse(body) as { setting?: string }).setting ?? undefined) : undefined;
      const result = await executeControl(job, { command: path as ControlCommand, setting }, log);
      return reply(result.ok ? 200 : 400, result);
    } catch (err) {
      return reply(400, { ok: false, error: (err as Error).message });
    }
  });
  return listen(server, host, port);
}
