/**
 * certbot < 4.1 renews whatever has less than 30 days left (its RENEWER_DEFAULTS, merged under every renewal
 * config): a certificate of 30 days or less on every run of its timer. autossl writes the lineage's own
 * renew_before_expiry (src/issuer/renew-before.ts), once, never over the admin's.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseCertbotVersion } from '../../src/issuer/certbot-version.js';
import { keepRenewBefore, mayNeedRenewBefore, renewBeforeFor } from '../../src/issuer/renew-before.js';

const DAY = 86_400_000;
const v = (s: string) => parseCertbotVersion(`certbot ${s}`);

describe('renew_before_expiry for certbot < 4.1', () => {
  it("asks certbot's version (a python start per issue) only for a certificate living 30 days or less", () => {
    const DAY = 86_400_000;
    expect(mayNeedRenewBefore(90 * DAY)).toBe(false);
    expect(mayNeedRenewBefore(45 * DAY)).toBe(false);
    expect(mayNeedRenewBefore(30 * DAY)).toBe(true);
    expect(mayNeedRenewBefore(160 * 3_600_000)).toBe(true);
    // every lifetime it says no to gets no line whatever the version: asking would change nothing
    for (const days of [31, 45, 64, 90]) expect(renewBeforeFor(parseCertbotVersion('certbot 2.1.0'), days * DAY, 1 / 3)).toBeNull();
  });

  it('by lifetime and certbot version: half of a short life, a third of one up to 30 days, nothing for longer lives or on certbot >= 4.1', () => {
    expect(renewBeforeFor(v('4.0.0'), 6 * DAY + 16 * 3_600_000, 1 / 3)).toBe(`renew_before_expiry = ${(160 * 3600) / 2} seconds`);
    expect(renewBeforeFor(v('2.1.0'), 420_000, 1 / 3)).toBe('renew_before_expiry = 210 seconds');
    expect(renewBeforeFor(v('4.0.0'), 20 * DAY, 1 / 3)).toBe(`renew_before_expiry = ${Math.floor((20 * 86_400) / 3)} seconds`);
    // longer than 30 days: certbot renews early (45 days: after 15), never on every run
    expect(renewBeforeFor(v('4.0.0'), 45 * DAY, 1 / 3)).toBeNull();
    expect(renewBeforeFor(v('2.1.0'), 90 * DAY, 1 / 3)).toBeNull();
    expect(renewBeforeFor(v('4.1.0'), 6 * DAY, 1 / 3)).toBeNull();
    expect(renewBeforeFor(v('5.5.0'), 420_000, 1 / 3)).toBeNull();
    expect(renewBeforeFor(null, 420_000, 1 / 3)).toBeNull();
    expect(renewBeforeFor(v('4.0.0'), 30_000, 1 / 3)).toBe('renew_before_expiry = 60 seconds'); // never below a minute
  });

  it("written once at the top of the renewal config, its mode kept; the admin's own value left alone", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'autossl-rbe-'));
    try {
      const conf = path.join(dir, 'a.test.conf');
      const certbots = '# renew_before_expiry = 30 days\nversion = 4.0.0\narchive_dir = /x\n\n[renewalparams]\nauthenticator = webroot\n';
      fs.writeFileSync(conf, certbots, { mode: 0o640 });
      expect(keepRenewBefore(conf, 'renew_before_expiry = 210 seconds')).toBe('renew_before_expiry = 210 seconds');
      expect(fs.readFileSync(conf, 'utf8')).toBe(`renew_before_expiry = 210 seconds\n${certbots}`);
      expect(fs.statSync(conf).mode & 0o777).toBe(0o640);
      expect(keepRenewBefore(conf, 'renew_before_expiry = 99 seconds')).toBeNull();
      const own = '  renew_before_expiry = 10 days\nversion = 2.1.0\n';
      fs.writeFileSync(conf, own);
      expect(keepRenewBefore(conf, 'renew_before_expiry = 210 seconds')).toBeNull();
      expect(fs.readFileSync(conf, 'utf8')).toBe(own);
      expect(keepRenewBefore(path.join(dir, 'missing.conf'), 'renew_before_expiry = 1 seconds')).toBeNull();
      expect(fs.readdirSync(dir).sort()).toEqual(['a.test.conf']);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
