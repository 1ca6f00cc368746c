/**
 * ACME certificate profiles, end to end: pebble 2.10 configured with Let's Encrypt's three profiles (`shortlived` at a
 * few minutes), a private nginx, the certbot of the machine, through the built CLI.
 * - a profile the CA's directory does not list is refused while planning (PROFILE_UNKNOWN): no order, no byte changed;
 * - with a certbot older than 4.0 (Debian 12's 2.1) a listed profile is refused while planning (PROFILE_UNSUPPORTED,
 *   naming 4.0), nothing ordered; with certbot 4.0 or newer (the sid root: scripts/ci-root.sh sid
 *   test/e2e/profiles.test.ts) the served certificate lives exactly pebble's short-lived validity and the lineage's
 *   renewal config keeps the profile for certbot's own renewals; inside an ARI window certbot >= 4.1 renews it
 *   itself (autossl ordering nothing), certbot 4.0 through autossl's pass, once, served by the deploy hook.
 * Needs pebble 2.10 (AUTOSSL_PEBBLE, set by .ci/run; the sid root's own pebble is 2.10): the first test says so.
 */
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AcmeRig, BINARIES } from '../../scripts/sandbox/rig.js';
import { certbotDoesAri, certbotVersion } from '../../src/issuer/certbot-version.js';
import { supportsProfiles } from '../../src/issuer/profile.js';
import { sha256 } from '../../src/nginx/transaction.js';
import { parseJson } from '../helpers/json.js';

const CLI = path.resolve(import.meta.dirname, '../../dist/src/cli.js');
/** pebble's short-lived validity here: a few minutes (Let's Encrypt's is 160 hours). */
const SHORT_SECONDS = 420;
const PROFILES = {
  classic: { description: 'The classic profile', validityPeriod: 90 * 86_400 },
  tlsserver: { description: '45-day certificates', validityPeriod: 45 * 86_400 },
  shortlived: { description: 'A short-lived profile', validityPeriod: SHORT_SECONDS },
};
const SITE = (name: string) => `server {\n    listen 127.0.0.1:80;\n    server_name ${name};\n    root {root};\n}\n`;

let rig: AcmeRig;
let configFile: string;
const vhosts: Record<string, string> = {};

function cli(args: string[]) {
  return execa('node', [CLI, ...args, '--config', configFile], { reject: false });
}

/** The orders pebble received so far (its log names each new order). */
function ordersInPebbleLog(): number {
  const log = fs.readFileSync(path.join(rig.info.dir, 'pebble.log'), 'utf8');
  return (log.match(/Added order "/g) ?? []).length;
}

/** The certificate nginx serves for a name: its validity, as the TLS client sees it. */
function servedValidity(name: string): Promise<{ notBefore: number; notAfter: number; serial: string }> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port: 443, servername: name, rejectUnauthorized: false }, () => {
      const c = socket.getPeerCertificate();
      socket.end();
      resolve({ notBefore: Date.parse(c.valid_from), notAfter: Date.parse(c.valid_to), serial: c.serialNumber });
    });
    socket.on('error', reject);
  });
}

beforeAll(async () => {
  rig = await AcmeRig.start({ profiles: PROFILES });
  for (const name of ['short.profile.test', 'unknown.profile.test']) vhosts[name] = rig.addSite(name, SITE(name)).file;
  await rig.reloadNginx();
  configFile = rig.writeAutosslConfig({
    defaults: { profile: 'tlsserver' },
    sites: [
      { domain: 'short.profile.test', profile: 'shortlived' },
      { domain: 'unknown.profile.test', profile: { name: 'sixday', required: true } },
    ],
  });
});

afterAll(async () => {
  await rig?.stop();
});

