/**
 * The Cloudflare plugins end to end: pebble, certbot and a private nginx (real, 127.0.0.1), and a local stand-in of
 * Cloudflare's API v4 (test/helpers/cloudflare-standin.ts) that writes through to pebble-challtestsrv, so what the
 * CA resolves is what the stand-in holds: a proxied name resolves to the "edge" 127.0.0.100 (nothing serves the
 * challenge there; it is in preflight.cloudflareRanges for these tests), an unproxied one to its record.
 *  - proxied, no plugin: CLOUDFLARE_PROXIED before any order;
 *  - autossl:cloudflare-proxy: issued, served, proxied again (PATCH false, then PATCH true); a renewal toggles too;
 *  - killed while certbot runs: `autossl recover` proxies it again, once; a record changed by hand is left alone;
 *  - autossl:cloudflare-dns: *.wild + wild issued over DNS-01, served for a subdomain, no TXT left, and
 *    `certbot renew --force-renewal` renews it alone through the hooks;
 *  - faults: an invalid token, 429 with Retry-After 2 (waited out), 429 beyond the bound (error, proxy restored),
 *    5xx while restoring (the undo stays pending; recover finishes it).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AcmeRig, BINARIES } from '../../scripts/sandbox/rig.js';
import { readCertificate } from '../../src/issuer/certificate.js';
import { CloudflareStandin, makeToken } from '../helpers/cloudflare-standin.js';
import { parseJson } from '../helpers/json.js';
import { servedEventually } from '../helpers/served.js';

const CLI = path.resolve(import.meta.dirname, '../../dist/src/cli.js');
const TOKEN = makeToken();

let rig: AcmeRig;
let cf: CloudflareStandin;
const ids = new Map<string, string[]>();

const block = (name: string): string => `server {\n    listen 127.0.0.1:80;\n    listen [::1]:80;\n    server_name ${name};\n    root {root};\n}\n`;
const live = (name: string): string => path.join(rig.certbotDirs().configDir, 'live', name);
const ordersOf = (name: string): number => fs.readFileSync(rig.info.pebbleLog, 'utf8').split(`Value:"${name}"`).length - 1;
const record = (id: string): Record<string, unknown> => cf.listRecords().find((r) => r.id === id)!;
const patches = (id: string): unknown[] =>
  cf.requests.filter((r) => r.method === 'PATCH' && r.path.endsWith(`/${id}`) && r.status === 200).map((r) => (r.body as { proxied?: boolean }).proxied);

function config(file: string, extra: Record<string, unknown> = {}): string {
  const full = path.join(rig.info.dir, file);
  const base = rig.autosslConfig() as { preflight: Record<string, unknown> };
  fs.writeFileSync(
    full,
    JSON.stringify(
      {
        ...base,
        preflight: { ...base.preflight, cloudflareRanges: ['127.0.0.100/32'] },
        dns01: { resolvers: ['127.0.0.1:8053'], propagationTimeoutMs: 20_000 },
        ...extra,
      },
      null,
      2,
    ),
  );
  return full;
}

const proxyPlugin = (options: Record<string, unknown> = {}) => [
  'autossl:cloudflare-proxy',
  { token: TOKEN, apiBase: cf.url, zones: ['cf.test'], propagationTimeoutMs: 20_000, ...options },
];
const cli = (args: string[], file: string) => execa('node', [CLI, ...args, '--config', file], { reject: false });

beforeAll(async () => {
  rig = await AcmeRig.start();
  cf = await CloudflareStandin.start({ tokens: [TOKEN], zones: ['cf.test'], edge: { ipv4: ['127.0.0.100'], ipv6: [] } });
  for (const n of ['np', 'px', 'kill', 'hand', 'rl', 'rl2', 'bad', 'err', 'wild', 'a.wild']) rig.addSite(`${n}.cf.test`, block(`${n}.cf.test`));
  await rig.reloadNginx();
  for (const n of ['np', 'px', 'kill', 'hand', 'rl', 'rl2', 'bad', 'err']) {
    const name = `${n}.cf.test`;
    const list = [(await cf.addRecord('cf.test', { type: 'A', name, content: '127.0.0.1', proxied: true })).id as string];
    if (n === 'rl') list.push((await cf.addRecord('cf.test', { type: 'AAAA', name, content: '::1', proxied: true })).id as string);
    ids.set(n, list);
  }
  // a certbot that takes its time (a sleep on purpose): the run can be killed while it runs
  const slow = path.join(rig.info.dir, 'slow-certbot');
  fs.writeFileSync(slow, `#!/bin/sh\nsleep 4\nexec ${BINARIES.certbot} "$@"\n`, { mode: 0o755 });
});

afterAll(async () => {
  await cf?.close();
  await rig?.stop();
});

describe('Cloudflare', () => {
  it('a proxied name without the proxy plugin is refused with CLOUDFLARE_PROXIED before any order', async () => {
    const run = await cli(['issue', 'np.cf.test', '--json'], config('plain.json'));
    expect(run.exitCode).toBe(1);
    expect(parseJson<{ results: Array<{ error: { code: string } }> }>(run.stdout).results[0]!.error.code).toBe('CLOUDFLARE_PROXIED');
    expect(ordersOf('np.cf.test')).toBe(0);
    expect(cf.requests).toEqual([]);
  });

  it('autossl:cloudflare-proxy: grey-clouded, issued over HTTP-01, served, proxied again; a renewal toggles around certbot', async () => {
    const file = config('proxy.json', { plugins: [proxyPlugin()] });
    const run = await cli(['issue', 'px.cf.test', '--json'], file);
    expect(run.exitCode, run.stdout.slice(-1500)).toBe(0);
    const [id] = ids.get('px')!;
    expect(patches(id!)).toEqual([false, true]);
    expect(record(id!)).toMatchObject({ proxied: true, content: '127.0.0.1' });
    expect(await servedEventually('px.cf.test', readCertificate(path.join(live('px.cf.test'), 'cert.pem')).serial)).toBe(
      readCertificate(path.join(live('px.cf.test'), 'cert.pem')).serial,
    );
    // renewal: beforeRenew turns the proxy off for certbot, the undo after afterRenew turns it on again
    const before = readCertificate(path.join(live('px.cf.test'), 'cert.pem')).serial;
    const renew = await cli(['renew', '--cert-name', 'px.cf.test', '--force', '--json'], file);
    expect(renew.exitCode, renew.stdout.slice(-1500)).toBe(0);
    expect(readCertificate(path.join(live('px.cf.test'), 'cert.pem')).serial).not.toBe(before);
    expect(patches(id!)).toEqual([false, true, false, true]);
    expect(record(id!)).toMatchObject({ proxied: true });
  });

  it('killed while certbot runs: recover proxies it again, once; a record changed by hand meanwhile is left alone and reported', async () => {
    const file = config('slow.json', {
      plugins: [proxyPlugin()],
      certbot: { ...(rig.autosslConfig() as { certbot: Record<string, unknown> }).certbot, binary: path.join(rig.info.dir, 'slow-certbot') },
    });
    for (const n of ['kill', 'hand']) {
      const [id] = ids.get(n)!;
      const child = spawn('node', [CLI, 'issue', `${n}.cf.test`, '--config', file], { stdio: 'ignore', detached: true });
      // wait for the grey-cloud, then for the (slow) certbot to start
      await expect.poll(() => patches(id!), { timeout: 20_000, interval: 50 }).toEqual([false]);
      const certbotRunning = async (): Promise<boolean> => (await execa('pgrep', ['-f', `slow-certbot.*${n}.cf.test`], { reject: false })).exitCode === 0;
      await expect.poll(certbotRunning, { timeout: 10_000, interval: 50, message: 'certbot runs when the process is killed' }).toBe(true);
      process.kill(-child.pid!, 'SIGKILL');
      await new Promise((r) => child.once('exit', r));
      expect(record(id!)).toMatchObject({ proxied: false });
      if (n === 'hand') await cf.editRecord(id!, { content: '127.0.0.2' });
      const recover = await cli(['recover'], file);
      expect(recover.exitCode, recover.stdout).toBe(0);
      if (n === 'kill') {
        expect(record(id!)).toMatchObject({ proxied: true, content: '127.0.0.1' });
        expect(patches(id!)).toEqual([false, true]);
      } else {
        expect(record(id!)).toMatchObject({ proxied: false, content: '127.0.0.2' });
        expect(patches(id!)).toEqual([false]);
        expect(recover.stdout).toMatch(/hand\.cf\.test .*changed meanwhile.*left as it is/);
      }
      // a second recover does nothing more
      await cli(['recover'], file);
      expect(patches(id!)).toEqual(n === 'kill' ? [false, true] : [false]);
    }
  });

  it('autossl:cloudflare-dns: *.wild.cf.test + wild.cf.test over DNS-01, served for a.wild.cf.test, no TXT left; certbot renew --force-renewal renews it alone', async () => {
    const file = config('dns.json', {
      plugins: [['autossl:cloudflare-dns', { token: TOKEN, apiBase: cf.url, zones: ['cf.test'] }]],
      sites: [{ domain: 'wild.cf.test', aliases: ['*.wild.cf.test'], challenge: 'dns-01' }],
    });
    const run = await cli(['issue', 'wild.cf.test', '--json'], file);
    expect(run.exitCode, run.stdout.slice(-1500)).toBe(0);
    const cert = readCertificate(path.join(live('wild.cf.test'), 'cert.pem'));
    expect(cert.names.sort()).toEqual(['*.wild.cf.test', 'wild.cf.test']);
    for (const n of ['wild.cf.test', 'a.wild.cf.test']) expect(await servedEventually(n, cert.serial), n).toBe(cert.serial);
    const created = cf.requests.filter((r) => r.method === 'POST' && r.status === 200 && (r.body as { type?: string }).type === 'TXT');
    expect(created).toHaveLength(2); // apex and wildcard: two values on one name
    expect(cf.listRecords({ type: 'TXT' })).toEqual([]);
    // certbot's own renewal: the manual hooks call autossl, which uses the plugin
    expect((await cli(['install-hooks'], file)).exitCode).toBe(0);
    const renewed = await rig.certbot(['renew', '--force-renewal', '--cert-name', 'wild.cf.test']);
    expect(renewed.exitCode, renewed.stderr.slice(-1500)).toBe(0);
    const after = readCertificate(path.join(live('wild.cf.test'), 'cert.pem'));
    expect(after.serial).not.toBe(cert.serial);
    expect(await servedEventually('a.wild.cf.test', after.serial)).toBe(after.serial);
    expect(cf.listRecords({ type: 'TXT' })).toEqual([]);
  });

  it('faults: an invalid token changes nothing; 429 with Retry-After 2 is waited out; 429 beyond the bound fails with the proxy restored; 5xx while restoring leaves the undo to recover', async () => {
    // an invalid token: a clear code, no record changed, no order
    const badToken = config('badtoken.json', { plugins: [['autossl:cloudflare-proxy', { token: makeToken(), apiBase: cf.url }]] });
    const bad = await cli(['issue', 'bad.cf.test', '--json'], badToken);
    expect(bad.exitCode).toBe(2); // a bad token is bad config: an input error, as in every command
    expect(parseJson<{ results: Array<{ error: { code: string } }> }>(bad.stdout).results[0]!.error.code).toBe('CLOUDFLARE_AUTH_FAILED');
    expect(record(ids.get('bad')![0]!)).toMatchObject({ proxied: true });
    expect(patches(ids.get('bad')![0]!)).toEqual([]);
    expect(ordersOf('bad.cf.test')).toBe(0);

    // 429, Retry-After: 2: waited out, then it succeeds
    const file = config('faults.json', { plugins: [proxyPlugin({ maxRetryWaitMs: 5000, retries: 2 })] });
    cf.rateLimitNext(1, 2, { method: 'PATCH' });
    const started = Date.now();
    const rl2 = await cli(['issue', 'rl2.cf.test', '--json'], file);
    expect(rl2.exitCode, rl2.stdout.slice(-1500)).toBe(0);
    expect(Date.now() - started).toBeGreaterThanOrEqual(2000);
    expect(cf.requests.some((r) => r.status === 429 && r.injected)).toBe(true);
    expect(record(ids.get('rl2')![0]!)).toMatchObject({ proxied: true });

    // 429 beyond the bound on the second record: the run fails with a clear code, the first record is proxied again
    const [a, aaaa] = ids.get('rl')!;
    cf.rateLimitNext(1, 30, { method: 'PATCH', path: new RegExp(`/${aaaa}$`) });
    const rl = await cli(['issue', 'rl.cf.test', '--json'], file);
    expect(rl.exitCode).toBe(1);
    expect(parseJson<{ results: Array<{ error: { code: string } }> }>(rl.stdout).results[0]!.error.code).toBe('CLOUDFLARE_RATE_LIMITED');
    expect(patches(a!)).toEqual([false, true]);
    expect(record(a!)).toMatchObject({ proxied: true });
    expect(record(aaaa!)).toMatchObject({ proxied: true });
    expect(ordersOf('rl.cf.test')).toBe(0);

    // 5xx on every try of the restore (1 + 2 retries): the undo stays pending, the next recover finishes it
    const slow = config('faults-slow.json', {
      plugins: [proxyPlugin({ maxRetryWaitMs: 5000, retries: 2 })],
      certbot: { ...(rig.autosslConfig() as { certbot: Record<string, unknown> }).certbot, binary: path.join(rig.info.dir, 'slow-certbot') },
    });
    const [err] = ids.get('err')!;
    const run = execa('node', [CLI, 'issue', 'err.cf.test', '--json', '--config', slow], { reject: false });
    await expect.poll(() => patches(err!), { timeout: 20_000, interval: 50 }).toEqual([false]);
    cf.failNext({ count: 3, method: 'PATCH', path: new RegExp(`/${err}$`), status: 502, body: 'bad gateway' });
    const done = await run;
    expect(done.stdout).toMatch(/UNDO_FAILED|could not undo/);
    expect(record(err!)).toMatchObject({ proxied: false });
    const recover = await cli(['recover'], slow);
    expect(recover.exitCode, recover.stdout).toBe(0);
    expect(record(err!)).toMatchObject({ proxied: true });
    expect(await servedEventually('err.cf.test', readCertificate(path.join(live('err.cf.test'), 'cert.pem')).serial)).toBe(
      readCertificate(path.join(live('err.cf.test'), 'cert.pem')).serial,
    );
  });
});
