/**
 * The agent, end to end: `autossl agent` as its own process against pebble, certbot and a private nginx (all real,
 * 127.0.0.1), driven by a client that signs exactly as the Opterius panel does (PHP's json_encode escaping, the
 * path without its query, RFC 3339 timestamps).
 *  - ten /ssl/issue-async requests, one per domain as the panel's loop sends them: one batch job, all ten served;
 *  - the signature and body matrices: each refused (401 / 4xx, never 5xx) and nothing run (no job, no order at
 *    the CA, no vhost byte changed);
 *  - delete and upload round trips, bad uploads refused with the file system untouched;
 *  - the wildcard flow (DNS-01 through challtestsrv) with the panel's progress steps;
 *  - the native routes (/v1), server-sent events, the served OpenAPI document;
 *  - SIGKILL in the middle of a batch, restart: every job done or failed, every domain served;
 *  - SIGTERM: running work finishes, new work is refused, exit 0.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AcmeRig, BINARIES } from '../../scripts/sandbox/rig.js';
import { readCertificate } from '../../src/issuer/certificate.js';
import { servedSerial } from '../../src/stages/verify-tls.js';
import { SqliteStore } from '../../src/store/sqlite/index.js';
import { call, signedHeaders, type AgentResponse } from '../../src/agent/client.js';
import { rfc3339, sign } from '../../src/agent/auth.js';
import { dnsPluginSource } from '../helpers/dns-plugin.js';
import { makeSignedCertificate } from '../helpers/certs.js';
import { HOSTILE_DOMAINS, HOSTILE_UNICODE, HOSTILE_USERNAMES, LOW_BYTE_INJECTION } from '../helpers/hostile.js';

const CLI = path.resolve(import.meta.dirname, '../../dist/src/cli.js');
const PORT = 17443;
const URL_ = `http://127.0.0.1:${PORT}`;
const TOKEN = crypto.randomBytes(32).toString('hex');
const DAY = 86_400_000;

let rig: AcmeRig;
let home: string;
let configFile: string;
let agent: ChildProcess | null = null;
let agentLog = '';

/** PHP's json_encode with default flags: "/" as "\/", non-ASCII as \uXXXX (what the panel signs and sends). */
function php(value: unknown): string {
  return JSON.stringify(value)
    .replace(/\//g, '\\/')
    .replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

const post = (p: string, body: unknown, extra: { token?: string; headers?: Record<string, string> } = {}): Promise<AgentResponse> =>
  call('POST', p, typeof body === 'string' ? body : php(body), { url: URL_, token: extra.token ?? TOKEN, headers: extra.headers });
const get = (p: string): Promise<AgentResponse> => call('GET', p, '', { url: URL_, token: TOKEN });
const json = <T = Record<string, unknown>>(r: AgentResponse): T => r.json() as T;
const live = (name: string): string => path.join(rig.certbotDirs().configDir, 'live', name);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const block = (name: string, user = 'alice'): string =>
  `server {\n    listen 127.0.0.1:80;\n    server_name ${name};\n    root ${home}/${user}/${name};\n    index index.html;\n}\n`;

function addSite(name: string): string {
  fs.mkdirSync(path.join(home, 'alice', name), { recursive: true });
  fs.writeFileSync(path.join(home, 'alice', name, 'index.html'), `<h1>${name}</h1>\n`);
  const file = path.join(rig.info.sitesDir, `${name}.conf`);
  fs.writeFileSync(file, block(name));
  return file;
}

async function startAgent(): Promise<ChildProcess> {
  // its own process group, as systemd's cgroup: a kill reaches the certbot processes it started too
  // under umask 077, as a hardened unit may run it: nginx's www-data workers must still read the challenge files
  const child = spawn('sh', ['-c', 'umask 077; exec node "$0" agent --config "$1"', CLI, configFile], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  child.stdout!.on('data', (d: Buffer) => (agentLog += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (agentLog += d.toString()));
  const deadline = Date.now() + 30_000;
  for (;;) {
    const up = await new Promise<boolean>((resolve) =>
      http.get(`${URL_}/health`, (res) => (res.resume(), resolve(res.statusCode === 200))).on('error', () => resolve(false)),
    );
    if (up) return child;
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`the agent did not start:\n${agentLog.slice(-3000)}`);
    await sleep(200);
  }
}

function exited(child: ChildProcess): Promise<number | null> {
  return child.exitCode !== null ? Promise.resolve(child.exitCode) : new Promise((r) => child.once('exit', (code) => r(code)));
}

/** What an accepted request would change: jobs, attempts, registered sites, orders at the CA, vhost bytes, certificates. */
/** The pids of nginx's workers: a reload replaces them. */
function nginxWorkers(): number[] {
  const master = fs.readFileSync(path.join(rig.info.nginxPrefix, 'nginx.pid'), 'utf8').trim();
  return fs
    .readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        return (
          fs
            .readFileSync(`/proc/${p}/stat`, 'utf8')
            .replace(/^.*\) /s, '')
            .split(' ')[1] === master
        );
      } catch {
        return false;
      }
    })
    .map(Number)
    .sort((a, b) => a - b);
}

