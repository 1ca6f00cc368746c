/**
 * Pre-flight DNS, CAA and Cloudflare checks against a real DNS server: a pebble-challtestsrv of this test's own
 * (no default answers), set up per case through its management API.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import nodeDns from 'node:dns';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { checkCaa, resolveName, waitForTxt } from '../../src/preflight/dns.js';
import { validateConfig } from '../../src/config/schema.js';
import { createAutoSsl } from '../../src/engine.js';
import { BINARIES, challtestsrvArgs } from '../../scripts/sandbox/rig.js';
import type { Plugin } from '../../src/pipeline/context.js';
import { makeTree } from '../helpers/nginx-fixture.js';

const DNS = 18053;
const MGMT = 18055;
let server: ChildProcess;

async function dns(endpoint: string, body: Record<string, unknown>): Promise<void> {
  const res = await fetch(`http://127.0.0.1:${MGMT}${endpoint}`, { method: 'POST', body: JSON.stringify(body) });
  expect(res.ok, endpoint).toBe(true);
}

beforeAll(async () => {
  server = spawn(BINARIES.challtestsrv, await challtestsrvArgs({ dns: `127.0.0.1:${DNS}`, management: `127.0.0.1:${MGMT}` }), { stdio: 'ignore' });
  const up = (): Promise<boolean> =>
    new Promise<boolean>((r) =>
      net
        .connect(MGMT, '127.0.0.1')
        .on('connect', function (this: net.Socket) {
          this.destroy();
          r(true);
        })
        .on('error', () => r(false)),
    );
  await vi.waitUntil(up, { timeout: 10_000, interval: 50 }); // challtestsrv answers on its management port
});

afterAll(() => {
  server?.kill();
});

const opts = { servers: [`127.0.0.1:${DNS}`], timeoutMs: 2000 };

/** Runs the pre-flight DNS/CAA/Cloudflare checks through the engine, as `autossl check` does. */
async function check(name: string, plugins: Plugin[] = []) {
  const tree = await makeTree(`server {\n    listen 80;\n    server_name ${name};\n    root /var/www;\n}\n`);
  const engine = await createAutoSsl(
    validateConfig({
      nginx: { binary: BINARIES.nginx, config: tree.main },
      serverAddresses: ['192.0.2.10', '2001:db8::10'],
      stateDir: `${tree.dir}/state`,
      preflight: { resolvers: [`127.0.0.1:${DNS}`], timeoutMs: 2000 },
    }),
    plugins,
  );
  const [result] = await engine.check([name], { skipChecks: ['port80'] });
  return result!;
}

const errorCodes = (r: Awaited<ReturnType<typeof check>>) => r.findings.filter((f) => f.severity === 'error').map((f) => f.code);

describe('pre-flight DNS (real DNS server)', () => {
  it('a matching A record passes', async () => {
    await dns('/add-a', { host: 'match.pf.test', addresses: ['192.0.2.10'] });
    const r = await check('match.pf.test');
    expect(errorCodes(r)).toEqual([]);
    expect(r.ok).toBe(true);
  });

  it('a mismatched A record is DNS_MISMATCH, naming found and expected addresses', async () => {
    await dns('/add-a', { host: 'other.pf.test', addresses: ['198.51.100.7'] });
    const r = await check('other.pf.test');
    expect(errorCodes(r)).toEqual(['DNS_MISMATCH']);
    expect(r.findings.find((f) => f.code === 'DNS_MISMATCH')!.message).toMatch(/198\.51\.100\.7.*192\.0\.2\.10/);
  });

  it('the right A with a foreign AAAA is DNS_AAAA_MISMATCH', async () => {
    await dns('/add-a', { host: 'v6.pf.test', addresses: ['192.0.2.10'] });
    await dns('/add-aaaa', { host: 'v6.pf.test', addresses: ['2001:db8::99'] });
    expect(errorCodes(await check('v6.pf.test'))).toEqual(['DNS_AAAA_MISMATCH']);
  });

  it('no records is DNS_NO_RECORDS', async () => {
    expect(errorCodes(await check('nothing.pf.test'))).toEqual(['DNS_NO_RECORDS']);
  });

  it('SERVFAIL is DNS_SERVFAIL', async () => {
    await dns('/set-servfail', { host: 'broken.pf.test' });
    const r = await check('broken.pf.test');
    expect(errorCodes(r)).toContain('DNS_SERVFAIL');
  });

  it("CAA forbidding Let's Encrypt is CAA_FORBIDS; allowing passes; a parent's CAA applies", async () => {
    await dns('/add-a', { host: 'caa-no.pf.test', addresses: ['192.0.2.10'] });
    await dns('/add-caa', { host: 'caa-no.pf.test', policies: [{ tag: 'issue', value: 'otherca.example' }] });
    expect(errorCodes(await check('caa-no.pf.test'))).toEqual(['CAA_FORBIDS']);

    await dns('/add-a', { host: 'caa-yes.pf.test', addresses: ['192.0.2.10'] });
    await dns('/add-caa', {
      host: 'caa-yes.pf.test',
      policies: [
        { tag: 'issue', value: 'otherca.example' },
        { tag: 'issue', value: 'letsencrypt.org' },
      ],
    });
    expect(errorCodes(await check('caa-yes.pf.test'))).toEqual([]);

    await dns('/add-caa', { host: 'parent.pf.test', policies: [{ tag: 'issue', value: 'otherca.example' }] });
    expect(await checkCaa('www.parent.pf.test', opts)).toMatchObject({ at: 'parent.pf.test', allowsLetsEncrypt: false });
  });

  it('a Cloudflare address is CLOUDFLARE_PROXIED, a finding a plugin may resolve', async () => {
    await dns('/add-a', { host: 'cf.pf.test', addresses: ['104.16.132.229'] });
    const r = await check('cf.pf.test');
    expect(errorCodes(r)).toEqual(['CLOUDFLARE_PROXIED']);
    expect(r.findings.find((f) => f.code === 'CLOUDFLARE_PROXIED')!.check).toBe('cloudflare');
    // a plugin that can act on it (grey-clouding, DNS-01) marks it resolved on the `findings` hook
    const greyCloud: Plugin = {
      name: 'grey-cloud-stub',
      apply: (hooks) =>
        hooks.findings.tapPromise('grey-cloud-stub', async (ctx) => {
          for (const f of ctx.findings) if (f.code === 'CLOUDFLARE_PROXIED') f.resolved = true;
        }),
    };
    expect((await check('cf.pf.test', [greyCloud])).ok).toBe(true);
  });

  it('a CNAME chain to a matching name passes and reports the chain', async () => {
    await dns('/set-cname', { host: 'alias.pf.test', target: 'target.pf.test' });
    await dns('/add-a', { host: 'target.pf.test', addresses: ['192.0.2.10'] });
    const res = await resolveName('alias.pf.test', opts);
    expect(res.cnames).toEqual(['target.pf.test']);
    const r = await check('alias.pf.test');
    expect(errorCodes(r)).toEqual([]);
    expect(r.findings.find((f) => f.check === 'dns')!.message).toContain('via CNAME target.pf.test');
  });
});

