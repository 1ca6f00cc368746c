/**
 * The Opterius panel's "re-check missing" loop (issue 20, item 4), replayed with a client that signs as the panel
 * does: for 1,000 domains, /ssl/status then /ssl/issue-async, as fast as the client can (8 loops at once), with the
 * agent's default limits. Nothing may be refused (the panel ignores the answers: a 429 lost the issuance, or marked
 * a served certificate missing): every domain's job is recorded; then 1,000 status calls on served domains all say
 * `exists: true`. The issuing itself is a stand-in (the point is the limits and the queue), the rest is real: the
 * agent's server, its signature checks and limiter, the intake, the state database, the nginx tree.
 * A second agent with a small queue shows the bound: past agent.maxQueued an issue-async is 503 AGENT_QUEUE_FULL
 * (never 429), and /health and /v1/jobs report the queue; other changing calls keep their own rate limit.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { TokenBudgets } from '../../src/agent/auth.js';
import { call } from '../../src/agent/client.js';
import { ROUTES } from '../../src/agent/routes.js';
import { startAgent, type RunningAgent } from '../../src/agent/server.js';
import { DEFAULT_CONFIG, validateConfig } from '../../src/config/schema.js';
import { createAutoSsl, type AutoSsl } from '../../src/engine.js';
import type { DomainResult } from '../../src/pipeline/pipeline.js';
import { BINARIES } from '../../scripts/sandbox/rig.js';
import { makeCertificatePem } from '../helpers/certs.js';
import { makeTree } from '../helpers/nginx-fixture.js';
import { AgentJobs } from '../../src/agent/jobs.js';

const N = 1000;
const DAY = 86_400_000;
const TOKEN = crypto.randomBytes(32).toString('hex');
const fresh = (i: number): string => `d${String(i).padStart(4, '0')}.new.panel.test`;
const served = (i: number): string => `d${String(i).padStart(4, '0')}.served.panel.test`;
const running: RunningAgent[] = [];

afterAll(async () => {
  for (const a of running) await a.close();
});

/** An engine whose issuing is a stand-in: each batch "succeeds" after `delayMs` (or never, with null). */
function standIn(real: AutoSsl, delayMs: number | null): AutoSsl {
  return {
    ...real,
    issue: (domains, options = {}) =>
      new Promise<DomainResult[]>((resolve) => {
        if (delayMs === null) return;
        // late on purpose: the stand-in's batch takes the time a real one would
        setTimeout(() => {
          const results = domains.map(
            (d) =>
              ({
                domain: String(d),
                names: [String(d)],
                ok: true,
                reused: false,
                edits: [],
                files: [],
                rolledBack: [],
                notes: [],
                events: [],
                ms: 1,
              }) as unknown as DomainResult,
          );
          for (const r of results) options.onResult?.(r);
          if (options.jobId) new AgentJobs(real).finish(options.jobId, 'done');
          resolve(results);
        }, delayMs);
      }),
  };
}

async function agentFor(
  agentConfig: Record<string, unknown>,
  delayMs: number | null,
): Promise<{
  agent: RunningAgent;
  post: (p: string, body: unknown) => Promise<{ status: number; headers: http.IncomingHttpHeaders; json: Record<string, unknown> }>;
  get: (p: string) => Promise<Record<string, unknown>>;
}> {
  const cert = await makeCertificatePem(['*.served.panel.test'], new Date(Date.now() - DAY), new Date(Date.now() + 60 * DAY));
  const blocks: string[] = [];
  for (let i = 0; i < N; i++) blocks.push(`server {\n    listen 80;\n    server_name ${fresh(i)};\n    root /var/www/${fresh(i)};\n}\n`);
  blocks.push(
    `server {\n    listen 443 ssl;\n    server_name ${Array.from({ length: N }, (_, i) => served(i)).join(' ')};\n    ssl_certificate {{DIR}}/served/fullchain.pem;\n    ssl_certificate_key {{DIR}}/served/privkey.pem;\n    root /var/www/served;\n}\n`,
  );
  const t = await makeTree(blocks.join(''), { 'served/fullchain.pem': cert, 'served/privkey.pem': 'not read by status\n' });
  const tokens = path.join(t.dir, 'agent-tokens');
  fs.writeFileSync(tokens, `${TOKEN}\n`, { mode: 0o600 });
  const config = validateConfig({
    nginx: { binary: BINARIES.nginx, config: t.main, extraArgs: ['-p', t.dir, '-e', path.join(t.dir, 'error.log')] },
    certbot: { configDir: path.join(t.dir, 'le') },
    stateDir: path.join(t.dir, 'state'),
    agent: { listen: '127.0.0.1:7443', tokensFile: tokens, logLevel: 'silent', batchWindowMs: 200, ...agentConfig },
  });
  const real = await createAutoSsl(config);
  const agent = await startAgent(config, { engine: standIn(real, delayMs), port: 0 });
  running.push(agent);
  const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 16 });
  const post = async (p: string, body: unknown) => {
    const r = await call('POST', p, JSON.stringify(body), { url: agent.url, token: TOKEN, agent: keepAlive });
    return { status: r.status, headers: r.headers, json: r.json() as Record<string, unknown> };
  };
  const get = async (p: string) => (await call('GET', p, '', { url: agent.url, token: TOKEN, agent: keepAlive })).json() as Record<string, unknown>;
  return { agent, post, get };
}

/** Runs `fn` for 0..n-1 in `loops` sequential loops at once. */
async function loops(n: number, count: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: count }, async () => {
      while (next < n) await fn(next++);
    }),
  );
}

