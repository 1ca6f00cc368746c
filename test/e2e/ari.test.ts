/**
 * ARI end to end on this machine's certbot against pebble >= 2.10 (Debian sid's, which .ci/run unpacks and names
 * in AUTOSSL_PEBBLE): one scheduler pass (`autossl renew`, what the timer runs) asks pebble each lineage's window;
 * the lineage whose window pebble moved into the past is renewed in that pass by autossl, whatever the certbot
 * (certbot >= 4.1, in the sid root, asks ARI itself but only after the Retry-After it kept from its last ask, so
 * a window moved into the past could wait hours for it) and nginx serves its new serial over SNI (the
 * deploy hook installed it); the lineage whose window is ahead is left alone and `status` and the agent show its
 * window. Two passes at once renew it once.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AcmeRig, BINARIES } from '../../scripts/sandbox/rig.js';
import { startAgent } from '../../src/agent/server.js';
import { readCertificate } from '../../src/issuer/certificate.js';
import { validateConfig } from '../../src/config/schema.js';
import { servedSerial } from '../../src/stages/verify-tls.js';
import { parseJson } from '../helpers/json.js';
import { servedEventually } from '../helpers/served.js';

const CLI = path.resolve(import.meta.dirname, '../../dist/src/cli.js');
const PAST = 'past.ari.test';
const FUTURE = 'future.ari.test';
const DAY = 86_400_000;

let rig: AcmeRig;
let configFile: string;
const cli = (args: string[]) => execa('node', [CLI, ...args, '--config', configFile], { reject: false, env: { NODE_EXTRA_CA_CERTS: rig.info.caCert } });
const live = (d: string, f = 'cert.pem') => path.join(rig.info.dir, 'certbot', 'config', 'live', d, f);

beforeAll(async () => {
  rig = await AcmeRig.start();
  const dir = await rig.directory();
  // not a skip: this test is about ARI, and a pebble without it (Debian 12's 2.4) cannot show it
  if (typeof dir.renewalInfo !== 'string')
    throw new Error(
      `${BINARIES.pebble} has no renewalInfo in its directory (pebble < 2.10?): run with AUTOSSL_PEBBLE="$(scripts/pebble-sid.sh)", as .ci/run does`,
    );
  for (const d of [PAST, FUTURE]) rig.addSite(d, `server {\n    listen 127.0.0.1:80;\n    server_name ${d};\n    root {root};\n}\n`);
  await rig.reloadNginx();
  configFile = path.join(rig.info.dir, 'autossl.config.json');
  const tokens = path.join(rig.info.dir, 'agent-tokens');
  fs.writeFileSync(tokens, `${'t'.repeat(48)}\n`, { mode: 0o600 });
  fs.writeFileSync(configFile, JSON.stringify(rig.autosslConfig({ agent: { listen: '127.0.0.1:7443', tokensFile: tokens, logLevel: 'silent' } }), null, 2));
  const issued = await cli(['issue', PAST, FUTURE]);
  expect(issued.exitCode, issued.stdout + issued.stderr).toBe(0);
  const hooks = await cli(['install-hooks']);
  expect(hooks.exitCode, hooks.stderr).toBe(0);
}, 180_000);

afterAll(async () => {
  await rig?.stop();
});

describe('ARI: autossl renews a window moved into the past at once, on every certbot (inside an open window with certbot < 4.1 only)', () => {
  it('one pass renews the lineage whose window pebble moved into the past, leaves the one ahead, and status shows the window', async () => {
    const pastSerial = readCertificate(live(PAST)).serial;
    const futureSerial = readCertificate(live(FUTURE)).serial;
    const notAfter = readCertificate(live(FUTURE)).notAfter.getTime();
    // pebble's management API: this certificate's window is now an hour that ended an hour ago
    await rig.setRenewalInfo(fs.readFileSync(live(PAST), 'utf8'), { start: new Date(Date.now() - 2 * 3_600_000), end: new Date(Date.now() - 3_600_000) });

    const pass = await cli(['renew', '--json']);
    expect(pass.exitCode, pass.stdout + pass.stderr).toBe(0);
    const report = parseJson(pass.stdout) as { results: Array<{ lineage: string; outcome: string; reason?: string }> };
    const past = report.results.find((r) => r.lineage === PAST);
    expect(past).toMatchObject({ outcome: 'renewed' });
    // autossl's forced renewal, whatever the certbot (certbot >= 4.1 renews inside an open window itself)
    expect(past?.reason).toBe('ari');
    expect(report.results.find((r) => r.lineage === FUTURE)).toMatchObject({ outcome: 'not-due' });

    const renewed = readCertificate(live(PAST)).serial;
    expect(renewed).not.toBe(pastSerial);
    expect(await servedEventually(PAST, renewed)).toBe(renewed); // the deploy hook installed it: served over SNI
    expect(readCertificate(live(FUTURE)).serial).toBe(futureSerial);
    expect(await servedSerial('127.0.0.1', 443, FUTURE)).toBe(futureSerial);

    // status shows the window pebble gave the certificate ahead: 2/3 of its lifetime, +-1 day
    const status = await cli(['status', '--json']);
    const rows = (
      parseJson(status.stdout) as {
        certificates: Array<{ lineage: string; state: string; ari?: { state: string; start: string; end: string; renewAt: string } }>;
      }
    ).certificates;
    const future = rows.find((r) => r.lineage === FUTURE)!;
    expect(future.state).toBe('ok');
    expect(future.ari?.state).toBe('future');
    const lifetime = notAfter - readCertificate(live(FUTURE)).notBefore.getTime();
    const ideal = notAfter - lifetime / 3;
    expect(Math.abs(Date.parse(future.ari!.start) - (ideal - DAY))).toBeLessThan(60_000);
    expect(Math.abs(Date.parse(future.ari!.end) - (ideal + DAY))).toBeLessThan(60_000);
    expect(Date.parse(future.ari!.renewAt)).toBeGreaterThanOrEqual(Date.parse(future.ari!.start));
    expect(Date.parse(future.ari!.renewAt)).toBeLessThan(Date.parse(future.ari!.end));
    const text = await cli(['status']);
    expect(text.stdout).toContain(`ARI window ${future.ari!.start.slice(0, 16)}`);

    // the agent: /ssl/status (what a panel asks per domain) and /v1/certificates (status --json) show it too
    const agent = await startAgent(validateConfig(parseJson(fs.readFileSync(configFile, 'utf8')), configFile, rig.info.dir), { port: 0 });
    try {
      const call = await cli(['agent', 'call', 'POST', '/ssl/status', JSON.stringify({ domain: FUTURE }), '--url', agent.url]);
      expect(call.exitCode, call.stdout + call.stderr).toBe(0);
      expect((parseJson(call.stdout) as { ari: unknown }).ari).toEqual(future.ari);
      const v1 = await cli(['agent', 'call', 'GET', '/v1/certificates', '--url', agent.url]);
      expect(v1.exitCode, v1.stdout + v1.stderr).toBe(0);
      expect((parseJson(v1.stdout) as { certificates: typeof rows }).certificates.find((r) => r.lineage === FUTURE)?.ari).toEqual(future.ari);
    } finally {
      await agent.close();
    }

    // a second pass: nothing is due, nothing renewed (the renewed certificate's own window lies ahead)
    const again = await cli(['renew', '--json']);
    expect(again.exitCode, again.stdout + again.stderr).toBe(0);
    expect((parseJson(again.stdout) as { results: Array<{ outcome: string }> }).results.every((r) => r.outcome === 'not-due')).toBe(true);
    expect(readCertificate(live(PAST)).serial).toBe(renewed);
  }, 240_000);

  it('two passes at once (the timer and an admin) renew a lineage whose window is in the past once, not twice', async () => {
    const archive = path.join(rig.info.dir, 'certbot', 'config', 'archive', PAST);
    const certs = () => fs.readdirSync(archive).filter((f) => /^cert\d+\.pem$/.test(f)).length;
    // a certificate autossl has not asked about yet (the last one's window is kept 6 hours: Retry-After)
    const forced = await cli(['renew', '--cert-name', PAST, '--force', '--json']);
    expect(forced.exitCode, forced.stdout + forced.stderr).toBe(0);
    const before = certs();
    await rig.setRenewalInfo(fs.readFileSync(live(PAST), 'utf8'), { start: new Date(Date.now() - 2 * 3_600_000), end: new Date(Date.now() - 3_600_000) });
    const [a, b] = await Promise.all([cli(['renew', '--json']), cli(['renew', '--json'])]);
    expect(a.exitCode, a.stdout + a.stderr).toBe(0);
    expect(b.exitCode, b.stdout + b.stderr).toBe(0);
    expect(certs()).toBe(before + 1);
    const now = readCertificate(live(PAST)).serial;
    expect(await servedEventually(PAST, now)).toBe(now);
  }, 240_000);

  it("renew --pass-only (certbot.service's first step): the past window renewed in one certbot run of its own, no certbot renew of all", async () => {
    const logs = path.join(rig.info.dir, 'certbot', 'logs');
    // what certbot logged since `from` bytes (the rig keeps one log, appended to): a run of all processes every
    // renewal config
    const logged = (from = 0) => fs.readFileSync(path.join(logs, 'letsencrypt.log'), 'utf8').slice(from);
    const forced = await cli(['renew', '--cert-name', PAST, '--force', '--json']);
    expect(forced.exitCode, forced.stdout + forced.stderr).toBe(0);
    const serial = readCertificate(live(PAST)).serial;
    const futureSerial = readCertificate(live(FUTURE)).serial;
    await rig.setRenewalInfo(fs.readFileSync(live(PAST), 'utf8'), { start: new Date(Date.now() - 2 * 3_600_000), end: new Date(Date.now() - 3_600_000) });
    const start = logged().length;
    const pass = await cli(['renew', '--pass-only', '--json']);
    expect(pass.exitCode, pass.stdout + pass.stderr).toBe(0);
    // only what autossl renewed itself is reported: certbot's run of all is certbot.service's own, after this
    expect((parseJson(pass.stdout) as { results: unknown[] }).results).toEqual([expect.objectContaining({ lineage: PAST, outcome: 'renewed', reason: 'ari' })]);
    const log = logged(start);
    expect(log).toContain(`renewal/${PAST}.conf`); // certbot ran for the forced renewal of PAST, alone
    expect(log).not.toContain(`renewal/${FUTURE}.conf`);
    const renewed = readCertificate(live(PAST)).serial;
    expect(renewed).not.toBe(serial);
    expect(await servedEventually(PAST, renewed)).toBe(renewed);
    expect(readCertificate(live(FUTURE)).serial).toBe(futureSerial);
    // nothing left for autossl: the pass runs no certbot at all
    const idle = await cli(['renew', '--pass-only', '--json']);
    expect((parseJson(idle.stdout) as { results: unknown[] }).results).toEqual([]);
    expect(logged(start)).toBe(log);
  }, 240_000);
});
