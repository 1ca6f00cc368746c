/**
 * bench/agent: the agent under a panel's load while it works. `autossl agent` runs as its own process against a
 * private pebble + nginx; a 20-domain batch is sent (one /ssl/issue-async per domain, as the panel does), and at
 * the same time autocannon sends signed POST /ssl/status (a fresh signature per request, over 40 domains, half of
 * them being issued) for 20 s on 50 connections, all on 127.0.0.1. Prints p50 / p99 latency, requests per second,
 * errors (non-2xx, socket errors, timeouts) and the batch's time. Bar: p99 < 50 ms, zero errors.
 * The agent's rate limit is raised for the run (it would answer 429 by design: this measures latency, not the
 * limiter). Needs root and the Debian packages (see .ci/run); not a test.
 *   npm run build && node dist/bench/agent.js [seconds] [connections]
 */
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import path from 'node:path';
import { AcmeRig } from '../scripts/sandbox/rig.js';
import { call } from '../src/agent/client.js';
import { rfc3339, sign } from '../src/agent/auth.js';

const require = createRequire(import.meta.url);
// autocannon ships no types: the few fields used here
interface CannonResult {
  latency: { p50: number; p99: number; average: number; max: number };
  requests: { average: number; total: number };
  errors: number;
  timeouts: number;
  non2xx: number;
}
const autocannon = require('autocannon') as (opts: Record<string, unknown>) => Promise<CannonResult>;

const seconds = Number(process.argv[2] ?? 20) || 20;
const connections = Number(process.argv[3] ?? 50) || 50;
const CLI = path.resolve(import.meta.dirname, '../src/cli.js');
const PORT = 17444;
const URL_ = `http://127.0.0.1:${PORT}`;
const TOKEN = crypto.randomBytes(32).toString('hex');

const rig = await AcmeRig.start();
let agentPid = 0;
try {
  const batch = Array.from({ length: 20 }, (_, i) => `b${i + 1}.agentbench.test`);
  const idle = Array.from({ length: 20 }, (_, i) => `s${i + 1}.agentbench.test`);
  for (const n of [...batch, ...idle]) rig.addSite(n, `server {\n    listen 127.0.0.1:80;\n    server_name ${n};\n    root {root};\n}\n`);
  await rig.reloadNginx();
  const tokens = path.join(rig.info.dir, 'tokens');
  fs.writeFileSync(tokens, `${TOKEN}\n`, { mode: 0o600 });
  const config = path.join(rig.info.dir, 'agent.json');
  fs.writeFileSync(
    config,
    JSON.stringify(
      rig.autosslConfig({
        agent: { listen: `127.0.0.1:${PORT}`, tokensFile: tokens, logLevel: 'warn', rateLimit: { perSecond: 1_000_000, burst: 1_000_000 } },
      }),
    ),
  );
  const agent = spawn('node', [CLI, 'agent', '--config', config], { stdio: ['ignore', 'ignore', 'inherit'] });
  agentPid = agent.pid ?? 0;
  for (let i = 0; ; i++) {
    const up = await new Promise<boolean>((r) => http.get(`${URL_}/health`, (res) => (res.resume(), r(res.statusCode === 200))).on('error', () => r(false)));
    if (up) break;
    if (i > 100) throw new Error('the agent did not start');
    await new Promise((r) => setTimeout(r, 200));
  }

  // the panel's loop: one issue-async per domain
  const started = performance.now();
  let jobId = '';
  for (const domain of batch) {
    const res = await call('POST', '/ssl/issue-async', JSON.stringify({ domain, email: `admin@${domain}`, username: '' }), { url: URL_, token: TOKEN });
    if (res.status !== 202) throw new Error(`issue-async ${domain}: ${res.status} ${res.body}`);
    jobId = (res.json() as { job_id: string }).job_id;
  }
  let batchSeconds: number | null = null;
  let batchState = 'running';
  const watcher = (async () => {
    for (;;) {
      const job = (await call('GET', `/v1/jobs/${jobId}`, '', { url: URL_, token: TOKEN })).json() as { state: string; domains: Array<{ state: string }> };
      if (job.state !== 'running') {
        batchSeconds = (performance.now() - started) / 1000;
        batchState = `${job.state}, ${job.domains.filter((d) => d.state === 'done').length}/${job.domains.length} done`;
        return;
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  })();

  const names = [...batch, ...idle];
  let n = 0;
  const result = await autocannon({
    url: URL_,
    connections,
    duration: seconds,
    requests: [
      {
        method: 'POST',
        path: '/ssl/status',
        // signed per request, as the panel signs: a fresh timestamp, the body's bytes
        setupRequest: (req: Record<string, unknown>) => {
          const body = JSON.stringify({ domain: names[n++ % names.length] });
          const ts = rfc3339();
          return {
            ...req,
            body,
            headers: { 'content-type': 'application/json', 'x-timestamp': ts, 'x-signature': sign(TOKEN, ts, 'POST', '/ssl/status', body) },
          };
        },
      },
    ],
  });
  let wait: NodeJS.Timeout | undefined;
  await Promise.race([watcher, new Promise((r) => (wait = setTimeout(r, 120_000)))]);
  clearTimeout(wait);
  const errors = result.errors + result.timeouts + result.non2xx;
  const out = [
    `agent under load (${connections} connections, ${seconds} s, signed POST /ssl/status over ${names.length} domains, loopback) while a 20-domain batch runs`,
    `  latency p50 ${result.latency.p50} ms, p99 ${result.latency.p99} ms (max ${result.latency.max} ms)`,
    `  ${Math.round(result.requests.average)} requests/s (${result.requests.total} in all), errors ${errors} (non-2xx ${result.non2xx}, socket ${result.errors}, timeouts ${result.timeouts})`,
    `  the batch: ${batchState} in ${batchSeconds === null ? '(not finished)' : `${(batchSeconds as number).toFixed(1)} s`}`,
    `  bar p99 < 50 ms: ${result.latency.p99 < 50 ? 'met' : 'NOT met'}; zero errors: ${errors === 0 ? 'met' : 'NOT met'}`,
  ];
  process.stdout.write(out.join('\n') + '\n');
  agent.kill('SIGTERM');
  await new Promise((r) => agent.once('exit', r));
  agentPid = 0;
} finally {
  if (agentPid) process.kill(agentPid, 'SIGKILL');
  await rig.stop();
}