describe('the default limits fit a panel of 10,000 domains', () => {
  it('its re-check loop (status + issue-async per domain) and a page load (status per domain), at 2,000 calls a second: nothing refused', () => {
    // the server's limits on a clock of their own: how fast this machine answers does not decide the outcome
    const limits = new TokenBudgets(DEFAULT_CONFIG.agent.rateLimit);
    const route = (id: string) => ROUTES.find((r) => r.id === id)!;
    let now = 1_000_000;
    let refused = 0;
    for (let i = 0; i < 10_000; i++) {
      for (const id of ['ssl.status', 'ssl.issue-async']) {
        refused += limits.take(route(id), 'panel', now) ? 1 : 0;
        now += 0.5;
      }
    }
    for (let i = 0; i < 10_000; i++, now += 0.5) refused += limits.take(route('ssl.status'), 'panel', now) ? 1 : 0;
    expect(refused).toBe(0);
    expect(DEFAULT_CONFIG.agent.maxQueued).toBeGreaterThanOrEqual(10_000);
    // changes other than issue-async keep the tight budget
    let deletes = 0;
    for (let i = 0; i < 1000; i++, now += 1) deletes += limits.take(route('ssl.delete'), 'panel', now) ? 0 : 1;
    expect(deletes).toBeLessThan(DEFAULT_CONFIG.agent.rateLimit.burst + 100);
  });
});

describe("the panel's re-check loop with the default limits", () => {
  it("1,000 × (status, issue-async) as fast as the client can: no refusal, every domain's job recorded; 1,000 status calls on served domains: all exist", async () => {
    const { agent, post, get } = await agentFor({}, 50);
    const statuses = new Map<number, number>();
    const jobs = new Map<string, string>();
    const started = Date.now();
    await loops(N, 8, async (i) => {
      const s = await post('/ssl/status', { domain: fresh(i) });
      statuses.set(s.status, (statuses.get(s.status) ?? 0) + 1);
      expect(s.json.exists, fresh(i)).toBe(false);
      const q = await post('/ssl/issue-async', { domain: fresh(i), email: 'admin@panel.test', username: '' });
      statuses.set(q.status, (statuses.get(q.status) ?? 0) + 1);
      expect([q.status, q.json.status], `${fresh(i)}: ${JSON.stringify(q.json)}`).toEqual([202, 'queued']);
      jobs.set(fresh(i), q.json.job_id as string);
    });
    const loopMs = Date.now() - started;
    expect(Object.fromEntries(statuses), `after ${loopMs} ms`).toEqual({ 200: N, 202: N });
    // every domain is in the job its answer named (recorded before the 202 went out)
    for (const [domain, id] of jobs) {
      const job = await agent.ctx.engine.job(id);
      expect(
        job?.domains.map((d) => d.domain),
        domain,
      ).toContain(domain);
    }
    await expect.poll(() => agent.ctx.intake.queued, { timeout: 30_000 }).toBe(0);
    expect(((await get('/health')) as { queue: unknown }).queue).toEqual({ queued: 0, max: 20_000 });
    expect(((await get('/v1/jobs')) as { queue: unknown }).queue).toEqual({ queued: 0, max: 20_000 });

    // the panel's page load over domains that are served: nothing marked missing
    const answers = new Map<string, number>();
    const served0 = Date.now();
    await loops(N, 8, async (i) => {
      const s = await post('/ssl/status', { domain: served(i) });
      const key = `${s.status}:${String(s.json.exists)}`;
      answers.set(key, (answers.get(key) ?? 0) + 1);
    });
    expect(Object.fromEntries(answers)).toEqual({ '200:true': N });
    console.log(`panel loop: ${2 * N} calls in ${loopMs} ms; ${N} status calls on served domains in ${Date.now() - served0} ms`);
  }, 300_000);
});

describe("the queue's bound", () => {
  it('past agent.maxQueued an issue-async is 503 AGENT_QUEUE_FULL with Retry-After (never 429); /health and /v1/jobs report it; other changes keep their rate limit', async () => {
    const { post, get } = await agentFor({ maxQueued: 5, rateLimit: { perSecond: 1, burst: 2 } }, null);
    for (let i = 0; i < 5; i++) {
      const q = await post('/ssl/issue-async', { domain: fresh(i) });
      expect(q.status, JSON.stringify(q.json)).toBe(202);
      expect(q.json.queue).toEqual({ queued: i + 1, max: 5 });
    }
    // the same domain again joins its job: not a new entry, not refused
    expect((await post('/ssl/issue-async', { domain: fresh(0), username: 'again' })).status).toBe(202);
    const full = await post('/ssl/issue-async', { domain: fresh(5) });
    expect([full.status, full.json.code, full.headers['retry-after']]).toEqual([503, 'AGENT_QUEUE_FULL', '60']);
    expect(full.json.error).toContain('agent.maxQueued 5');
    expect(((await get('/health')) as { queue: unknown }).queue).toEqual({ queued: 5, max: 5 });
    expect(((await get('/v1/jobs')) as { queue: unknown }).queue).toEqual({ queued: 5, max: 5 });
    // a changing call that is not queued still has perSecond/burst (2 at once here); reads are not counted there
    const deletes = [];
    for (let i = 0; i < 3; i++) deletes.push((await post('/ssl/delete', { domain: fresh(900 + i) })).status);
    expect(deletes.slice(0, 2)).not.toContain(429);
    expect(deletes[2]).toBe(429);
    expect((await post('/ssl/status', { domain: fresh(1) })).status).toBe(200);
  }, 120_000);
});
