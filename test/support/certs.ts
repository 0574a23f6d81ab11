// Throwaway TLS material for tests, made with the openssl command line tool:
// a CA, a server certificate it signs, and a second, unrelated CA (for "wrong CA"
// tests). Everything lives in one temp dir.
//
// The server certificate names IP 127.0.0.1 and SERVER_CERT_NAME, deliberately not
// `localhost`: Node falls back to checking "localhost" when a client gives it no host
// name, so a certificate naming localhost would hide exactly that bug. Connecting
// by `localhost` is then the way to test a name the certificate does not carry.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The openssl binary on PATH, or null when there is none. */
export function findOpenssl(): string | null {
  try {
    return execFileSync('sh', ['-c', 'command -v openssl'], { encoding: 'utf8' }).trim() || null;
  } catch {
    return null;
  }
}

export const SERVER_CERT_NAME = 'db.shadowshift.test';

export interface TestCerts {
  dir: string;
  caFile: string;
  certFile: string;
  keyFile: string;
  /** A CA that signed nothing the servers present. */
  otherCaFile: string;
  remove(): void;
}

export function makeTestCerts(openssl: string): TestCerts {
  const dir = mkdtempSync(join(tmpdir(), 'shadowshift-certs-'));
  // Servers running as another OS user (PostgreSQL under root) read the certificates from here.
  chmodSync(dir, 0o755);
  const f = (name: string) => join(dir, name);
  const run = (...args: string[]) => execFileSync(openssl, args, { cwd: dir, stdio: 'pipe' });
  const ca = (name: string, cn: string) =>
    run('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-sha256', '-days', '2', '-subj', `/CN=${cn}`,
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
      '-keyout', f(`${name}.key`), '-out', f(`${name}.crt`));
  ca('ca', 'shadowshift test CA');
  ca('other-ca', 'shadowshift unrelated CA');
  run('req', '-newkey', 'rsa:2048', '-nodes', '-sha256', '-subj', `/CN=${SERVER_CERT_NAME}`, '-keyout', f('server.key'), '-out', f('server.csr'));
  writeFileSync(
    f('server.ext'),
    `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:${SERVER_CERT_NAME}\n`,
  );
  run('x509', '-req', '-sha256', '-days', '2', '-in', f('server.csr'), '-CA', f('ca.crt'), '-CAkey', f('ca.key'), '-CAcreateserial', '-extfile', f('server.ext'), '-out', f('server.crt'));
  chmodSync(f('server.key'), 0o600);
  return {
    dir,
    caFile: f('ca.crt'),
    certFile: f('server.crt'),
    keyFile: f('server.key'),
    otherCaFile: f('other-ca.crt'),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