/**
 * A resolver as Debian 13's Node has it (system c-ares 1.34.5, query cache on): every answer it got, "no such
 * record" included, is its answer to the same question from then on.
 */
class CachingResolver extends nodeDns.promises.Resolver {
  static made = 0;
  private readonly answers = new Map<string, Promise<string[][]>>();
  constructor(options?: ConstructorParameters<typeof nodeDns.promises.Resolver>[0]) {
    super(options);
    CachingResolver.made++;
  }
  override resolveTxt(name: string): Promise<string[][]> {
    if (!this.answers.has(name)) this.answers.set(name, super.resolveTxt(name));
    return this.answers.get(name)!;
  }
}

describe('DNS-01 propagation wait (real DNS server)', () => {
  for (const kind of ['the platform resolver', 'a resolver that caches negative answers'] as const) {
    it(`sees a TXT record that appears 2 s after its first poll missed, through ${kind}`, async () => {
      const fqdn = `_acme-challenge.late-${kind.length}.pf.test`;
      const Real = nodeDns.promises.Resolver;
      if (kind !== 'the platform resolver') (nodeDns.promises as { Resolver: unknown }).Resolver = CachingResolver;
      CachingResolver.made = 0;
      try {
        const waiting = waitForTxt(fqdn, 'late-value', { servers: opts.servers, queryTimeoutMs: 2000, timeoutMs: 15_000, intervalMs: 200 });
        // the first poll has asked and missed: the record does not exist yet
        const probe = new Real();
        probe.setServers(opts.servers);
        await expect(probe.resolveTxt(fqdn)).rejects.toMatchObject({ code: expect.stringMatching(/^(ENODATA|ENOTFOUND)$/) });
        // a sleep on purpose: the case is a record that appears late, after some polls of the wait have missed it
        await new Promise((r) => setTimeout(r, 2000));
        await dns('/set-txt', { host: `${fqdn}.`, value: 'late-value' });
        expect(await waiting).toEqual({ visible: true, seen: ['late-value'] });
        if (kind !== 'the platform resolver') expect(CachingResolver.made).toBeGreaterThan(1);
      } finally {
        (nodeDns.promises as { Resolver: unknown }).Resolver = Real;
        await dns('/clear-txt', { host: `${fqdn}.` });
      }
    });
  }

  it('gives up at its deadline with what it saw', async () => {
    const fqdn = '_acme-challenge.never.pf.test';
    await dns('/set-txt', { host: `${fqdn}.`, value: 'other-value' });
    const started = Date.now();
    expect(await waitForTxt(fqdn, 'wanted', { servers: opts.servers, queryTimeoutMs: 2000, timeoutMs: 1000, intervalMs: 200 })).toEqual({
      visible: false,
      seen: ['other-value'],
    });
    expect(Date.now() - started).toBeLessThan(5000);
    await dns('/clear-txt', { host: `${fqdn}.` });
  });
});
