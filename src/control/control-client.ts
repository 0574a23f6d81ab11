import { createConnection } from 'node:net';
import { ShadowshiftError } from '../util/errors.js';
import type { ControlReply, ControlRequest } from './control-server.js';

/** Sends one command to a running job's control socket and returns its reply. */
export function sendControlCommand(path: string, request: ControlRequest, timeoutMs = 5000): Promise<ControlReply> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(path);
    let buffer = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new ShadowshiftError(`no reply from the job on ${path} within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(JSON.stringify(request) + '\n'));
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      const nl = buffer.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      socket.end();
      try {
        resolve(JSON.parse(buffer.slice(0, nl)) as ControlReply);
      } catch (err) {
        reject(new ShadowshiftError(`unreadable reply from ${path}: ${(err as Error).message}`));
      }
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const hint = err.code === 'ENOENT' || err.code === 'ECONNREFUSED' ? ' (is a job running? its socket path is printed when it starts)' : '';
      reject(new ShadowshiftError(`cannot reach the job on ${path}: ${err.message}${hint}`));
    });
  });
}
