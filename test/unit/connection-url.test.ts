import { describe, it, expect } from 'vitest';
import { parseConnectionUrl, redactUrl, resolveUrl } from '../../src/util/connection-url.js';

describe('connection URLs', () => {
  it('parses mysql and postgres URLs with TLS modes', () => {
    const m = parseConnectionUrl('mysql://app:s3cret@db.example:3307/shop?ssl=required');
    expect(m).toMatchObject({ dialect: 'mysql', host: 'db.example', port: 3307, user: 'app', password: 's3cret', database: 'shop' });
    expect(m.tls.mode).toBe('require');
    const p = parseConnectionUrl('postgresql://u@h/db?sslmode=verify-full');
    expect(p).toMatchObject({ dialect: 'postgres', port: 5432, tls: { mode: 'verify-full' } });
  });
  it('never shows the password', () => {
    const c = parseConnectionUrl('mysql://app:s3cret@h/db');
    expect(c.redacted).not.toContain('s3cret');
    expect(redactUrl('postgres://u:p%40ss@h/db')).not.toContain('p%40ss');
  });
  it('names the problem and the fix', () => {
    expect(() => parseConnectionUrl('redis://h/db')).toThrow(/unsupported URL scheme "redis:"/);
    expect(() => parseConnectionUrl('mysql://h')).toThrow(/names no database/);
    expect(() => parseConnectionUrl('mysql://h/db?ssl=sometimes')).toThrow(/unknown TLS mode/);
    expect(() => resolveUrl({}, {})).toThrow(/SHADOWSHIFT_URL/);
  });
  it('prefers --url, then --url-file, then SHADOWSHIFT_URL', () => {
    expect(resolveUrl({ url: 'mysql://a/b' }, { SHADOWSHIFT_URL: 'mysql://c/d' })).toBe('mysql://a/b');
    expect(resolveUrl({}, { SHADOWSHIFT_URL: 'mysql://c/d' })).toBe('mysql://c/d');
  });
});
