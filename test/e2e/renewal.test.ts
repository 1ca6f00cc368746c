/**
 * Renewal end to end (pebble, certbot, nginx): `autossl renew --force` renews three certificates and certbot runs
 * autossl's deploy hook for each (state updated, new serial served without a manual reload); then one domain's
 * DNS points elsewhere: renew exits non-zero, status shows it failing with the ACME error, the other two renew,
 * it keeps serving its old certificate, and the webhook plugin delivers the failure, correctly signed.
 */
import crypto from 'node:crypto';
import http from 'node:http';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AcmeRig } from '../../scripts/sandbox/rig.js';
import { readCertificate } from '../../src/issuer/certificate.js';
import { servedSerial } from '../../src/stages/verify-tls.js';
import { SqliteStore } from '../../src/store/sqlite/index.js';
import { GOOD_FOR_MS } from '../../src/renewal/revocation.js';
import { parseJson } from '../helpers/json.js';
import { servedEventually } from '../helpers/served.js';

const CLI = path.resolve(import.meta.dirname, '../../dist/src/cli.js');
const DOMAINS = ['r1.renew.test', 'r2.renew.test', 'r3.renew.test'];
const SECRET = 'test-secret-0123456789abcdef';

let rig: AcmeRig;
let configFile: string;
let receiver: http.Server;
const received: Array<{ headers: http.IncomingHttpHeaders; body: string }> = [];

const cli = (args: string[]) => execa('node', [CLI, ...args, '--config', configFile], { reject: false });
const liveSerial = (d: string) => readCertificate(path.join(rig.info.dir, 'certbot', 'config', 'live', d, 'cert.pem')).serial;

beforeAll(async () => {
  receiver = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      received.push({ headers: req.headers, body });
      res.end('ok');
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  const port = (receiver.address() as { port: number }).port;
  rig = await AcmeRig.start();
  for (const d of DOMAINS) rig.addSite(d, `server {\n    listen 127.0.0.1:80;\n    server_name ${d};\n    root {root};\n}\n`);
  await rig.reloadNginx();
  configFile = rig.writeAutosslConfig({
    plugins: [['autossl:webhook', { url: `http://127.0.0.1:${port}/hook`, secret: SECRET, retries: 2, backoffMs: 50 }]],
  });
  const issued = await cli(['issue', ...DOMAINS]);
  expect(issued.exitCode, issued.stdout).toBe(0);
  const hooks = await cli(['install-hooks']);
  expect(hooks.exitCode, hooks.stderr).toBe(0);
});

afterAll(async () => {
  await rig?.stop();
  receiver?.close();
});

