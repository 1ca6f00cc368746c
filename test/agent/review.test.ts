/**
 * What a review of the agent found, each kept as a test (an in-process agent on a private nginx tree, no CA):
 * delete never takes another site off HTTPS; a vhost created a moment before is seen; the values the Opterius panel
 * really sends are taken; a domain queued again after a kill keeps reading as served; closed event streams leave
 * nothing behind; while stopping, every change is refused; what the HTTP parser refuses is JSON too.
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { afterEach, describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/schema.js';
import { rfc3339, sign } from '../../src/agent/auth.js';
import { startAgent, type RunningAgent } from '../../src/agent/server.js';
import { SqliteStore } from '../../src/store/sqlite/index.js';
import { makeTree } from '../helpers/nginx-fixture.js';
import { writeLineage } from '../helpers/certs.js';

const TOKEN = 'b'.repeat(64);
let agent: RunningAgent | null = null;
afterEach(async () => {
  await agent?.close();
  agent = null;
});

interface Env {
  dir: string;
  le: string;
  site: string;
  sites: string;
  start(): Promise<RunningAgent>;
}

async function env(site: string, agentExtra: Record<string, unknown> = {}): Promise<Env> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'autossl-finding-'));
  const le = path.join(dir, 'le');
  const tree = await makeTree(site.replaceAll('{{LE}}', le));
  fs.writeFileSync(path.join(dir, 'tokens'), `${TOKEN}\n`, { mode: 0o600 });
  const raw = {
    nginx: { config: tree.main, extraArgs: ['-p', tree.dir, '-e', path.join(tree.dir, 'error.log')], reloadCommand: ['true'] },
    stateDir: path.join(dir, 'state'),
    certbot: { configDir: le, workDir: path.join(dir, 'work'), logsDir: path.join(dir, 'logs') },
    agent: { tokensFile: path.join(dir, 'tokens'), logLevel: 'silent', ...agentExtra },
  };
  return {
    dir,
    le,
    site: tree.site,
    sites: path.join(tree.dir, 'sites'),
    start: async () => (agent = await startAgent(validateConfig(raw, path.join(dir, 'x.json'), dir), { port: 0 })),
  };
}

async function post(p: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const text = JSON.stringify(body);
  const ts = rfc3339();
  const res = await fetch(`${agent!.url}${p}`, {
    method: 'POST',
    body: text,
    headers: { 'content-type': 'application/json', 'x-timestamp': ts, 'x-signature': sign(TOKEN, ts, 'POST', p, text) },
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

const PLAIN = (name: string): string => `server {\n    listen 80;\n    server_name ${name};\n    root /var/www/${name};\n}\n`;
const TLS_AB =
  'server {\n    listen 80;\n    listen 443 ssl;\n    server_name a.test b.test;\n    root /var/www/ab;\n    ssl_certificate {{LE}}/live/a.test/fullchain.pem;\n    ssl_certificate_key {{LE}}/live/a.test/privkey.pem;\n}\n';

describe('review findings', () => {
  it('/ssl/delete of b.test (no certificate of its own) must not take a.test, which shares the block, off HTTPS nor delete its lineage', async () => {
    const e = await env(TLS_AB);
    await writeLineage(e.le, 'a.test', 90, 60);
    await e.start();
    expect((await post('/ssl/status', { domain: 'a.test' })).json.exists).toBe(true);
    const before = fs.readFileSync(e.site, 'utf8');
    const del = await post('/ssl/delete', { domain: 'b.test', username: 'bob' });
    expect(fs.readFileSync(e.site, 'utf8'), JSON.stringify(del.json)).toBe(before);
    expect(fs.existsSync(path.join(e.le, 'live', 'a.test'))).toBe(true);
  }, 60_000);

  it('/ssl/delete of a domain nothing knows (no server block, no certificate) is 404 VHOST_NOT_FOUND, not a 200 "deleted"; after its vhost went, its lineage still goes', async () => {
    const e = await env(PLAIN('kept.test'));
    await writeLineage(e.le, 'gone.test', 90, 60);
    await e.start();
    const none = await post('/ssl/delete', { domain: 'nosuch.test', username: 'bob' });
    expect([none.status, (none.json as { error?: { code?: string } }).error?.code ?? (none.json as { code?: string }).code], JSON.stringify(none.json)).toEqual(
      [404, 'VHOST_NOT_FOUND'],
    );
    // the panel deleted the vhost first: the certificate is still removed (200)
    const gone = await post('/ssl/delete', { domain: 'gone.test', username: 'bob' });
    expect(gone.status, JSON.stringify(gone.json)).toBe(200);
    expect(fs.existsSync(path.join(e.le, 'live', 'gone.test'))).toBe(false);
  }, 60_000);

  it('/ssl/issue-async sees a vhost created just before it (Opterius: /domains/create, then autoIssue at once)', async () => {
    const e = await env(PLAIN('first.test'));
    await e.start();
    expect((await post('/ssl/status', { domain: 'first.test' })).status).toBe(200); // any request caches the tree for 1 s
    fs.writeFileSync(path.join(e.sites, 'second.conf'), PLAIN('second.test'));
    const res = await post('/ssl/issue-async', { domain: 'second.test', email: 'admin@second.test', username: 'alice' });
    expect(res.status, JSON.stringify(res.json)).toBe(202);
  }, 60_000);

  it('/ssl/issue-async takes the values the Opterius panel sends (Unix user names; email admin@<domain as stored>)', async () => {
    const e = await env(PLAIN('u.test'));
    await e.start();
    for (const body of [{ username: 'web_1' }, { username: '_svc-2' }, { username: 'alice', domain: ' u.test', email: 'admin@ u.test' }]) {
      const res = await post('/ssl/issue-async', { domain: 'u.test', email: 'admin@u.test', ...body });
      expect(res.status, `${JSON.stringify(body)}: ${JSON.stringify(res.json)}`).toBe(202);
    }
    // alpha_dash lets these through; useradd does not (issue 19): refused with the code and a hint
    for (const username of ['Alice', '2shop', 'ａｄｍｉｎ', 'x'.repeat(33)]) {
      const res = await post('/ssl/issue-async', { domain: 'u.test', email: 'admin@u.test', username });
      expect(res.status, username).toBe(400);
      expect(JSON.stringify(res.json)).toContain('AGENT_BAD_REQUEST');
      expect(JSON.stringify(res.json)).toContain('Unix account name');
    }
  }, 60_000);

  it('after a kill, a requeued domain that is served with a valid certificate still reads exists: true', async () => {
    const e = await env(TLS_AB, { batchWindowMs: 60_000 });
    await writeLineage(e.le, 'a.test', 90, 60);
    const store = new SqliteStore(path.join(e.dir, 'state'));
    await store.jobs.create({ id: 'killed-1', kind: 'issue', source: 'agent', domains: ['a.test'] });
    await store.jobs.updateDomain('killed-1', 'a.test', { state: 'failed', code: 'INTERRUPTED', message: 'killed', finished: true });
    await store.jobs.finish('killed-1', 'failed');
    await store.close();
    await e.start();
    // requeueInterrupted runs after listen: the killed job's domain is queued again (the 60 s batch window holds it)
    await expect.poll(() => agent!.ctx.intake.jobOf('a.test'), { timeout: 10_000 }).not.toBeNull();
    const s = await post('/ssl/status', { domain: 'a.test' });
    expect(s.json, JSON.stringify(s.json)).toMatchObject({ state: 'ok', exists: true });
  }, 60_000);

  it('a closed /v1/events stream leaves nothing behind (heap flat over 3000 connections)', async () => {
    const e = await env(PLAIN('e.test'), { rateLimit: { perSecond: 1_000_000, burst: 1_000_000 } });
    await e.start();
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    const once = (): Promise<void> =>
      new Promise((resolve) => {
        const ts = rfc3339();
        const s = net.connect(agent!.port, '127.0.0.1');
        s.on('data', () => s.destroy());
        s.on('close', () => resolve());
        s.write(`GET /v1/events HTTP/1.1\r\nHost: x\r\nX-Timestamp: ${ts}\r\nX-Signature: ${sign(TOKEN, ts, 'GET', '/v1/events', '')}\r\n\r\n`);
      });
    const connections = (): Promise<number> => new Promise((resolve, reject) => agent!.app.server.getConnections((err, n) => (err ? reject(err) : resolve(n))));
    const heap = async (): Promise<number> => {
      // every closed stream is gone from the server before the heap is weighed
      await expect.poll(connections, { timeout: 10_000 }).toBe(0);
      gc();
      gc();
      return process.memoryUsage().heapUsed;
    };
    for (let i = 0; i < 200; i++) await once();
    const h0 = await heap();
    for (let i = 0; i < 3000; i++) await once();
    expect(((await heap()) - h0) / 3000, 'bytes kept per closed stream').toBeLessThan(1000);
  }, 120_000);

  it('while stopping, /ssl/delete is refused as /ssl/issue-async is (409 AGENT_STOPPING)', async () => {
    const e = await env(PLAIN('s.test'));
    await e.start();
    await agent!.ctx.intake.stop(0); // close()'s first step; the listener keeps answering for up to stopTimeoutMs
    expect((await post('/ssl/issue-async', { domain: 's.test' })).status).toBe(409);
    expect((await post('/ssl/delete', { domain: 's.test' })).status).toBe(409);
  }, 60_000);

  it('a request the HTTP parser refuses (431) still gets {error, code, hint}', async () => {
    const e = await env(PLAIN('p.test'));
    await e.start();
    const text = await new Promise<string>((resolve) => {
      let out = '';
      const s = net.connect(agent!.port, '127.0.0.1');
      s.on('data', (d) => (out += d.toString()));
      s.on('close', () => resolve(out));
      s.write(`POST /ssl/status HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\nContent-Length: 2\r\n\r\n{}`);
    });
    expect(JSON.parse(text.split('\r\n\r\n')[1]!)).toMatchObject({ error: expect.any(String), code: expect.any(String), hint: expect.any(String) });
  }, 60_000);
});
