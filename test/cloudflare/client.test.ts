/**
 * The Cloudflare API client against the local stand-in (test/helpers/cloudflare-standin.ts): zone walk,
 * pagination, PATCH semantics, identical TXT, token and rate-limit handling, 5xx, timeouts, input validation,
 * and that the token never shows in an error. Then the stand-in's write-through: a pebble-challtestsrv of this
 * file's own (ports 28053/28055, no default answers), queried with node:dns, answers what the stand-in holds.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import dns from 'node:dns';
import net from 'node:net';
import util from 'node:util';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { CloudflareClient } from '../../plugins/cloudflare/client.js';
import { CloudflareStandin, makeToken } from '../helpers/cloudflare-standin.js';
import { AutoSslError } from '../../src/errors.js';
import { BINARIES, challtestsrvArgs } from '../../scripts/sandbox/rig.js';

const TOKEN = makeToken();
const READ_ONLY = makeToken();
const OTHER_ZONE_ONLY = makeToken();

async function rejection(promise: Promise<unknown>): Promise<AutoSslError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(AutoSslError);
    return error as AutoSslError;
  }
  throw new Error('expected a rejection');
}

/** Every way an error can end up in a log: JSON, inspect (hidden fields, causes), stack, message. */
function everyRendering(error: unknown): string {
  const e = error as Error & { cause?: unknown };
  return [
    JSON.stringify(error),
    util.inspect(error, { depth: Infinity, showHidden: true }),
    e.stack ?? '',
    e.message,
    String(e.cause ?? ''),
    util.format('%o', error),
  ].join('\n');
}

