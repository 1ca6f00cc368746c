/**
 * A batch through the agent when its event loop stalls or nginx does not answer (issue 20, item 7). This is the
 * CI-sized half: `autossl agent` as its own process (real pebble, certbot, nginx), six domains queued at once, the
 * faults injected by a plugin in the agent's process. The 200-domain run on a machine with every core loaded, with
 * the event-loop delay bars, is bench/agent-batch (a bench, not a test).
 *  - the agent's loop stalls 3 s (busy-wait) while each of three domains' TLS checks is under way, with
 *    defaults.verifyTimeoutMs at 1 s: all three are served, none rolled back or run twice;
 *  - the first TLS check of three other domains reaches nothing (a closed port): each is rolled back, run once
 *    more with the certificate it obtained (one order at the CA), and served.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AcmeRig } from '../../scripts/sandbox/rig.js';
import { readCertificate } from '../../src/issuer/certificate.js';
import { call } from '../../src/agent/client.js';
import { servedEventually } from '../helpers/served.js';

const CLI = path.resolve(import.meta.dirname, '../../dist/src/cli.js');
const PORT = 17446;
const URL_ = `http://127.0.0.1:${PORT}`;
const TOKEN = crypto.randomBytes(32).toString('hex');
const STALLED = ['s1.stall.test', 's2.stall.test', 's3.stall.test'];
const UNREACHED = ['u1.stall.test', 'u2.stall.test', 'u3.stall.test'];

/** The fault plugin, loaded by the agent: a stalled loop during the TLS check, or a first check sent to a closed port. */
const FAULTS = `const seen = new Set();
export default {
  name: 'test-faults',
  apply(hooks) {
    hooks.verify.tapPromise({ name: 'test-faults', stage: -100 }, async (ctx) => {
      if (ctx.domain.startsWith('s')) {
        // the built-in check starts right after this tap: its first connection is under way (not yet answered)
        // when the loop stalls
        setImmediate(() => { const end = Date.now() + 3000; while (Date.now() < end); });
      }
      if (ctx.domain.startsWith('u') && !seen.has(ctx.domain)) {
        seen.add(ctx.domain);
        ctx.tlsEndpoints = ctx.tlsEndpoints.map((e) => ({ ...e, port: 9 }));
      }
    });
  },
};
`;

let rig: AcmeRig;
let agent: ChildProcess | null = null;
let log = '';

beforeAll(async () => {
  rig = await AcmeRig.start();
  for (const n of [...STALLED, ...UNREACHED]) rig.addSite(n, `server {\n    listen 127.0.0.1:80;\n    server_name ${n};\n    root {root};\n}\n`);
  await rig.reloadNginx();
  const tokens = path.join(rig.info.dir, 'tokens');
  fs.writeFileSync(tokens, `${TOKEN}\n`, { mode: 0o600 });
  fs.writeFileSync(path.join(rig.info.dir, 'faults.mjs'), FAULTS);
  const config = path.join(rig.info.dir, 'agent.json');
  fs.writeFileSync(
    config,
    JSON.stringify(
      rig.autosslConfig({
        plugins: ['./faults.mjs'],
        defaults: { verifyTimeoutMs: 1000 },
        agent: { listen: `127.0.0.1:${PORT}`, tokensFile: tokens, logLevel: 'warn', batchWindowMs: 1500 },
      }),
    ),
  );
  agent = spawn('node', [CLI, 'agent', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  agent.stdout!.on('data', (d: Buffer) => (log += d.toString()));
  agent.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  const up = (): Promise<boolean> =>
    new Promise<boolean>((r) => http.get(`${URL_}/health`, (res) => (res.resume(), r(res.statusCode === 200))).on('error', () => r(false)));
  for (const deadline = Date.now() + 30_000; !(await up());) {
    if (agent.exitCode !== null || Date.now() > deadline) throw new Error(`the agent did not start:\n${log.slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
});

afterAll(async () => {
  if (agent && agent.exitCode === null) {
    agent.kill('SIGTERM');
    await new Promise((r) => agent!.once('exit', r));
  }
  await rig?.stop();
});

interface JobDomain {
  domain: string;
  state: string;
  code: string | null;
  message: string | null;
  stages: Array<{ stage: string; ms: number }>;
}

describe('a batch through the agent with a stalled loop or an unreachable nginx', () => {
  it('every domain is served: a stalled check retries instead of rolling back; a rolled-back one runs again with its certificate', async () => {
    const jobs = new Set<string>();
    for (const domain of [...STALLED, ...UNREACHED]) {
      const res = await call('POST', '/ssl/issue-async', JSON.stringify({ domain, email: `admin@${domain}`, username: '' }), { url: URL_, token: TOKEN });
      expect(res.status, res.body).toBe(202);
      jobs.add((res.json() as { job_id: string }).job_id);
    }
    const domains: JobDomain[] = [];
    const job = async (id: string) => (await call('GET', `/v1/jobs/${id}`, '', { url: URL_, token: TOKEN })).json() as { state: string; domains: JobDomain[] };
    for (const id of jobs) {
      await expect.poll(async () => (await job(id)).state, { timeout: 170_000, interval: 500 }).not.toBe('running');
      domains.push(...(await job(id)).domains);
    }
    const byName = new Map(domains.map((d) => [d.domain, d]));
    for (const name of [...STALLED, ...UNREACHED]) {
      const d = byName.get(name);
      expect(d?.state, `${name}: ${d?.code} ${d?.message}\n${log.slice(-2000)}`).toBe('done');
      // one order each: the lineage holds one certificate, the one nginx serves
      const archive = path.join(rig.certbotDirs().configDir, 'archive', name);
      expect(
        fs.readdirSync(archive).filter((f) => f.startsWith('cert')),
        name,
      ).toEqual(['cert1.pem']);
      const serial = readCertificate(path.join(archive, 'cert1.pem')).serial;
      expect(await servedEventually(name, serial), name).toBe(serial);
      const runs = d!.stages.filter((s) => s.stage === 'issue').length;
      // the stalled ones passed once; the unreachable ones twice (rolled back, then run again)
      expect(runs, `${name}: ${JSON.stringify(d!.stages)}`).toBe(STALLED.includes(name) ? 1 : 2);
    }
  }, 180_000);
});