describe('renewal', () => {
  it('autossl renew --force renews all three; the deploy hook records each and nginx serves the new serials', async () => {
    const before = Object.fromEntries(DOMAINS.map((d) => [d, liveSerial(d)]));
    const run = await cli(['renew', '--force', '--json']);
    expect(run.exitCode, run.stdout + run.stderr).toBe(0);
    const report = parseJson(run.stdout) as { results: Array<{ lineage: string; outcome: string }> };
    expect(report.results.map((r) => [r.lineage, r.outcome]).sort()).toEqual(DOMAINS.map((d) => [d, 'renewed']));
    const store = new SqliteStore(path.join(rig.info.dir, 'state'));
    try {
      for (const d of DOMAINS) {
        const now = liveSerial(d);
        expect(now).not.toBe(before[d]);
        expect(await servedEventually(d, now)).toBe(now); // no manual reload: the deploy hook did it
        const deploys = (await store.attempts.list(d)).filter((a) => a.kind === 'deploy');
        expect(deploys.length).toBe(1);
        expect(deploys[0]!.ok).toBe(true);
        expect((await store.certificates.get(d))!.serial).toBe(now);
      }
    } finally {
      await store.close();
    }
  });

  it('a renewal failure: non-zero exit, failing in status with the ACME error, others renewed, old certificate still served, webhook signed', async () => {
    await rig.dns('/add-a', { host: 'r2.renew.test', addresses: ['127.0.0.9'] });
    const before = Object.fromEntries(DOMAINS.map((d) => [d, liveSerial(d)]));
    const run = await cli(['renew', '--force', '--json']);
    expect(run.exitCode).toBe(1);
    const report = parseJson(run.stdout) as { results: Array<{ lineage: string; outcome: string; message?: string }> };
    const byName = Object.fromEntries(report.results.map((r) => [r.lineage, r]));
    expect(byName['r1.renew.test']!.outcome).toBe('renewed');
    expect(byName['r3.renew.test']!.outcome).toBe('renewed');
    expect(byName['r2.renew.test']!.outcome).toBe('failed');
    expect(byName['r2.renew.test']!.message).toContain('127.0.0.9');
    expect(liveSerial('r2.renew.test')).toBe(before['r2.renew.test']);
    expect(await servedEventually('r2.renew.test', before['r2.renew.test'])).toBe(before['r2.renew.test']);
    for (const d of ['r1.renew.test', 'r3.renew.test']) expect(await servedSerial('127.0.0.1', 443, d)).not.toBe(before[d]);

    const status = await cli(['status', '--json']);
    expect(status.exitCode).toBe(1); // something needs attention
    const rows = (parseJson(status.stdout) as { certificates: Array<{ lineage: string; state: string; lastError: { code: string; message: string } | null }> })
      .certificates;
    expect(rows[0]!.lineage).toBe('r2.renew.test'); // most urgent first
    expect(rows[0]!.state).toBe('failing');
    expect(rows[0]!.lastError!.message).toContain('127.0.0.9');
    expect(
      rows
        .filter((r) => r.state === 'ok')
        .map((r) => r.lineage)
        .sort(),
    ).toEqual(['r1.renew.test', 'r3.renew.test']);
    const table = await cli(['status']);
    expect(table.stdout).toMatch(/r2\.renew\.test +\S+ +[\d.]+ +failing +CERTBOT_FAILED: /);

    const failure = received.find((r) => r.headers['x-autossl-event'] === 'renewal-failed');
    expect(failure).toBeDefined();
    const body = JSON.parse(failure!.body) as { lineage: string; error: { message: string } };
    expect(body.lineage).toBe('r2.renew.test');
    expect(body.error.message).toContain('127.0.0.9');
    const expected = `sha256=${crypto.createHmac('sha256', SECRET).update(`${failure!.headers['x-autossl-timestamp']}.${failure!.body}`).digest('hex')}`;
    expect(failure!.headers['x-autossl-signature']).toBe(expected);
    await rig.dns('/clear-a', { host: 'r2.renew.test' });
  });

  it('two lineages failing differently each record their own error (certbot 5 names them "Identifier:")', async () => {
    await rig.dns('/add-a', { host: 'r1.renew.test', addresses: ['127.0.0.9'] });
    await rig.dns('/add-a', { host: 'r3.renew.test', addresses: ['127.0.0.10'] });
    try {
      const run = await cli(['renew', '--force', '--json']);
      expect(run.exitCode).toBe(1);
      const byName = Object.fromEntries(
        (parseJson(run.stdout) as { results: Array<{ lineage: string; outcome: string; message?: string }> }).results.map((r) => [r.lineage, r]),
      );
      expect(byName['r2.renew.test']!.outcome).toBe('renewed');
      for (const [lineage, own, other] of [
        ['r1.renew.test', '127.0.0.9:', '127.0.0.10:'],
        ['r3.renew.test', '127.0.0.10:', '127.0.0.9:'],
      ] as const) {
        expect(byName[lineage]!.outcome).toBe('failed');
        expect(byName[lineage]!.message).toContain(own);
        expect(byName[lineage]!.message).not.toContain(other);
      }
      const rows = (parseJson((await cli(['status', '--json'])).stdout) as { certificates: Array<{ lineage: string; lastError: { message: string } | null }> })
        .certificates;
      const lastError = (l: string) => rows.find((r) => r.lineage === l)!.lastError!.message;
      expect(lastError('r1.renew.test')).toContain('127.0.0.9:');
      expect(lastError('r1.renew.test')).not.toContain('127.0.0.10:');
      expect(lastError('r3.renew.test')).toContain('127.0.0.10:');
      expect(lastError('r3.renew.test')).not.toContain('127.0.0.9:');
    } finally {
      await rig.dns('/clear-a', { host: 'r1.renew.test' });
      await rig.dns('/clear-a', { host: 'r3.renew.test' });
    }
  });

  it('issue --force: certbot\'s hooks inside autossl\'s own certonly do nothing: one install, no "renewed" notification', async () => {
    const d = 'r1.renew.test';
    const counts = async () => {
      const store = new SqliteStore(path.join(rig.info.dir, 'state'));
      try {
        return {
          deploys: (await store.attempts.list(d)).filter((a) => a.kind === 'deploy').length,
          renewals: (await store.attempts.list(d)).filter((a) => a.kind === 'renew').length,
          notices: (await store.outbox.list()).filter((n) => n.kind === 'renewed' || n.kind === 'renewal-failed').length,
        };
      } finally {
        await store.close();
      }
    };
    const before = await counts();
    const serial = liveSerial(d);
    const run = await cli(['issue', d, '--force', '--json']);
    expect(run.exitCode, run.stdout + run.stderr).toBe(0);
    expect(liveSerial(d)).not.toBe(serial);
    expect(await servedEventually(d, liveSerial(d))).toBe(liveSerial(d));
    // certbot 4 and 5 run the pre/post hooks, certbot 5 the deploy hook too, during certonly: each must leave it to the issue
    expect(await counts()).toEqual(before);

    // The installed deploy hook, as certbot 5 runs it inside autossl's certonly (this process stands for autossl):
    // it does nothing. With a variable naming a process that is not its ancestor, it deploys as usual.
    const hook = path.join(rig.info.dir, 'certbot', 'config', 'renewal-hooks', 'deploy', 'autossl');
    const env = { RENEWED_LINEAGE: path.join(rig.info.dir, 'certbot', 'config', 'live', d), RENEWED_DOMAINS: d };
    const inside = await execa(hook, [], { env: { ...env, AUTOSSL_CERTONLY_PARENT: String(process.pid) }, reject: false });
    expect(inside.exitCode, inside.stderr).toBe(0);
    expect(inside.stdout).toContain('nothing to do');
    expect(await counts()).toEqual(before);
    const stray = await execa(hook, [], { env: { ...env, AUTOSSL_CERTONLY_PARENT: '1' }, reject: false });
    expect(stray.exitCode, stray.stderr).toBe(0);
    expect(await counts()).toMatchObject({ deploys: before.deploys + 1 });
  });

  it('a revoked certificate is "revoked" in status, re-issued by issue, renewed by renew; a failed renewal certbot started is recorded', async () => {
    const states = async () =>
      Object.fromEntries(
        (
          parseJson((await cli(['status', '--json'])).stdout) as {
            certificates: Array<{ lineage: string; state: string; lastError: { code: string | null } | null }>;
          }
        ).certificates.map((r) => [r.lineage, r]),
      );
    const revoke = async (d: string) => {
      const r = await rig.certbot(['revoke', '--cert-name', d, '--no-delete-after-revoke', '--reason', 'superseded']);
      expect(r.exitCode, r.stdout + r.stderr).toBe(0);
    };
    // status: revoked, with the code that says so. Earlier status runs kept a "good" answer for this serial (kept
    // GOOD_FOR_MS): aged past it here, as hours passing would
    await revoke('r2.renew.test');
    const revokedSerial = liveSerial('r2.renew.test');
    const store = new SqliteStore(path.join(rig.info.dir, 'state'));
    try {
      const kept = await store.certificates.revocation('r2.renew.test');
      if (kept) await store.certificates.setRevocation('r2.renew.test', { ...kept, at: Date.now() - GOOD_FOR_MS - 1 });
    } finally {
      await store.close();
    }
    const before = await states();
    expect(before['r2.renew.test']).toMatchObject({ state: 'revoked', lastError: { code: 'CERT_REVOKED' } });
    expect(before['r1.renew.test']!.state).not.toBe('revoked');

    // issue does not reuse it: a new certificate, served
    const issued = await cli(['issue', 'r2.renew.test', '--json']);
    expect(issued.exitCode, issued.stdout + issued.stderr).toBe(0);
    expect(liveSerial('r2.renew.test')).not.toBe(revokedSerial);
    expect(await servedEventually('r2.renew.test', liveSerial('r2.renew.test'))).toBe(liveSerial('r2.renew.test'));
    expect((await states())['r2.renew.test']!.state).not.toBe('revoked');

    // renew (not forced, nothing due) renews the revoked one and only it
    await revoke('r3.renew.test');
    const r3 = liveSerial('r3.renew.test');
    const renewed = await cli(['renew', '--json']);
    expect(renewed.exitCode, renewed.stdout + renewed.stderr).toBe(0);
    const outcomes = Object.fromEntries(
      (parseJson(renewed.stdout) as { results: Array<{ lineage: string; outcome: string }> }).results.map((r) => [r.lineage, r.outcome]),
    );
    expect(outcomes).toMatchObject({ 'r3.renew.test': 'renewed', 'r1.renew.test': 'not-due' });
    expect(liveSerial('r3.renew.test')).not.toBe(r3);
    expect((await states())['r3.renew.test']!.state).not.toBe('revoked');

    // a renewal certbot itself starts (its timer; certbot 5 on its CA's ARI advice) of a lineage not due by
    // autossl's window fails: the post hook records it all the same
    await rig.dns('/add-a', { host: 'r1.renew.test', addresses: ['127.0.0.9'] });
    try {
      const run = await rig.certbot(['renew', '--cert-name', 'r1.renew.test', '--force-renewal']);
      expect(run.exitCode).not.toBe(0);
      const row = (await states())['r1.renew.test'] as unknown as { state: string; lastError: { code: string; message: string } };
      expect(row.state).toBe('failing');
      expect(row.lastError.message).toContain('127.0.0.9');
    } finally {
      await rig.dns('/clear-a', { host: 'r1.renew.test' });
    }
  });
});
