/**
 * The back-off's hold on certbot's own renewals (src/issuer/renewal-hold.ts): `autorenew = False` in
 * [renewalparams] with autossl's comment above it, removed byte-exactly when released; an admin's autorenew is
 * never touched. certbot honouring the key is shown end to end in test/e2e/backoff.test.ts.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { holdLines, holdRenewal, withHold } from '../../src/issuer/renewal-hold.js';

// as certbot 2.1 writes it (webroot authenticator, a [[webroot_map]] subsection after the keys)
const CONF = `# renew_before_expiry = 30 days
version = 2.1.0
archive_dir = /etc/letsencrypt/archive/a.test
cert = /etc/letsencrypt/live/a.test/cert.pem
privkey = /etc/letsencrypt/live/a.test/privkey.pem
chain = /etc/letsencrypt/live/a.test/chain.pem
fullchain = /etc/letsencrypt/live/a.test/fullchain.pem

# Options used in the renewal process
[renewalparams]
account = 0123456789abcdef
authenticator = webroot
server = https://acme-v02.api.letsencrypt.org/directory
key_type = ecdsa
[[webroot_map]]
a.test = /var/www/a
`;
const UNTIL = Date.parse('2026-12-04T10:00:00Z');
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

describe('holding certbot renewals of a backing-off lineage', () => {
  it('writes autorenew = False as the first key of [renewalparams], before its subsections', () => {
    const held = withHold(CONF, UNTIL)!;
    expect(held).toContain(`[renewalparams]\n${holdLines(UNTIL)}account = 0123456789abcdef\n`);
    expect(held.indexOf('autorenew = False')).toBeLessThan(held.indexOf('[[webroot_map]]'));
    expect(held.replace(holdLines(UNTIL), '')).toBe(CONF);
  });

  it('released, the file is byte-identical to what it was; released again, nothing changes', () => {
    const held = withHold(CONF, UNTIL)!;
    expect(withHold(held, null)).toBe(CONF);
    expect(withHold(CONF, null)).toBeNull();
  });

  it('a longer back-off moves its date; the same one changes nothing', () => {
    const held = withHold(CONF, UNTIL)!;
    expect(withHold(held, UNTIL)).toBeNull();
    const later = withHold(held, UNTIL + 3_600_000)!;
    expect(later).toContain('2026-12-04T11:00:00.000Z');
    expect(later.match(/autorenew/g)).toHaveLength(1);
    expect(withHold(later, null)).toBe(CONF);
  });

  it("an admin's own autorenew (False or True) is never touched", () => {
    for (const value of ['False', 'True']) {
      const admin = CONF.replace('authenticator = webroot\n', `authenticator = webroot\nautorenew = ${value}\n`);
      expect(withHold(admin, UNTIL)).toBeNull();
      expect(withHold(admin, null)).toBeNull();
    }
  });

  it('a file without [renewalparams] is not one certbot wrote: left alone', () => {
    expect(withHold('cert = /x\n', UNTIL)).toBeNull();
  });

  it('holdRenewal writes atomically with the mode kept, and reports whether it changed the file', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'autossl-hold-'));
    dirs.push(dir);
    const file = path.join(dir, 'a.test.conf');
    fs.writeFileSync(file, CONF, { mode: 0o600 });
    expect(holdRenewal(file, UNTIL)).toBe(true);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(fs.readFileSync(file, 'utf8')).toContain('autorenew = False');
    expect(holdRenewal(file, UNTIL)).toBe(false);
    expect(holdRenewal(file, null)).toBe(true);
    expect(fs.readFileSync(file, 'utf8')).toBe(CONF);
    expect(fs.readdirSync(dir)).toEqual(['a.test.conf']);
    expect(holdRenewal(path.join(dir, 'missing.conf'), UNTIL)).toBe(false);
  });
});