describe('certificate profiles (pebble 2.10, certbot, nginx)', () => {
  it('the rig runs a pebble whose directory lists the three profiles (pebble 2.10: AUTOSSL_PEBBLE)', async () => {
    const dir = (await rig.directory()) as { meta?: { profiles?: Record<string, string> } };
    expect(Object.keys(dir.meta?.profiles ?? {}).sort()).toEqual(['classic', 'shortlived', 'tlsserver']);
  });

  it("`check` lists the CA's profiles", async () => {
    const run = await cli(['check', 'short.profile.test', '--json']);
    const report = parseJson(run.stdout) as { profiles?: Record<string, string> };
    expect(report.profiles).toEqual({ classic: 'The classic profile', tlsserver: '45-day certificates', shortlived: 'A short-lived profile' });
    const text = await cli(['check', 'short.profile.test']);
    expect(text.stdout).toMatch(/profiles: classic, shortlived, tlsserver|profiles.*shortlived/);
  });

  it('a profile the CA does not list is refused while planning: PROFILE_UNKNOWN, no order, no byte changed', async () => {
    const before = sha256(fs.readFileSync(vhosts['unknown.profile.test']!));
    const orders = ordersInPebbleLog();
    const run = await cli(['issue', 'unknown.profile.test', '--json']);
    const report = parseJson(run.stdout) as { results: Array<{ ok: boolean; error: { code: string; message: string } }> };
    expect(report.results[0]!.ok).toBe(false);
    expect(report.results[0]!.error.code).toBe('PROFILE_UNKNOWN');
    expect(report.results[0]!.error.message).toContain('"sixday"');
    expect(report.results[0]!.error.message).toContain('classic, shortlived, tlsserver');
    expect(run.exitCode).toBe(2); // the config asks for something the CA does not have: an input error
    expect(ordersInPebbleLog()).toBe(orders);
    expect(fs.existsSync(path.join(rig.info.dir, 'certbot', 'config', 'live', 'unknown.profile.test'))).toBe(false);
    expect(sha256(fs.readFileSync(vhosts['unknown.profile.test']!))).toBe(before);
  });

  it("profile shortlived: refused before any order below certbot 4.0; from 4.0 the served certificate lives pebble's short-lived validity, kept for renewals", async () => {
    const version = await certbotVersion({ binary: BINARIES.certbot });
    expect(version).not.toBeNull();
    const before = sha256(fs.readFileSync(vhosts['short.profile.test']!));
    const orders = ordersInPebbleLog();
    const run = await cli(['issue', 'short.profile.test', '--json']);
    const report = parseJson(run.stdout) as { results: Array<{ ok: boolean; error?: { code: string; message: string } }> };
    if (!supportsProfiles(version)) {
      // Debian 12's certbot 2.1, Ubuntu 24.04's 2.9
      expect(report.results[0]!.error?.code).toBe('PROFILE_UNSUPPORTED');
      expect(report.results[0]!.error?.message).toContain(`certbot ${version!.text}`);
      expect(report.results[0]!.error?.message).toContain('needs certbot 4.0 or newer');
      expect(run.exitCode).toBe(2);
      expect(ordersInPebbleLog()).toBe(orders);
      expect(fs.existsSync(path.join(rig.info.dir, 'certbot', 'config', 'live', 'short.profile.test'))).toBe(false);
      expect(sha256(fs.readFileSync(vhosts['short.profile.test']!))).toBe(before);
      return;
    }
    expect(report.results[0], run.stdout + run.stderr).toMatchObject({ ok: true });
    expect(run.exitCode).toBe(0);
    const served = await servedValidity('short.profile.test');
    // pebble: notAfter = notBefore + validityPeriod - 1 s; the TLS client sees whole seconds
    expect((served.notAfter - served.notBefore) / 1000).toBeGreaterThanOrEqual(SHORT_SECONDS - 1);
    expect((served.notAfter - served.notBefore) / 1000).toBeLessThanOrEqual(SHORT_SECONDS);
    const conf = fs.readFileSync(path.join(rig.info.dir, 'certbot', 'config', 'renewal', 'short.profile.test.conf'), 'utf8');
    expect(conf).toMatch(/^preferred_profile = shortlived$/m);
    // certbot < 4.1 renews what has less than 30 days left (its default): this certificate on every run, so autossl
    // writes its own renew_before_expiry, half of the 420 s (src/issuer/renew-before.ts); certbot >= 4.1 needs none
    if (certbotDoesAri(version)) expect(conf).not.toMatch(/^renew_before_expiry/m);
    else expect(conf).toMatch(/^renew_before_expiry = 2\d\d seconds$/m);

    // its renewal inside the CA's ARI window: an open window (a day behind, a minute ahead) in one scheduler pass
    // (`autossl renew`, what the timer runs). certbot >= 4.1 (sid) renews by ARI itself, inside the certbot renew
    // the pass runs, and autossl orders nothing of its own; certbot 4.0 (Debian 13) has no ARI: autossl's pass
    // renews it at its picked moment. Either way once, served by the deploy hook, still short-lived
    const hooks = await cli(['install-hooks']);
    expect(hooks.exitCode, hooks.stderr).toBe(0);
    const live = path.join(rig.info.dir, 'certbot', 'config', 'live', 'short.profile.test', 'cert.pem');
    const archive = path.join(rig.info.dir, 'certbot', 'config', 'archive', 'short.profile.test');
    const certs = () => fs.readdirSync(archive).filter((f) => /^cert\d+\.pem$/.test(f)).length;
    const issuedCerts = certs();
    await rig.setRenewalInfo(fs.readFileSync(live, 'utf8'), { start: new Date(Date.now() - 86_400_000), end: new Date(Date.now() + 60_000) });
    if (certbotDoesAri(version)) {
      // autossl's own pass (what certbot.service runs first) asks the window and leaves an open one to certbot:
      // nothing renewed by autossl, and status shows the window on the certificate in place
      const own = await cli(['renew', '--pass-only', '--json']);
      expect(own.exitCode, own.stdout + own.stderr).toBe(0);
      expect((parseJson(own.stdout) as { results: unknown[] }).results).toEqual([]);
      expect(certs()).toBe(issuedCerts);
      const rows = (parseJson((await cli(['status', '--json'])).stdout) as { certificates: Array<{ lineage: string; state: string; ari?: { state: string } }> })
        .certificates;
      expect(rows.find((r) => r.lineage === 'short.profile.test')).toMatchObject({ state: 'due', ari: { state: 'open' } });
    }
    const pass = await cli(['renew', '--json']);
    expect(pass.exitCode, pass.stdout + pass.stderr).toBe(0);
    const result = (parseJson(pass.stdout) as { results: Array<{ lineage: string; outcome: string; reason?: string }> }).results.find(
      (r) => r.lineage === 'short.profile.test',
    );
    expect(result).toMatchObject({ outcome: 'renewed' });
    expect(result?.reason, 'who renewed it: certbot by ARI (no reason), or autossl (ari)').toBe(certbotDoesAri(version) ? undefined : 'ari');
    expect(certs(), 'renewed once, not by both').toBe(issuedCerts + 1);
    await expect.poll(async () => (await servedValidity('short.profile.test')).serial, { timeout: 30_000, interval: 250 }).not.toBe(served.serial);
    const again = await servedValidity('short.profile.test');
    expect((again.notAfter - again.notBefore) / 1000).toBeLessThanOrEqual(SHORT_SECONDS);
  }, 240_000);
});