describe('CloudflareClient against the stand-in', () => {
  let cf: CloudflareStandin;
  let client: CloudflareClient;
  let zone: string;

  beforeEach(async () => {
    cf = await CloudflareStandin.start({
      tokens: [TOKEN, { token: READ_ONLY, edit: false }, { token: OTHER_ZONE_ONLY, zones: ['other.test'] }],
      zones: ['example.com', 'other.test', { name: 'pending.example.com', status: 'pending' }],
      challtestsrv: null,
    });
    client = new CloudflareClient({ token: TOKEN, baseUrl: cf.url });
    zone = cf.zoneId('example.com');
  });

  afterEach(async () => {
    await cf.close();
  });

  it('finds the zone by walking the name up, one GET /zones?name= per suffix', async () => {
    const found = await client.findZone('a.b.example.com');
    expect(found).toMatchObject({ id: zone, name: 'example.com', status: 'active' });
    expect(cf.requests.map((r) => [r.method, r.path, r.query.name])).toEqual([
      ['GET', '/zones', 'a.b.example.com'],
      ['GET', '/zones', 'b.example.com'],
      ['GET', '/zones', 'example.com'],
    ]);
    // A wildcard starts at its base name; the trailing dot and case do not matter.
    cf.clearRequests();
    expect((await client.findZone('*.Example.COM.')).id).toBe(zone);
    expect(cf.requests.map((r) => r.query.name)).toEqual(['example.com']);
  });

  it('skips a zone that is not active, and says which zones it tried when none holds the name', async () => {
    // pending.example.com exists but is pending: its records are not what the world resolves.
    expect((await client.findZone('x.pending.example.com')).id).toBe(zone);
    const error = await rejection(client.findZone('www.nowhere.example'));
    expect(error.code).toBe('CLOUDFLARE_ZONE_NOT_FOUND');
    expect(error.message).toContain('www.nowhere.example, nowhere.example');
    // A token limited to another zone does not see example.com at all.
    const limited = new CloudflareClient({ token: OTHER_ZONE_ONLY, baseUrl: cf.url });
    expect((await rejection(limited.findZone('www.example.com'))).code).toBe('CLOUDFLARE_ZONE_NOT_FOUND');
    expect((await limited.findZone('www.other.test')).name).toBe('other.test');
  });

  it('lists records across pages until total_pages', async () => {
    for (let i = 0; i < 250; i++) await cf.addRecord('example.com', { type: 'TXT', name: 'many', content: `value-${i}` });
    await cf.addRecord('example.com', { type: 'A', name: 'many', content: '192.0.2.1' });
    const records = await client.listRecords(zone, { type: 'TXT', name: 'many.example.com' });
    expect(records).toHaveLength(250);
    expect(new Set(records.map((r) => r.id)).size).toBe(250);
    expect(records.every((r) => r.type === 'TXT' && r.name === 'many.example.com')).toBe(true);
    expect(cf.requests.map((r) => [r.path, r.query.page, r.query.per_page, r.query.type, r.query.name, r.status])).toEqual([
      [`/zones/${zone}/dns_records`, '1', '100', 'TXT', 'many.example.com', 200],
      [`/zones/${zone}/dns_records`, '2', '100', 'TXT', 'many.example.com', 200],
      [`/zones/${zone}/dns_records`, '3', '100', 'TXT', 'many.example.com', 200],
    ]);
    const small = new CloudflareClient({ token: TOKEN, baseUrl: cf.url, perPage: 7 });
    expect(await small.listRecords(zone, { name: 'MANY.example.com.' })).toHaveLength(251);
  });

  it('PATCH sends and changes only the given fields', async () => {
    const created = await client.createRecord(zone, {
      type: 'A',
      name: 'www.example.com',
      content: '192.0.2.10',
      proxied: true,
      ttl: 300,
      comment: 'keep me',
      tags: ['team:web'],
    });
    expect(created).toMatchObject({
      name: 'www.example.com',
      content: '192.0.2.10',
      proxied: true,
      proxiable: true,
      ttl: 1,
      comment: 'keep me',
      tags: ['team:web'],
    });
    const off = await client.patchRecord(zone, created.id, { proxied: false });
    expect(cf.requests.at(-1)).toMatchObject({ method: 'PATCH', path: `/zones/${zone}/dns_records/${created.id}`, body: { proxied: false }, status: 200 });
    expect(off).toMatchObject({
      id: created.id,
      name: 'www.example.com',
      type: 'A',
      content: '192.0.2.10',
      proxied: false,
      ttl: 1,
      comment: 'keep me',
      tags: ['team:web'],
      created_on: created.created_on,
    });
    const moved = await client.patchRecord(zone, created.id, { type: 'A', content: '192.0.2.11' });
    expect(cf.requests.at(-1)!.body).toEqual({ type: 'A', content: '192.0.2.11' });
    expect(moved).toMatchObject({ content: '192.0.2.11', proxied: false, comment: 'keep me', tags: ['team:web'] });
    expect(await client.getRecord(zone, created.id)).toEqual(moved);
    expect(await client.deleteRecord(zone, created.id)).toEqual({ id: created.id });
    expect(cf.listRecords()).toEqual([]);
  });

  it('treats an identical TXT record as created, and keeps two values on one name apart', async () => {
    const name = '_acme-challenge.example.com';
    const first = await client.createTxt(zone, name, 'token-value-one', { ttl: 120 });
    expect(first).toMatchObject({ created: true, record: { type: 'TXT', name, content: 'token-value-one', ttl: 120 } });
    const again = await client.createTxt(zone, name, 'token-value-one', { ttl: 120 });
    expect(again).toEqual({ created: false, record: first.record });
    // The POST was refused with Cloudflare's 81058, then the record was looked up.
    expect(cf.requests.slice(-2).map((r) => [r.method, r.status])).toEqual([
      ['POST', 400],
      ['GET', 200],
    ]);
    // A record stored with quotes still counts as the same value.
    await cf.addRecord('example.com', { type: 'TXT', name: '_acme-challenge.quoted', content: '"quoted-value"' });
    expect((await client.createTxt(zone, '_acme-challenge.quoted.example.com', 'quoted-value')).created).toBe(false);
    // Apex + wildcard in one order: two different values on the same name.
    const second = await client.createTxt(zone, name, 'token-value-two');
    expect(second.created).toBe(true);
    expect(
      cf
        .listRecords({ name, type: 'TXT' })
        .map((r) => r.content)
        .sort(),
    ).toEqual(['token-value-one', 'token-value-two']);
  });

  it('an invalid, malformed or read-only token is a coded error and changes nothing', async () => {
    const record = await client.createRecord(zone, { type: 'A', name: 'app.example.com', content: '192.0.2.20', proxied: true });
    const before = cf.listRecords();

    const wrong = new CloudflareClient({ token: makeToken(), baseUrl: cf.url });
    const e1 = await rejection(wrong.findZone('app.example.com'));
    expect(e1).toMatchObject({ code: 'CLOUDFLARE_AUTH_FAILED', details: { status: 403, cloudflareErrors: [{ code: 9109, message: 'Invalid access token' }] } });
    expect(e1.hint).toContain('Zone:DNS:Edit');
    const e2 = await rejection(wrong.patchRecord(zone, record.id, { proxied: false }));
    expect(e2.code).toBe('CLOUDFLARE_AUTH_FAILED');

    const malformed = new CloudflareClient({ token: 'a-global-api-key-is-37-characters-long', baseUrl: cf.url });
    const e3 = await rejection(malformed.patchRecord(zone, record.id, { proxied: false }));
    expect(e3).toMatchObject({ code: 'CLOUDFLARE_AUTH_FAILED', details: { status: 400, cloudflareErrors: [{ code: 6003 }] } });
    expect(e3.message).toContain('malformed');

    const readOnly = new CloudflareClient({ token: READ_ONLY, baseUrl: cf.url });
    expect((await readOnly.listRecords(zone)).map((r) => r.id)).toEqual([record.id]);
    const e4 = await rejection(readOnly.patchRecord(zone, record.id, { proxied: false }));
    expect(e4).toMatchObject({ code: 'CLOUDFLARE_AUTH_FAILED', details: { status: 403, cloudflareErrors: [{ code: 10000 }] } });
    const e5 = await rejection(readOnly.createTxt(zone, '_acme-challenge.app.example.com', 'x'));
    expect(e5.code).toBe('CLOUDFLARE_AUTH_FAILED');

    // A token without Zone:Read is told so by name, not by one of the codes.
    cf.failNext({
      status: 403,
      body: {
        success: false,
        errors: [{ code: 0, message: "Actor 'com.cloudflare.api.token' requires permission 'com.cloudflare.api.account.zone.list' to list zones" }],
        messages: [],
        result: null,
      },
    });
    expect((await rejection(client.findZone('example.com'))).code).toBe('CLOUDFLARE_AUTH_FAILED');
    // A 403 about something else is not a token problem.
    cf.failNext({
      status: 403,
      body: {
        success: false,
        errors: [{ code: 1038, message: 'You cannot use this API for domains with a .cf, .ga, .gq, .ml, or .tk TLD (top-level domain).' }],
        messages: [],
        result: null,
      },
    });
    expect((await rejection(client.findZone('example.com'))).code).toBe('CLOUDFLARE_API_ERROR');

    expect(cf.listRecords()).toEqual(before);
  });

  it('waits out a 429 with Retry-After: 2, then succeeds', async () => {
    cf.rateLimitNext(1, 2);
    const started = Date.now();
    const found = await client.findZone('example.com');
    const took = Date.now() - started;
    expect(found.id).toBe(zone);
    expect(took).toBeGreaterThanOrEqual(1900);
    expect(took).toBeLessThan(5000);
    expect(cf.requests.map((r) => r.status)).toEqual([429, 200]);
  });

  it('a 429 asking for longer than the bound is a clear error, without waiting', async () => {
    const bounded = new CloudflareClient({ token: TOKEN, baseUrl: cf.url, maxRetryWaitMs: 10_000 });
    cf.rateLimitNext(1, 300);
    const started = Date.now();
    const error = await rejection(bounded.patchRecord(zone, 'f'.repeat(32), { proxied: true }));
    expect(Date.now() - started).toBeLessThan(1000);
    expect(error).toMatchObject({ code: 'CLOUDFLARE_RATE_LIMITED', details: { status: 429, retryAfterMs: 300_000 } });
    expect(error.message).toContain('to wait 300 s (Retry-After), beyond the 10 s this run may wait');
    // The bound is for the whole call: 1 s + 1 s fit in 2.5 s, the third 1 s does not.
    const tight = new CloudflareClient({ token: TOKEN, baseUrl: cf.url, maxRetryWaitMs: 2500 });
    cf.rateLimitNext(3, 1);
    const e2 = await rejection(tight.listRecords(zone));
    expect(e2).toMatchObject({ code: 'CLOUDFLARE_RATE_LIMITED', details: { waitedMs: 2000 } });
    // "Retry-After: 0" forever still ends: each wait counts at least 1 s against the bound.
    cf.rateLimitNext(100, 0);
    expect(await rejection(tight.listRecords(zone))).toMatchObject({ code: 'CLOUDFLARE_RATE_LIMITED', details: { waitedMs: 2000 } });
  });

  it('the stand-in enforces its own per-token rate limit with Retry-After, and the client waits it out', async () => {
    const limited = await CloudflareStandin.start({
      tokens: [TOKEN],
      zones: ['example.com'],
      challtestsrv: null,
      rateLimit: { requests: 3, windowSeconds: 1 },
    });
    try {
      const c = new CloudflareClient({ token: TOKEN, baseUrl: limited.url });
      for (let i = 0; i < 4; i++) await c.findZone('example.com');
      const statuses = limited.requests.map((r) => r.status);
      expect(statuses.slice(0, 4)).toEqual([200, 200, 200, 429]);
      expect(statuses.at(-1)).toBe(200);
      expect(limited.requests[3]!.injected).toBeUndefined();
    } finally {
      await limited.close();
    }
  });

  it('retries a 5xx, and after the retries says the API is unavailable', async () => {
    cf.failNext({ status: 502, path: `/zones/${zone}/dns_records` });
    expect(await client.listRecords(zone)).toEqual([]);
    expect(cf.requests.map((r) => r.status)).toEqual([502, 200]);

    cf.clearRequests();
    cf.failNext({ status: 503, count: 10 });
    const error = await rejection(client.createRecord(zone, { type: 'A', name: 'down.example.com', content: '192.0.2.30' }));
    expect(error).toMatchObject({ code: 'CLOUDFLARE_UNAVAILABLE', details: { status: 503, attempts: 3 } });
    expect(error.message).toContain('HTTP 503');
    expect(cf.requests).toHaveLength(3);
    expect(cf.listRecords()).toEqual([]);
  });

  it('a slow answer is a timeout, an unreachable API a network error: both CLOUDFLARE_UNAVAILABLE', async () => {
    const impatient = new CloudflareClient({ token: TOKEN, baseUrl: cf.url, timeoutMs: 200, retries: 0 });
    cf.failNext({ delayMs: 1000 });
    const slow = await rejection(impatient.findZone('example.com'));
    expect(slow).toMatchObject({ code: 'CLOUDFLARE_UNAVAILABLE', details: { timedOut: true } });
    expect(slow.message).toContain('no answer within 200 ms');

    const closed = await new Promise<number>((resolve) => {
      const s = net.createServer().listen(0, '127.0.0.1', () => {
        const { port } = s.address() as net.AddressInfo;
        s.close(() => resolve(port));
      });
    });
    const nowhere = new CloudflareClient({ token: TOKEN, baseUrl: `http://127.0.0.1:${closed}/client/v4`, retries: 1 });
    const down = await rejection(nowhere.findZone('example.com'));
    expect(down).toMatchObject({ code: 'CLOUDFLARE_UNAVAILABLE', details: { timedOut: false, attempts: 2 } });
    expect(down.message).toContain('ECONNREFUSED');
  });

  it("maps 81044 to CLOUDFLARE_RECORD_NOT_FOUND and other refusals to CLOUDFLARE_API_ERROR with Cloudflare's code", async () => {
    const a = await client.createRecord(zone, { type: 'A', name: 'gone.example.com', content: '192.0.2.40' });
    await cf.removeRecord(a.id);
    for (const call of [() => client.getRecord(zone, a.id), () => client.patchRecord(zone, a.id, { proxied: true }), () => client.deleteRecord(zone, a.id)]) {
      expect(await rejection(call())).toMatchObject({
        code: 'CLOUDFLARE_RECORD_NOT_FOUND',
        details: { status: 404, cloudflareErrors: [{ code: 81044, message: 'Record does not exist.' }] },
      });
    }
    await client.createRecord(zone, { type: 'A', name: 'both.example.com', content: '192.0.2.41' });
    const conflict = await rejection(client.createRecord(zone, { type: 'CNAME', name: 'both.example.com', content: 'elsewhere.example.net' }));
    expect(conflict).toMatchObject({ code: 'CLOUDFLARE_API_ERROR', details: { status: 400, cloudflareErrors: [{ code: 81053 }] } });
    expect(conflict.message).toContain('81053 "An A, AAAA, or CNAME record with that host already exists."');
    const identical = await rejection(client.createRecord(zone, { type: 'A', name: 'both.example.com', content: '192.0.2.41' }));
    expect(identical.details.cloudflareErrors).toEqual([{ code: 81058, message: 'An identical record already exists.' }]);
    const txtProxied = await rejection(client.createRecord(zone, { type: 'TXT', name: 'txt.example.com', content: 'x', proxied: true }));
    expect(txtProxied.details.cloudflareErrors).toEqual([{ code: 9004, message: 'This record type cannot be proxied.' }]);
  });

  it('refuses bad names, values and ids before sending anything', async () => {
    const bad: Array<() => Promise<unknown>> = [
      () => client.findZone('evil.example.com\nX-Injected: 1'),
      () => client.findZone('exa mple.com'),
      () => client.findZone('com'),
      () => client.findZone('ex..ample.com'),
      () => client.findZone('-bad.example.com'),
      () => client.findZone('bücher.example'),
      () => client.listRecords('../../user/tokens'),
      () => client.listRecords(zone, { name: 'a.example.com/../../x' }),
      () => client.createRecord(zone, { type: 'TXT', name: '_acme-challenge.example.com', content: 'line\r\nbreak' }),
      () => client.createRecord(zone, { type: 'A', name: 'www.example.com', content: '192.0.2.300' }),
      () => client.createRecord(zone, { type: 'AAAA', name: 'www.example.com', content: '192.0.2.3' }),
      () => client.createRecord(zone, { type: 'SPF' as 'TXT', name: 'www.example.com', content: 'v=spf1' }),
      () => client.createRecord(zone, { type: 'A', name: 'www.example.com', content: '192.0.2.3', ttl: 5 }),
      () => client.createTxt(zone, '*.*.example.com', 'x'),
      () => client.patchRecord(zone, 'not-an-id', { proxied: true }),
      () => client.patchRecord(zone, 'a'.repeat(32), {}),
      () => client.patchRecord(zone, 'a'.repeat(32), { comment: 'two\nlines' }),
      () => client.deleteRecord(zone, `${'a'.repeat(32)}?x=1`),
    ];
    for (const call of bad) expect((await rejection(call())).code).toBe('CLOUDFLARE_RECORD_INVALID');
    expect(cf.requests).toEqual([]);
    expect(() => new CloudflareClient({ token: 'two words', baseUrl: cf.url })).toThrow(AutoSslError);
    expect(() => new CloudflareClient({ token: TOKEN, baseUrl: 'file:///etc/passwd' })).toThrow(AutoSslError);
  });

  it('never puts the token in an error, whatever the server echoes back', async () => {
    const errors: unknown[] = [];
    const collect = async (p: Promise<unknown>) => errors.push(await rejection(p));
    const echo = (t: string) => ({ success: false, errors: [{ code: 1000, message: `bad header: Bearer ${t}` }], messages: [], result: null });
    const fast = new CloudflareClient({ token: TOKEN, baseUrl: cf.url, retries: 0, maxRetryWaitMs: 0, timeoutMs: 200 });

    const stranger = makeToken();
    await collect(new CloudflareClient({ token: stranger, baseUrl: cf.url }).findZone('example.com'));
    cf.failNext({ status: 400, body: echo(TOKEN) });
    await collect(fast.listRecords(zone));
    cf.failNext({ status: 403, body: { ...echo(TOKEN), errors: [{ code: 10000, message: `token ${TOKEN} may not` }] } });
    await collect(fast.listRecords(zone));
    cf.failNext({ status: 500, body: echo(TOKEN) });
    await collect(fast.listRecords(zone));
    cf.failNext({ status: 502, body: `<html>${TOKEN}</html>` });
    await collect(fast.listRecords(zone));
    cf.failNext({ status: 200, body: `not json ${TOKEN}` });
    await collect(fast.listRecords(zone));
    cf.rateLimitNext(1, 60);
    await collect(fast.listRecords(zone));
    cf.failNext({ delayMs: 1000 });
    await collect(fast.listRecords(zone));
    await collect(new CloudflareClient({ token: TOKEN, baseUrl: 'http://127.0.0.1:1/client/v4', retries: 0 }).listRecords(zone));
    await collect(fast.patchRecord(zone, 'a'.repeat(32), { content: `${TOKEN}\n` }));

    expect(errors).toHaveLength(10);
    for (const error of errors) {
      const text = everyRendering(error);
      expect(text).not.toContain(TOKEN);
      expect(text).not.toContain(stranger);
    }
    // What the server echoed is kept, with the token replaced.
    expect((errors[1] as AutoSslError).message).toContain('Bearer [token]');
    // Nor does the client itself show it when logged.
    expect(util.inspect(fast, { depth: Infinity, showHidden: true }) + JSON.stringify(fast)).not.toContain(TOKEN);
  });
});