async function world(): Promise<Record<string, unknown>> {
  const store = new SqliteStore(path.join(rig.info.dir, 'state'), { readOnly: true });
  try {
    const files = fs
      .readdirSync(rig.info.sitesDir)
      .sort()
      .map((f) => [
        f,
        crypto
          .createHash('sha256')
          .update(fs.readFileSync(path.join(rig.info.sitesDir, f)))
          .digest('hex'),
      ]);
    const liveDir = path.join(rig.certbotDirs().configDir, 'live');
    return {
      jobs: (await store.jobs.list(500)).map((j) => `${j.id}:${j.state}:${j.domains.length}`),
      attempts: (await store.attempts.list()).length,
      sites: (await store.sites.list()).length,
      orders: fs.readFileSync(rig.info.pebbleLog, 'utf8').split('POST /order-plz').length,
      files: Object.fromEntries(files),
      live: fs.existsSync(liveDir) ? fs.readdirSync(liveDir).sort() : [],
      custom: fs.existsSync(path.join(rig.info.dir, 'state', 'custom'))
        ? fs
            .readdirSync(path.join(rig.info.dir, 'state', 'custom'), { recursive: true })
            .map(String)
            .sort()
        : [],
    };
  } finally {
    await store.close();
  }
}

async function waitFor<T>(what: string, fn: () => Promise<T | null | undefined | false>, timeoutMs = 150_000, everyMs = 500): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${agentLog.slice(-3000)}`);
    await sleep(everyMs);
  }
}

async function servedBy(name: string): Promise<string | null> {
  try {
    return await servedSerial('127.0.0.1', 443, name);
  } catch {
    return null;
  }
}

/**
 * What nginx serves for a name, asked until it is `want` (for up to 5 s): right after a reload, a connection may
 * still reach an old worker for a moment (nginx reloads gracefully), whatever the run saw.
 */
async function servedNow(name: string, want: string | null): Promise<string | null> {
  let got = await servedBy(name);
  for (let i = 0; i < 50 && got !== want; i++) {
    await sleep(100);
    got = await servedBy(name);
  }
  return got;
}

const P = Array.from({ length: 10 }, (_, i) => `p${i + 1}.agent.test`);
const K = Array.from({ length: 10 }, (_, i) => `k${i + 1}.agent.test`);
const OTHERS = [
  'del.agent.test',
  'up.agent.test',
  'wild.agent.test',
  'a.wild.agent.test',
  'b.wild.agent.test',
  'c.wild.agent.test',
  'never.agent.test',
  'plain.agent.test',
  'nowild.agent.test',
  'n1.agent.test',
  'n2.agent.test',
  'term1.agent.test',
  'term2.agent.test',
];

beforeAll(async () => {
  rig = await AcmeRig.start();
  home = path.join(rig.info.dir, 'home');
  for (const n of [...P, ...K, ...OTHERS]) addSite(n);
  await rig.reloadNginx();
  const tokens = path.join(rig.info.dir, 'agent-tokens');
  // an empty line and a short token: neither ever signs
  fs.writeFileSync(tokens, `# the panel's token\n\nshort\n${TOKEN}\n`, { mode: 0o600 });
  fs.writeFileSync(path.join(rig.info.dir, 'dns-provider.mjs'), dnsPluginSource(['wild.agent.test']));
  configFile = path.join(rig.info.dir, 'agent.json');
  fs.writeFileSync(
    configFile,
    JSON.stringify(
      rig.autosslConfig({
        plugins: ['./dns-provider.mjs'],
        dns01: { resolvers: ['127.0.0.1:8053'], propagationTimeoutMs: 30_000 },
        agent: {
          listen: `127.0.0.1:${PORT}`,
          tokensFile: tokens,
          documentRoot: `${home}/{username}/{domain}`,
          batchWindowMs: 1500,
          logLevel: 'warn',
          stopTimeoutMs: 60_000,
        },
      }),
      null,
      2,
    ),
  );
  agent = await startAgent();
});

afterAll(async () => {
  if (agent && agent.exitCode === null) process.kill(-agent.pid!, 'SIGKILL');
  await rig?.stop();
});

