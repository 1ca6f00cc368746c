/**
 * bench/agent-batch: N domains (default 200) queued at once through `autossl agent` (one signed /ssl/issue-async
 * each, as the panel's loop sends them) against a private pebble + nginx, on a machine whose cores are all kept
 * busy by CPU burners for the whole run. Prints how many domains nginx then serves with their new certificate
 * (SNI, the certificate's names) and the agent's event-loop delay during the batch (perf_hooks
 * monitorEventLoopDelay, measured inside the agent process by bench/loop-monitor). Bars: N/N served, p99 < 50 ms,
 * max < 200 ms. AUTOSSL_BENCH_JSON=FILE also writes the numbers there as JSON. AUTOSSL_BENCH_CPU_PROF=DIR also writes the agent's CPU profile (node --cpu-prof) there.
 * Needs root and the Debian packages (see .ci/run); run it in a network namespace of its own; not a test.
 *   npm run build && node dist/bench/agent-batch.js [domains] [burners]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { AcmeRig } from '../scripts/sandbox/rig.js';
import { call } from '../src/agent/client.js';
import { sampleBlocked } from './blocked-sampler.js';

const count = Number(process.argv[2] ?? 200) || 200;
const burnerCount = Number(process.argv[3] ?? os.cpus().length);
const CLI = path.resolve(import.meta.dirname, '../src/cli.js');
const MONITOR = path.resolve(import.meta.dirname, 'loop-monitor.js');
const PORT = 17445;
const URL_ = `http://127.0.0.1:${PORT}`;
const TOKEN = crypto.randomBytes(32).toString('hex');

/** The names in the certificate nginx presents for `servername` on 127.0.0.1:443 (empty when none). */
function servedNames(servername: string): Promise<string[]> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port: 443, servername, rejectUnauthorized: false, timeout: 5000 }, () => {
      const san = socket.getPeerCertificate().subjectaltname ?? '';
      socket.end();
      resolve(san.split(', ').map((s) => s.replace(/^DNS:/, '')));
    });
    socket.on('timeout', () => (socket.destroy(), resolve([])));
    socket.on('error', () => resolve([]));
  });
}

