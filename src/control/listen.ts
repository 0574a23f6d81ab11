import type { Server } from 'node:http';

export interface Listening {
  /** The bound port (the real one when asked for port 0). */
  port: number;
  close(): Promise<void>;
}

export function parseListenAddress(address: string, flag: string): { host: string; port: number } {
  const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(address.trim());
  if (!m) throw new Error(`${flag} ${address}: expected HOST:PORT, for example 127.0.0.1:9187`);
  const port = Number(m[2]);
  if (port < 0 || port > 65535) throw new Error(`${flag} ${address}: port out of range`);
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port };
}

/** Binds an HTTP server and resolves once it listens. */
export async function listen(server: Server, host: string, port: number): Promise<Listening> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const addr = server.address();
  return {
    port: typeof addr === 'object' && addr ? addr.port : port,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