describe('stand-in write-through to pebble-challtestsrv', () => {
  const DNS_PORT = 28053;
  const MGMT_PORT = 28055;
  let server: ChildProcess;
  let cf: CloudflareStandin;
  let client: CloudflareClient;
  let zone: string;
  // A new resolver for every question: a c-ares with its query cache on (Debian 13's Node) keeps the answer
  // before a change, and these questions are about the change.
  const fresh = () => {
    const r = new dns.promises.Resolver({ timeout: 1000, tries: 1 });
    r.setServers([`127.0.0.1:${DNS_PORT}`]);
    return r;
  };

  const noAnswer = async (lookup: Promise<unknown>) => {
    await expect(lookup).rejects.toMatchObject({ code: expect.stringMatching(/^(ENODATA|ENOTFOUND)$/) });
  };

  beforeAll(async () => {
    server = spawn(BINARIES.challtestsrv, await challtestsrvArgs({ dns: `127.0.0.1:${DNS_PORT}`, management: `127.0.0.1:${MGMT_PORT}` }), { stdio: 'ignore' });
    const up = (): Promise<boolean> =>
      new Promise<boolean>((r) =>
        net
          .connect(MGMT_PORT, '127.0.0.1')
          .on('connect', function (this: net.Socket) {
            this.destroy();
            r(true);
          })
          .on('error', () => r(false)),
      );
    await vi.waitUntil(up, { timeout: 10_000, interval: 50 }); // challtestsrv answers on its management port
    cf = await CloudflareStandin.start({
      tokens: [TOKEN],
      zones: ['wild.test', 'shop.test'],
      challtestsrv: `http://127.0.0.1:${MGMT_PORT}`,
      edge: { ipv4: ['127.0.0.100'], ipv6: ['2001:db8:cf::100'] },
    });
    client = new CloudflareClient({ token: TOKEN, baseUrl: cf.url });
    zone = (await client.findZone('shop.test')).id;
  });

  afterAll(async () => {
    await cf?.close();
    server?.kill();
  });

  afterEach(() => {
    expect(cf.writeThroughErrors).toEqual([]);
  });

  it('an unproxied A/AAAA resolves to its content, a proxied one to the Cloudflare edge, and back', async () => {
    await noAnswer(fresh().resolve4('shop.test'));
    const a = await client.createRecord(zone, { type: 'A', name: 'shop.test', content: '127.0.0.1', proxied: false });
    const aaaa = await client.createRecord(zone, { type: 'AAAA', name: 'shop.test', content: '2001:db8::1', proxied: false });
    expect(await fresh().resolve4('shop.test')).toEqual(['127.0.0.1']);
    expect(await fresh().resolve6('shop.test')).toEqual(['2001:db8::1']);

    await client.patchRecord(zone, a.id, { proxied: true });
    // One proxied record makes the whole name proxied: Cloudflare's edge answers both families.
    expect(await fresh().resolve4('shop.test')).toEqual(['127.0.0.100']);
    expect(await fresh().resolve6('shop.test')).toEqual(['2001:db8:cf::100']);

    await client.patchRecord(zone, a.id, { proxied: false });
    expect(await fresh().resolve4('shop.test')).toEqual(['127.0.0.1']);
    expect(await fresh().resolve6('shop.test')).toEqual(['2001:db8::1']);

    // Two A records on one name are both answered; a change by hand writes through too.
    await client.createRecord(zone, { type: 'A', name: 'shop.test', content: '127.0.0.2' });
    expect((await fresh().resolve4('shop.test')).sort()).toEqual(['127.0.0.1', '127.0.0.2']);
    await cf.editRecord(a.id, { content: '127.0.0.3' });
    expect((await fresh().resolve4('shop.test')).sort()).toEqual(['127.0.0.2', '127.0.0.3']);

    await client.deleteRecord(zone, aaaa.id);
    await noAnswer(fresh().resolve6('shop.test'));
  });

  it('TXT records become TXT answers: two values on one name (apex + wildcard), removed one by one', async () => {
    const wild = (await client.findZone('*.wild.test')).id;
    const name = '_acme-challenge.wild.test';
    const one = await client.createTxt(wild, name, 'apex-validation-value');
    const two = await client.createTxt(wild, name, 'wildcard-validation-value');
    expect((await fresh().resolveTxt(name)).map((chunks) => chunks.join('')).sort()).toEqual(['apex-validation-value', 'wildcard-validation-value']);
    // The identical one again changes nothing in DNS.
    expect((await client.createTxt(wild, name, 'apex-validation-value')).created).toBe(false);
    expect(await fresh().resolveTxt(name)).toHaveLength(2);

    await client.deleteRecord(wild, one.record.id);
    expect(await fresh().resolveTxt(name)).toEqual([['wildcard-validation-value']]);
    await client.deleteRecord(wild, two.record.id);
    await noAnswer(fresh().resolveTxt(name));
    expect(cf.listRecords({ type: 'TXT' })).toEqual([]);
  });

  it('a proxied CNAME resolves to the edge, an unproxied one to its target', async () => {
    await client.createRecord(zone, { type: 'A', name: 'origin.shop.test', content: '127.0.0.7' });
    const cname = await client.createRecord(zone, { type: 'CNAME', name: 'www.shop.test', content: 'origin.shop.test', proxied: true });
    expect(await fresh().resolve4('www.shop.test')).toEqual(['127.0.0.100']);
    await client.patchRecord(zone, cname.id, { proxied: false });
    expect(await fresh().resolveCname('www.shop.test')).toEqual(['origin.shop.test']);
    expect(await fresh().resolve4('www.shop.test')).toEqual(['127.0.0.7']);
  });
});
