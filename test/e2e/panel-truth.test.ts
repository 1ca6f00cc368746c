/**
 * What the panel sees must be true (issue 20, item 5), with the agent in this process against pebble, certbot and
 * the sandbox's nginx (all real, 127.0.0.1), driven by the signed client:
 *  - /ssl/renew of a certificate under a day old answers why nothing was renewed (the panel shows "Renewed" for
 *    any 200), with the serial as openssl prints it;
 *  - an upload is listed by /v1/certificates (status) with its expiry and state;
 *  - Let's Encrypt certificate, then an upload, then /ssl/delete: no lineage is left for certbot to renew;
 *  - /ssl/delete while the domain's issue runs: the delete waits for the run, then takes it off (not 409, not
 *    served after).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call } from '../../src/agent/client.js';
import { startAgent, type RunningAgent } from '../../src/agent/server.js';
import { validateConfig } from '../../src/config/schema.js';
import { AcmeRig, BINARIES } from '../../scripts/sandbox/rig.js';
import { makeSignedCertificate } from '../helpers/certs.js';

const TOKEN = crypto.randomBytes(32).toString('hex');
const DAY = 86_400_000;
const LT = 'lt.truth.test';
const RACE = 'race.truth.test';
let rig: AcmeRig;
let agent: RunningAgent;

const post = async (p: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> => {
  const r = await call('POST', p, JSON.stringify(body), { url: agent.url, token: TOKEN });
  return { status: r.status, json: r.json() as Record<string, unknown> };
};
const get = async (p: string): Promise<Record<string, unknown>> =>
  (await call('GET', p, '', { url: agent.url, token: TOKEN })).json() as Record<string, unknown>;
const live = (name: string): string => path.join(rig.certbotDirs().configDir, 'live', name);
const vhost = (name: string): string => path.join(rig.info.sitesDir, `${name}.conf`);

beforeAll(async () => {
  rig = await AcmeRig.start();
  for (const name of [LT, RACE]) {
    const root = path.join(rig.info.dir, 'www', name);
    fs.mkdirSync(root, { recursive: true });
    fs.writeFileSync(path.join(root, 'index.html'), `<h1>${name}</h1>\n`);
    fs.writeFileSync(vhost(name), `server {\n    listen 127.0.0.1:80;\n    server_name ${name};\n    root ${root};\n}\n`);
  }
  await rig.reloadNginx();
  const tokens = path.join(rig.info.dir, 'agent-tokens');
  fs.writeFileSync(tokens, `${TOKEN}\n`, { mode: 0o600 });
  const config = validateConfig(
    rig.autosslConfig({ agent: { listen: '127.0.0.1:7443', tokensFile: tokens, batchWindowMs: 200, logLevel: 'silent' } }),
    path.join(rig.info.dir, 'agent.json'),
    rig.info.dir,
  );
  agent = await startAgent(config, { port: 0 });
}, 120_000);

afterAll(async () => {
  await agent?.close();
  await rig?.stop();
});

describe('what the panel sees', () => {
  it('/ssl/renew of a certificate issued a moment ago says why nothing was renewed, serial as openssl prints it', async () => {
    expect((await post('/ssl/issue-async', { domain: LT })).status).toBe(202);
    await expect.poll(async () => (await post('/ssl/status', { domain: LT })).json.exists, { timeout: 120_000, interval: 500 }).toBe(true);
    const printed = (await execa(BINARIES.openssl, ['x509', '-in', path.join(live(LT), 'cert.pem'), '-noout', '-serial'])).stdout
      .replace(/^serial=/, '')
      .trim();
    expect((await post('/ssl/status', { domain: LT })).json.serial).toBe(printed);
    const renew = await post('/ssl/renew', { domain: LT });
    expect([renew.status, renew.json.code], JSON.stringify(renew.json)).toEqual([409, 'CERT_RECENTLY_ISSUED']);
    expect(renew.json.error).toMatch(
      new RegExp(
        `^Not renewed: the certificate of ${LT.replace(/\./g, '\\.')} was issued less than an hour ago \\(serial ${printed}, until .+\\) and is served`,
      ),
    );
    expect(fs.readFileSync(path.join(live(LT), 'cert.pem'), 'utf8')).toContain('BEGIN CERTIFICATE'); // the same lineage, no new order
  }, 180_000);

  it('an upload is listed by /v1/certificates with its expiry and state', async () => {
    const bought = await makeSignedCertificate([LT], new Date(Date.now() - DAY), new Date(Date.now() + 200 * DAY));
    const up = await post('/ssl/upload', { domain: LT, certificate: bought.chain, private_key: bought.key });
    expect(up.status, JSON.stringify(up.json)).toBe(200);
    const listed = (await get('/v1/certificates')) as {
      certificates: Array<{ lineage: string; names: string[]; state: string; notAfter: string; serial: string }>;
    };
    const row = listed.certificates.find((c) => c.lineage === 'custom' && c.names.includes(LT));
    expect(row, JSON.stringify(listed.certificates)).toMatchObject({ state: 'ok', names: [LT], serial: bought.serial });
    expect(Math.abs(Date.parse(row!.notAfter) - (Date.now() + 200 * DAY))).toBeLessThan(DAY);
  });

  it("a Let's Encrypt certificate, then an upload, then a delete: no lineage left to renew", async () => {
    expect(fs.existsSync(live(LT))).toBe(true); // the upload replaced it in the vhost; certbot still has it
    const del = await post('/ssl/delete', { domain: LT });
    expect(del.status, JSON.stringify(del.json)).toBe(200);
    expect(del.json.deleted).toEqual(expect.arrayContaining([LT]));
    expect(fs.existsSync(live(LT))).toBe(false);
    expect(fs.existsSync(path.join(rig.certbotDirs().configDir, 'renewal', `${LT}.conf`))).toBe(false);
    expect(fs.readFileSync(vhost(LT), 'utf8')).not.toContain('ssl_certificate');
  });

  it("/ssl/delete while the domain's issue runs: the run ends, then the delete takes it off (not 409); not served after", async () => {
    expect((await post('/ssl/issue-async', { domain: RACE })).status).toBe(202);
    // its batch started: running, no longer withdrawable
    await expect.poll(() => agent.ctx.intake.settled(RACE) !== null, { timeout: 10_000, interval: 20 }).toBe(true);
    const del = await post('/ssl/delete', { domain: RACE });
    expect(del.status, JSON.stringify(del.json)).toBe(200);
    expect(del.json.status).toBe('deleted');
    expect(fs.readFileSync(vhost(RACE), 'utf8')).not.toContain('ssl_certificate');
    expect(fs.existsSync(live(RACE))).toBe(false);
    const status = await post('/ssl/status', { domain: RACE });
    expect([status.json.exists, status.json.job]).toEqual([false, null]);
  }, 180_000);
});