describe('the agent', () => {
  it('GET /health is unsigned and says what the panel stores (os, version)', async () => {
    const res = await new Promise<AgentResponse>((resolve, reject) =>
      http
        .get(`${URL_}/health`, (r) => {
          let body = '';
          r.on('data', (c: Buffer) => (body += c.toString()));
          r.on('end', () => resolve({ status: r.statusCode ?? 0, headers: r.headers, body, json: () => JSON.parse(body) as unknown }));
        })
        .on('error', reject),
    );
    expect(res.status).toBe(200);
    expect(json(res)).toMatchObject({
      status: 'ok',
      os: expect.any(String),
      version: expect.any(String),
      arch: expect.any(String),
      hostname: expect.any(String),
      uptime: expect.stringMatching(/^\d+$/),
    });
  });

  it("the panel's flow: one /ssl/issue-async per domain for ten domains runs as one batch; /ssl/status until exists; all ten served over HTTPS", async () => {
    const jobIds = new Set<string>();
    for (const domain of P) {
      // as SslOverviewController::recheckMissing sends them: one request each, in order, the domain as stored (mixed case)
      const res = await post('/ssl/issue-async', { domain: domain.toUpperCase(), email: `admin@${domain}`, username: 'alice' });
      expect(res.status, res.body).toBe(202);
      jobIds.add(json<{ job_id: string }>(res).job_id);
    }
    expect(jobIds.size).toBe(1);
    const [jobId] = [...jobIds];
    for (const domain of P) {
      const status = await waitFor(`${domain} to exist`, async () => {
        const r = await post('/ssl/status', { domain });
        expect(r.status).toBe(200);
        const body = json<{ exists: boolean; state: string }>(r);
        return body.exists ? body : null;
      });
      expect(status).toMatchObject({
        exists: true,
        state: 'ok',
        names: [domain],
        custom: false,
        days_left: expect.any(Number),
        expires_at: expect.any(String),
      });
      expect(await servedNow(domain, readCertificate(path.join(live(domain), 'cert.pem')).serial), domain).toBe(
        readCertificate(path.join(live(domain), 'cert.pem')).serial,
      );
    }
    // the job record shows one batch of ten, done, from the agent
    const job = json<{ state: string; source: string; domains: Array<{ domain: string; state: string }> }>(await get(`/v1/jobs/${jobId}`));
    expect(job).toMatchObject({ state: 'done', source: 'agent' });
    expect(job.domains.map((d) => d.domain).sort()).toEqual([...P].sort());
    expect(job.domains.every((d) => d.state === 'done')).toBe(true);
    // the document roots came from the template and the panel's user name
    const store = new SqliteStore(path.join(rig.info.dir, 'state'), { readOnly: true });
    expect((await store.sites.list()).find((s) => s.domain === 'p1.agent.test')?.site.documentRoot).toBe(`${home}/alice/p1.agent.test`);
    await store.close();
  });

  it('signature matrix: every bad signature is refused with 401 and runs nothing', async () => {
    const body = php({ domain: 'never.agent.test', email: 'a@never.agent.test', username: 'alice' });
    const ts = rfc3339();
    const good = sign(TOKEN, ts, 'POST', '/ssl/issue-async', body);
    const headers = (over: Record<string, string | undefined>): Record<string, string> => {
      const h: Record<string, string | undefined> = { 'X-Timestamp': ts, 'X-Signature': good, 'Content-Type': 'application/json', ...over };
      return Object.fromEntries(Object.entries(h).filter(([, v]) => v !== undefined)) as Record<string, string>;
    };
    // whole seconds away from now at the agent (an RFC 3339 stamp has no fraction: rounded away from now)
    const shifted = (s: number): string => rfc3339(new Date((s > 0 ? Math.ceil(Date.now() / 1000) : Math.floor(Date.now() / 1000)) * 1000 + s * 1000));
    const cases: Array<[string, () => Promise<AgentResponse>]> = [
      ['no headers', () => post('/ssl/issue-async', body, { headers: { 'Content-Type': 'application/json' } })],
      ['no X-Signature', () => post('/ssl/issue-async', body, { headers: headers({ 'X-Signature': undefined }) })],
      ['no X-Timestamp', () => post('/ssl/issue-async', body, { headers: headers({ 'X-Timestamp': undefined }) })],
      ['tampered body', () => post('/ssl/issue-async', body.replace('never', 'nevex'), { headers: headers({}) })],
      ['tampered path', () => post('/ssl/delete', body, { headers: headers({}) })],
      [
        'wrong method (signed as GET)',
        () => post('/ssl/issue-async', body, { headers: headers({ 'X-Signature': sign(TOKEN, ts, 'GET', '/ssl/issue-async', body) }) }),
      ],
      [
        'timestamp +301 s',
        () => {
          const t = shifted(301);
          return post('/ssl/issue-async', body, { headers: headers({ 'X-Timestamp': t, 'X-Signature': sign(TOKEN, t, 'POST', '/ssl/issue-async', body) }) });
        },
      ],
      [
        'timestamp -301 s',
        () => {
          const t = shifted(-301);
          return post('/ssl/issue-async', body, { headers: headers({ 'X-Timestamp': t, 'X-Signature': sign(TOKEN, t, 'POST', '/ssl/issue-async', body) }) });
        },
      ],
      [
        'malformed timestamp',
        () =>
          post('/ssl/issue-async', body, {
            headers: headers({ 'X-Timestamp': 'yesterday', 'X-Signature': sign(TOKEN, 'yesterday', 'POST', '/ssl/issue-async', body) }),
          }),
      ],
      ['signature of the wrong length', () => post('/ssl/issue-async', body, { headers: headers({ 'X-Signature': good.slice(0, 40) }) })],
      ['upper-case hex', () => post('/ssl/issue-async', body, { headers: headers({ 'X-Signature': good.toUpperCase() }) })],
      ['odd hex', () => post('/ssl/issue-async', body, { headers: headers({ 'X-Signature': `z${good.slice(1)}` }) })],
      ['unknown token', () => post('/ssl/issue-async', body, { token: crypto.randomBytes(32).toString('hex') })],
      ['the empty token configured', () => post('/ssl/issue-async', body, { token: '' })],
      ['the short token configured', () => post('/ssl/issue-async', body, { token: 'short' })],
    ];
    const before = await world();
    for (const [name, send] of cases) {
      const res = await send();
      expect(res.status, `${name}: ${res.body}`).toBe(401);
      expect(json(res), name).toMatchObject({ code: 'AGENT_AUTH_FAILED', error: expect.any(String), hint: expect.any(String) });
    }
    await sleep(2500); // a wait for nothing to happen: past the batch window, a job would have started
    expect(await world()).toEqual(before);

    // a replay of a good mutating request: the first runs (delete of a name not on HTTPS: nothing to take back), the replay is refused
    const del = php({ domain: 'plain.agent.test', username: 'alice' });
    const h = signedHeaders(TOKEN, 'POST', '/ssl/delete', del);
    const first = await post('/ssl/delete', del, { headers: h });
    expect(first.status, first.body).toBe(200);
    const afterFirst = await world();
    const replay = await post('/ssl/delete', del, { headers: h });
    expect(replay.status).toBe(401);
    expect(json(replay)).toMatchObject({ code: 'AGENT_REPLAYED' });
    expect(await world()).toEqual(afterFirst);
  });

  it('body matrix: invalid JSON, wrong types, 10 MB, __proto__/constructor keys, hostile domains and user names: 4xx, never 5xx, nothing run', async () => {
    const before = await world();
    const bodies: Array<[string, string, string?]> = [
      ['invalid JSON', '{"domain": "never.agent.test"'],
      ['not an object', '["never.agent.test"]'],
      ['a number domain', '{"domain": 5}'],
      ['a list domain', '{"domain": ["never.agent.test"]}'],
      ['a number user name', '{"domain": "never.agent.test", "username": 7}'],
      ['__proto__', '{"__proto__": {"admin": true}, "domain": "never.agent.test"}'],
      ['constructor', '{"constructor": {"prototype": {"x": 1}}, "domain": "never.agent.test"}'],
      ['nested __proto__', '{"domain": "never.agent.test", "x": {"__proto__": {"y": 1}}}'],
      ['no domain', '{"email": "a@b.test"}'],
    ];
    for (const d of HOSTILE_DOMAINS)
      bodies.push([`hostile domain ${JSON.stringify(d).slice(0, 30)}`, php({ domain: d, email: 'a@b.test', username: 'alice' })]);
    // Unicode above U+00FF, fullwidth and bidi controls in a domain: refused, or punycode nothing serves (404)
    for (const u of HOSTILE_UNICODE)
      bodies.push([`unicode domain ${JSON.stringify(u)}`, php({ domain: `x${u}y.agent.test`, email: 'a@b.test', username: 'alice' })]);
    for (const u of HOSTILE_USERNAMES) bodies.push([`hostile user ${JSON.stringify(u)}`, php({ domain: 'never.agent.test', email: 'a@b.test', username: u })]);
    bodies.push(['hostile email', php({ domain: 'never.agent.test', email: 'a@b.test\nBcc: x@y', username: 'alice' })]);
    for (const route of ['/ssl/issue-async', '/ssl/delete', '/ssl/upload', '/ssl/renew', '/ssl/wildcard/start']) {
      for (const [name, body] of bodies) {
        const res = await post(route, body);
        // deleting a valid name nothing serves (a Unicode one becomes punycode) is a no-op, as the panel expects
        if (route === '/ssl/delete' && res.status === 200) {
          expect(json(res), `${route} ${name}`).toMatchObject({ files: [], deleted: [] });
          expect(await world(), `${route} ${name}`).toEqual(before);
          continue;
        }
        expect(res.status, `${route} ${name}: ${res.body}`).toBeGreaterThanOrEqual(400);
        expect(res.status, `${route} ${name}: ${res.body}`).toBeLessThan(500);
        expect(json(res), `${route} ${name}`).toMatchObject({ error: expect.any(String), code: expect.any(String), hint: expect.any(String) });
        expect(await world(), `${route} ${name}`).toEqual(before);
      }
    }
    // 10 MB: refused before it is read
    const big = `{"domain": "never.agent.test", "pad": "${'a'.repeat(10 * 1024 * 1024)}"}`;
    const res = await post('/ssl/issue-async', big).catch((e: Error) => ({ status: -1, body: e.message }) as AgentResponse);
    expect([413, -1], res.body.slice(0, 200)).toContain(res.status);
    if (res.status === 413) expect(JSON.parse(res.body)).toMatchObject({ code: 'AGENT_BAD_REQUEST' });
    await sleep(2500); // a wait for nothing to happen: past the batch window, a job would have started
    expect(await world()).toEqual(before);
    // the agent still answers
    expect((await post('/ssl/status', { domain: 'p1.agent.test' })).status).toBe(200);
  });

  it('a user name of letters whose low bytes are nginx syntax (issue 19), fullwidth or bidi: 400 AGENT_BAD_REQUEST, nothing written, nginx not reloaded', async () => {
    // the name that was written as `root "/home/x";}location /leak{alias /etc/;#...` and served /etc/passwd
    const before = await world();
    const workers = nginxWorkers();
    expect(workers.length).toBeGreaterThan(0);
    for (const username of HOSTILE_USERNAMES) {
      for (const route of ['/ssl/issue-async', '/ssl/wildcard/start']) {
        const res = await post(route, { domain: 'plain.agent.test', email: 'a@plain.agent.test', username });
        expect(res.status, `${route} ${JSON.stringify(username)}: ${res.body}`).toBe(400);
        expect(json(res), JSON.stringify(username)).toMatchObject({
          code: 'AGENT_BAD_REQUEST',
          error: expect.stringContaining('Unix account name'),
          hint: expect.any(String),
        });
      }
      const v1 = await post('/v1/issue', { sites: [{ domain: 'plain.agent.test', username }] });
      expect(v1.status, `/v1/issue ${JSON.stringify(username)}: ${v1.body}`).toBe(400);
    }
    // a document root in /v1/issue holding what those letters were narrowed to, or a bidi control: refused as well
    // (the letters themselves are a path nginx reads exactly, written as UTF-8: test/hardening/unicode-values.test.ts)
    for (const documentRoot of [
      `/home/${Buffer.from(LOW_BYTE_INJECTION, 'latin1').toString('latin1')}/public_html`,
      '/home/x\u202e/public_html',
      '/home/x\u2028y',
    ]) {
      const root = await post('/v1/issue', { sites: [{ domain: 'plain.agent.test', documentRoot }] });
      expect(root.status, root.body).toBe(400);
    }
    expect(await world()).toEqual(before); // no file, job, order or site
    expect(nginxWorkers()).toEqual(workers); // a reload starts new workers
    const leak = await new Promise<number>((resolve) =>
      http
        .get({ host: '127.0.0.1', port: 80, path: '/leak/passwd', headers: { host: 'plain.agent.test' } }, (r) => (r.resume(), resolve(r.statusCode ?? 0)))
        .on('error', () => resolve(0)),
    );
    expect(leak).not.toBe(200);
  });

  it('delete round trip: HTTPS taken off (the vhost back to its bytes before the issue), the lineage deleted, HTTP still served', async () => {
    const file = path.join(rig.info.sitesDir, 'del.agent.test.conf');
    const original = fs.readFileSync(file, 'utf8');
    expect((await post('/ssl/issue-async', { domain: 'del.agent.test', email: 'a@b.test', username: 'alice' })).status).toBe(202);
    await waitFor('del.agent.test to exist', async () => json<{ exists: boolean }>(await post('/ssl/status', { domain: 'del.agent.test' })).exists);
    expect(fs.readFileSync(file, 'utf8')).not.toBe(original);
    const issuedSerial = readCertificate(path.join(live('del.agent.test'), 'cert.pem')).serial;
    expect(await servedNow('del.agent.test', issuedSerial)).toBe(issuedSerial);
    const res = await post('/ssl/delete', { domain: 'del.agent.test', username: 'alice' });
    expect(res.status, res.body).toBe(200);
    expect(json(res)).toMatchObject({ status: 'deleted', deleted: ['del.agent.test'], kept: [] });
    expect(fs.readFileSync(file, 'utf8')).toBe(original);
    await execa(BINARIES.nginx, [...rig.nginxArgs, '-c', rig.info.nginxConf, '-t']);
    expect(fs.existsSync(live('del.agent.test'))).toBe(false);
    expect(json(await post('/ssl/status', { domain: 'del.agent.test' }))).toMatchObject({ exists: false, state: 'missing' });
    const page = await new Promise<string>((resolve, reject) =>
      http
        .get({ host: '127.0.0.1', port: 80, path: '/', headers: { Host: 'del.agent.test' } }, (r) => {
          let b = '';
          r.on('data', (c: Buffer) => (b += c.toString()));
          r.on('end', () => resolve(b));
        })
        .on('error', reject),
    );
    expect(page).toContain('<h1>del.agent.test</h1>');
    // nginx reloads gracefully: an old worker may serve the deleted certificate for a moment
    await expect.poll(() => servedBy('del.agent.test'), { timeout: 5000, interval: 100 }).not.toBe(issuedSerial);
  });

  it('upload round trip: a bought certificate served (key 0600, never renewed); bad uploads refused with nothing written; delete removes it', async () => {
    const now = Date.now();
    const good = await makeSignedCertificate(['up.agent.test', 'www.up.agent.test'], new Date(now - DAY), new Date(now + 90 * DAY));
    const file = path.join(rig.info.sitesDir, 'up.agent.test.conf');
    const res = await post('/ssl/upload', {
      domain: 'up.agent.test',
      username: 'alice',
      certificate: good.chain.trim().replace(/\n/g, '\r\n'),
      private_key: good.key.trim(),
    });
    expect(res.status, res.body).toBe(200);
    expect(json(res)).toMatchObject({ status: 'installed', exists: true, custom: true, names: ['up.agent.test', 'www.up.agent.test'] });
    expect(await servedNow('up.agent.test', good.serial)).toBe(good.serial);
    const dir = path.join(rig.info.dir, 'state', 'custom', 'up.agent.test');
    const [version] = fs.readdirSync(dir);
    expect(fs.statSync(path.join(dir, version!, 'privkey.pem')).mode & 0o777).toBe(0o600);
    expect(fs.existsSync(live('up.agent.test'))).toBe(false); // certbot never saw it
    // renew of an upload is refused: autossl does not renew it
    expect(json(await post('/ssl/renew', { domain: 'up.agent.test' }))).toMatchObject({ code: 'CERT_CUSTOM' });

    const other = await makeSignedCertificate(['up.agent.test'], new Date(now - DAY), new Date(now + 90 * DAY));
    const expired = await makeSignedCertificate(['up.agent.test'], new Date(now - 100 * DAY), new Date(now - DAY));
    const wrongNames = await makeSignedCertificate(['elsewhere.agent.test'], new Date(now - DAY), new Date(now + 90 * DAY));
    const vhostBefore = fs.readFileSync(file, 'utf8');
    const before = await world();
    const bad: Array<[string, Record<string, string>, RegExp]> = [
      ['the key of another certificate', { certificate: good.chain, private_key: other.key }, /does not belong/],
      ['an expired certificate', { certificate: expired.chain, private_key: expired.key }, /expired/],
      ['names that do not cover the domain', { certificate: wrongNames.chain, private_key: wrongNames.key }, /does not cover up\.agent\.test/],
      ['the chain in the wrong order', { certificate: good.ca + good.leaf, private_key: good.key }, /further down the chain|first/],
      ['not PEM', { certificate: 'hello', private_key: good.key }, /no PEM certificate/],
      [
        'an encrypted key',
        { certificate: good.chain, private_key: '-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----' },
        /encrypted/,
      ],
      ['a config line in the certificate', { certificate: `${good.chain}\n}\nserver { listen 80; }`, private_key: good.key }, /besides certificates/],
    ];
    for (const [name, fields, message] of bad) {
      const r = await post('/ssl/upload', { domain: 'up.agent.test', username: 'alice', ...fields });
      expect(r.status, `${name}: ${r.body}`).toBe(400);
      expect(json(r), name).toMatchObject({ code: 'UPLOAD_INVALID', error: expect.stringMatching(message) });
    }
    expect(await world()).toEqual(before);
    expect(fs.readFileSync(file, 'utf8')).toBe(vhostBefore);
    expect(await servedNow('up.agent.test', good.serial)).toBe(good.serial);

    const del = await post('/ssl/delete', { domain: 'up.agent.test', username: 'alice' });
    expect(del.status, del.body).toBe(200);
    expect(json(del)).toMatchObject({ deleted: [expect.stringMatching(/^upload up\.agent\.test\//)] });
    expect(fs.existsSync(path.join(dir, version!))).toBe(false);
    expect(json(await post('/ssl/status', { domain: 'up.agent.test' }))).toMatchObject({ exists: false });
  });

  it("wildcard: start, progress through the panel's steps to done; the domain and its subdomain blocks served (an upload kept); no provider: refused", async () => {
    const now = Date.now();
    const upload = await makeSignedCertificate(['c.wild.agent.test'], new Date(now - DAY), new Date(now + 90 * DAY));
    expect((await post('/ssl/upload', { domain: 'c.wild.agent.test', username: 'alice', certificate: upload.chain, private_key: upload.key })).status).toBe(
      200,
    );

    const start = await post('/ssl/wildcard/start', { domain: 'wild.agent.test', email: 'admin@wild.agent.test', username: 'alice' });
    expect(start.status, start.body).toBe(202);
    const steps: string[] = [];
    const final = await waitFor(
      'the wildcard to finish',
      async () => {
        const r = await get('/ssl/wildcard/progress?domain=wild.agent.test');
        expect(r.status).toBe(200);
        const p = json<{ step: string; message: string; error?: string }>(r);
        expect(p.step.length).toBeLessThanOrEqual(30);
        expect(p.message.length).toBeLessThanOrEqual(255);
        if (steps[steps.length - 1] !== p.step) steps.push(p.step);
        return p.step === 'done' || p.step === 'error' ? p : null;
      },
      150_000,
      100,
    );
    expect(final, JSON.stringify(final)).toMatchObject({ step: 'done' });
    const order = ['starting', 'dns_challenge', 'dns_propagation', 'le_verify', 'installing', 'done'];
    expect(steps.every((s) => order.includes(s))).toBe(true);
    expect(steps.map((s) => order.indexOf(s))).toEqual([...steps.map((s) => order.indexOf(s))].sort((a, b) => a - b));
    const serial = readCertificate(path.join(live('wild.agent.test'), 'cert.pem'));
    expect(serial.names.sort()).toEqual(['*.wild.agent.test', 'wild.agent.test']);
    for (const n of ['wild.agent.test', 'a.wild.agent.test', 'b.wild.agent.test']) expect(await servedNow(n, serial.serial), n).toBe(serial.serial);
    expect(await servedNow('c.wild.agent.test', upload.serial)).toBe(upload.serial);
    expect(json(await post('/ssl/status', { domain: 'a.wild.agent.test' }))).toMatchObject({
      exists: true,
      names: expect.arrayContaining(['*.wild.agent.test']),
    });
    // the panel then auto-issues a subdomain: it is served by the wildcard already, nothing is ordered
    const orders = (await world()).orders;
    const sub = await post('/ssl/issue-async', { domain: 'b.wild.agent.test', email: 'a@b.test', username: 'alice' });
    expect(sub.status, sub.body).toBe(200);
    expect(json(sub)).toMatchObject({ status: 'exists' });
    expect((await world()).orders).toBe(orders);

    // a domain no DNS provider serves: refused at start, nothing run
    const before = await world();
    const none = await post('/ssl/wildcard/start', { domain: 'nowild.agent.test', email: 'a@b.test', username: 'alice' });
    expect(none.status).toBe(400);
    expect(json(none)).toMatchObject({ code: 'DNS_PROVIDER_MISSING', error: expect.stringContaining('*.nowild.agent.test') });
    expect(await world()).toEqual(before);
    // progress of something never started: 200, step error (the panel shows the message)
    const unknown = await get('/ssl/wildcard/progress?domain=nowild.agent.test');
    expect(unknown.status).toBe(200);
    expect(json(unknown)).toMatchObject({ step: 'error', error: expect.any(String) });
  });

  it('native routes: /v1/issue with per-site settings, job polling, /v1/events as server-sent events, /v1/certificates, the OpenAPI document', async () => {
    const events: Array<{ event: string; data: Record<string, unknown> }> = [];
    const headers = signedHeaders(TOKEN, 'GET', '/v1/events', '');
    const stream = await new Promise<http.IncomingMessage>((resolve, reject) => http.get(`${URL_}/v1/events`, { headers }, resolve).on('error', reject));
    expect(stream.statusCode).toBe(200);
    expect(stream.headers['content-type']).toMatch(/text\/event-stream/);
    let buffer = '';
    stream.on('data', (c: Buffer) => {
      buffer += c.toString();
      let i;
      while ((i = buffer.indexOf('\n\n')) >= 0) {
        const chunk = buffer.slice(0, i);
        buffer = buffer.slice(i + 2);
        const event = /^event: (.*)$/m.exec(chunk)?.[1];
        const data = /^data: (.*)$/m.exec(chunk)?.[1];
        if (event && data) events.push({ event, data: JSON.parse(data) as Record<string, unknown> });
      }
    });
    const res = await post('/v1/issue', {
      sites: [
        { domain: 'n1.agent.test', username: 'alice' },
        { domain: 'n2.agent.test', hsts: true },
      ],
    });
    expect(res.status, res.body).toBe(202);
    const { job_id: jobId } = json<{ job_id: string }>(res);
    const job = await waitFor('the native job', async () => {
      const j = json<{ state: string }>(await get(`/v1/jobs/${jobId}`));
      return j.state !== 'running' ? j : null;
    });
    expect(job).toMatchObject({ state: 'done' });
    await waitFor('the job event', async () => events.some((e) => e.event === 'job' && e.data.job_id === jobId && e.data.state === 'done'), 10_000, 100);
    stream.destroy();
    const mine = events.filter((e) => e.data.job_id === jobId);
    expect(
      mine
        .filter((e) => e.event === 'domain')
        .map((e) => [e.data.domain, e.data.state])
        .sort(),
    ).toEqual([
      ['n1.agent.test', 'done'],
      ['n2.agent.test', 'done'],
    ]);
    expect(mine.some((e) => e.event === 'stage' && e.data.stage === 'issue')).toBe(true);
    const hsts = await new Promise<string | undefined>((resolve, reject) => {
      const req = https.request(
        { host: '127.0.0.1', port: 443, servername: 'n2.agent.test', headers: { Host: 'n2.agent.test' }, rejectUnauthorized: false },
        (r) => (r.resume(), resolve(r.headers['strict-transport-security'] as string | undefined)),
      );
      req.on('error', reject);
      req.end();
    });
    expect(hsts).toMatch(/max-age=/);
    expect(json<{ jobs: Array<{ id: string }> }>(await get('/v1/jobs?limit=5')).jobs.map((j) => j.id)).toContain(jobId);
    const certs = json<{ certificates: Array<{ domain: string; state: string }> }>(await get('/v1/certificates'));
    expect(certs.certificates.find((c) => c.domain === 'n1.agent.test')).toMatchObject({ state: 'ok' });
    expect(json(await get('/v1/jobs/no-such-job'))).toMatchObject({ code: 'AGENT_NOT_FOUND' });
    const doc = await get('/v1/openapi.json');
    expect(doc.status).toBe(200);
    expect(json(doc)).toEqual(JSON.parse(fs.readFileSync(path.resolve(import.meta.dirname, '../../docs/openapi.json'), 'utf8')));
    // every documented route answers (no 404), an undocumented one does not exist
    for (const [p, ops] of Object.entries(json<{ paths: Record<string, Record<string, unknown>> }>(doc).paths)) {
      for (const method of Object.keys(ops)) {
        if (p === '/v1/events') continue;
        const target = p.replace('{id}', jobId);
        const r = method === 'get' ? await get(target) : await post(target, '{}');
        expect(r.status, `${method} ${p}`).not.toBe(404);
      }
    }
    expect((await get('/v1/nothing')).status).toBe(404);
  });

  it('SIGKILL in the middle of a ten-domain batch: after a restart every job ends done or failed, and every domain is served', async () => {
    let jobId = '';
    for (const domain of K) {
      const res = await post('/ssl/issue-async', { domain, email: 'a@b.test', username: 'alice' });
      expect(res.status, res.body).toBe(202);
      jobId = json<{ job_id: string }>(res).job_id;
    }
    // kill once the batch reached certbot (orders at the CA in flight)
    await waitFor(
      'the batch to reach certbot',
      async () => {
        const j = json<{ domains: Array<{ state: string }> }>(await get(`/v1/jobs/${jobId}`));
        return j.domains.some((d) => d.state === 'issuing' || d.state === 'installing' || d.state === 'done');
      },
      60_000,
      50,
    );
    process.kill(-agent!.pid!, 'SIGKILL');
    await exited(agent!);
    const store = new SqliteStore(path.join(rig.info.dir, 'state'), { readOnly: true });
    const killed = (await store.jobs.get(jobId))!;
    await store.close();
    expect(killed.state).toBe('running');
    expect(killed.domains.some((d) => d.state !== 'done')).toBe(true); // it was mid-batch

    agent = await startAgent();
    const after = await waitFor(
      'the killed job to end',
      async () => {
        const j = json<{ state: string; domains: Array<{ domain: string; state: string; code: string | null }> }>(await get(`/v1/jobs/${jobId}`));
        return j.state !== 'running' ? j : null;
      },
      60_000,
    );
    expect(['done', 'failed']).toContain(after.state);
    for (const d of after.domains) {
      expect(['done', 'failed'], d.domain).toContain(d.state);
      if (d.state === 'failed') expect(d.code).toBe('INTERRUPTED');
    }
    for (const domain of K) {
      await waitFor(`${domain} to be served`, async () => {
        const r = await post('/ssl/status', { domain });
        expect(r.status).toBe(200);
        return json<{ exists: boolean }>(r).exists;
      });
      expect(await servedNow(domain, readCertificate(path.join(live(domain), 'cert.pem')).serial), domain).toBe(
        readCertificate(path.join(live(domain), 'cert.pem')).serial,
      );
    }
    // nothing half-done left behind
    expect(fs.readdirSync(path.join(rig.info.dir, 'state', 'journal')).filter((f) => !f.startsWith('.'))).toEqual([]);
    await execa(BINARIES.nginx, [...rig.nginxArgs, '-c', rig.info.nginxConf, '-t']);
  });

  it('SIGTERM: accepted work finishes, new work is refused, exit 0', async () => {
    const res = await post('/ssl/issue-async', { domain: 'term1.agent.test', email: 'a@b.test', username: 'alice' });
    expect(res.status).toBe(202);
    const jobId = json<{ job_id: string }>(res).job_id;
    const logged = agentLog.length;
    process.kill(agent!.pid!, 'SIGTERM');
    // the agent has taken the signal: it says so, then takes no new work
    await expect.poll(() => agentLog.slice(logged), { timeout: 10_000 }).toMatch(/SIGTERM: stopping/);
    const refused = await post('/ssl/issue-async', { domain: 'term2.agent.test', email: 'a@b.test', username: 'alice' }).catch(() => null);
    if (refused) expect([409]).toContain(refused.status);
    expect(await exited(agent!)).toBe(0);
    agent = null;
    const store = new SqliteStore(path.join(rig.info.dir, 'state'), { readOnly: true });
    expect(await store.jobs.get(jobId)).toMatchObject({ state: 'done' });
    expect((await store.jobs.list(50)).some((j) => j.domains.some((d) => d.domain === 'term2.agent.test'))).toBe(false);
    await store.close();
    expect(await servedNow('term1.agent.test', readCertificate(path.join(live('term1.agent.test'), 'cert.pem')).serial)).toBe(
      readCertificate(path.join(live('term1.agent.test'), 'cert.pem')).serial,
    );
  });
});