const rig = await AcmeRig.start();
const children: ChildProcess[] = [];
try {
  const domains = Array.from({ length: count }, (_, i) => `d${i + 1}.loadbench.test`);
  for (const n of domains) rig.addSite(n, `server {\n    listen 127.0.0.1:80;\n    server_name ${n};\n    root {root};\n}\n`);
  await rig.reloadNginx();
  const tokens = path.join(rig.info.dir, 'tokens');
  fs.writeFileSync(tokens, `${TOKEN}\n`, { mode: 0o600 });
  const config = path.join(rig.info.dir, 'agent.json');
  // the rate limit is raised: this measures the batch, not the limiter
  fs.writeFileSync(
    config,
    JSON.stringify(
      rig.autosslConfig({
        agent: { listen: `127.0.0.1:${PORT}`, tokensFile: tokens, logLevel: 'warn', rateLimit: { perSecond: 1_000_000, burst: 1_000_000 } },
      }),
    ),
  );
  const stats = path.join(rig.info.dir, 'loop.json');
  const prof = process.env.AUTOSSL_BENCH_CPU_PROF;
  const agent = spawn('node', [...(prof ? ['--cpu-prof', '--cpu-prof-dir', prof] : []), '--import', MONITOR, CLI, 'agent', '--config', config], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, AUTOSSL_LOOP_STATS: stats },
  });
  children.push(agent);
  for (let i = 0; ; i++) {
    const up = await new Promise<boolean>((r) => http.get(`${URL_}/health`, (res) => (res.resume(), r(res.statusCode === 200))).on('error', () => r(false)));
    if (up) break;
    if (i > 100) throw new Error('the agent did not start');
    await new Promise((r) => setTimeout(r, 200));
  }
  for (let i = 0; i < burnerCount; i++) children.push(spawn('node', ['-e', 'for (;;) {}'], { stdio: 'ignore' }));

  agent.kill('SIGUSR2'); // the loop measurement starts with the batch
  // what the agent's main thread is blocked in, sampled from here (the sampler's reads would stall the loop it measures)
  const sampler = sampleBlocked(agent.pid!);
  // where the batch runs: a process of its own under the agent (src/agent/batch-thread.ts), seen among its children
  let batchProcess = false;
  const children_ = setInterval(() => {
    const kids = fs.readdirSync(`/proc/${agent.pid}/task`).flatMap((t) => {
      try {
        return fs.readFileSync(`/proc/${agent.pid}/task/${t}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
      } catch {
        return [];
      }
    });
    for (const k of kids) {
      try {
        if (fs.readFileSync(`/proc/${k}/cmdline`, 'utf8').includes('batch-thread-worker')) batchProcess = true;
      } catch {
        // gone meanwhile (a certbot run that ended)
      }
    }
  }, 250);
  const startedAt = Date.now();
  const started = performance.now();
  const jobs = new Set<string>();
  for (const domain of domains) {
    const res = await call('POST', '/ssl/issue-async', JSON.stringify({ domain, email: `admin@${domain}`, username: '' }), { url: URL_, token: TOKEN });
    if (res.status !== 202) throw new Error(`issue-async ${domain}: ${res.status} ${res.body}`);
    jobs.add((res.json() as { job_id: string }).job_id);
  }
  const states = new Map<string, { state: string; code?: string | null; message?: string | null }>();
  for (const id of jobs) {
    for (;;) {
      const job = (await call('GET', `/v1/jobs/${id}`, '', { url: URL_, token: TOKEN })).json() as {
        state: string;
        domains: Array<{ domain: string; state: string; code?: string | null; message?: string | null }>;
      };
      if (job.state !== 'running' && job.state !== 'queued') {
        for (const d of job.domains) states.set(d.domain, d);
        break;
      }
      // a job of hundreds of domains is a large answer: asked every 2 s, as a panel's progress page would
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
  const seconds = (performance.now() - started) / 1000;
  const loop = JSON.parse(fs.readFileSync(stats, 'utf8')) as {
    samples: number;
    p50: number;
    p99: number;
    max: number;
    stalls: { count: number; ms: number; cpu: number; wait: number; longest: Array<{ at: number; end: number; ms: number; cpu: number; wait: number }> };
  };
  sampler.stop();
  clearInterval(children_);
  // each long stall's time neither running nor waiting for a CPU, and what the thread slept in meanwhile
  const blocked = {
    periodMs: sampler.periodMs,
    batch: sampler.between(startedAt, Date.now()),
    longest: loop.stalls.longest
      .slice(0, 8)
      .map((s) => ({ ...s, blocked: Math.max(0, s.ms - s.cpu - s.wait), in: sampler.between(s.end - s.ms - 10, s.end).slice(0, 2) })),
  };
  const named = (list: Array<{ in: string; ms: number }>): string => list.map((b) => `${b.in} ~${b.ms} ms`).join(', ') || 'nothing sampled';
  for (const c of children.splice(1)) c.kill('SIGKILL');
  let served = 0;
  for (const d of domains) if ((await servedNames(d)).includes(d)) served++;
  const failed = [...states.values()].filter((d) => d.state !== 'done');
  const out = [
    `agent batch: ${count} domains queued at once (signed /ssl/issue-async each), ${burnerCount} CPU burners on ${os.cpus().length} cores, ${process.env.AUTOSSL_BENCH_NOTE ?? 'this machine'}`,
    `  ${served}/${count} served over TLS with their certificate; jobs: ${count - failed.length}/${count} done in ${seconds.toFixed(1)} s (${jobs.size} job${jobs.size === 1 ? '' : 's'})`,
    ...failed.slice(0, 10).map((d) => `  failed ${(d as { domain?: string }).domain}: ${d.code} ${d.message?.slice(0, 200)}`),
    `  agent event-loop delay during the batch: p50 ${loop.p50} ms, p99 ${loop.p99} ms, max ${loop.max} ms (${loop.samples} samples)`,
    // where the stalls' time went, from the kernel's accounting of the agent's main thread (bench/loop-monitor)
    `  stalls >= 40 ms: ${loop.stalls.count}, ${loop.stalls.ms} ms in all: ${loop.stalls.cpu} ms running on the agent's thread, ${loop.stalls.wait} ms ready but waiting for a CPU; longest (ms/cpu/wait): ${loop.stalls.longest
      .slice(0, 8)
      .map((s) => `${s.ms}/${s.cpu}/${s.wait}`)
      .join(' ')}`,
    `  the batch ran in ${batchProcess ? "a process of its own (the agent's child)" : "the agent's own process"}`,
    `  the agent's main thread blocked (neither running nor waiting for a CPU; sampled every ${sampler.periodMs} ms from outside) during the batch in: ${named(blocked.batch.slice(0, 6))}`,
    ...blocked.longest
      .filter((s) => s.blocked >= 20)
      .map((s) => `  stall ${s.ms} ms at ${(s.at / 1000).toFixed(1)} s: ${s.blocked} ms blocked, in: ${named(s.in)}`),
    `  bars: ${count}/${count} served: ${served === count ? 'met' : 'NOT met'}; p99 < 50 ms: ${loop.p99 < 50 ? 'met' : 'NOT met'}; max < 200 ms: ${loop.max < 200 ? 'met' : 'NOT met'}`,
  ];
  process.stdout.write(out.join('\n') + '\n');
  // the numbers as JSON for a test (test/agent/loop-delay.test.ts)
  if (process.env.AUTOSSL_BENCH_JSON)
    fs.writeFileSync(process.env.AUTOSSL_BENCH_JSON, JSON.stringify({ count, served, failed: failed.length, seconds, loop, blocked, batchProcess }));
  agent.kill('SIGTERM');
  await new Promise((r) => agent.once('exit', r));
  children.length = 0;
} finally {
  for (const c of children) c.kill('SIGKILL');
  await rig.stop();
}
