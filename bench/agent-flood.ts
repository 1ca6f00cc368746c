/**
 * bench/agent-flood: the agent against unauthenticated clients that try to exhaust it (issue 19), on loopback.
 * `autossl agent` runs as its own process (its RSS read from /proc) with its default limits, on a private nginx
 * tree (no CA: /ssl/status only reads). Then:
 *   1. slow bodies: N connections from several 127/8 source addresses, each sending the headers of a POST with a
 *      large Content-Length and part of the body, then stalling; half unsigned, half with a well-formed forged
 *      signature (which makes the agent read a body). Held for a while; meanwhile a signed POST /ssl/status is
 *      sent every 100 ms from 127.0.0.1 (new connection each) and timed, and the agent's RSS sampled.
 *   2. connection attempts: M connections opened in waves (each wave held until the agent closed or kept them),
 *      signed calls timed during each wave.
 * Prints baseline and peak RSS, the slowest signed call, failures. Bars: peak RSS < 150 MB, every signed call
 * answered 200 within 1 s. test/agent/flood.test.ts runs it with the same numbers.
 *   npm run build && node dist/bench/agent-flood.js [slow=2000] [attempts=20000]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { rfc3339, sign } from '../src/agent/auth.js';

export interface FloodOptions {
  /** dist/src/cli.js */
  cli: string;
  slowBodies: number;
  attempts: number;
  /** Source addresses the attackers use: 127.0.0.10 and up. */
  sources: number;
  /** Content-Length announced, and bytes of it sent before stalling. */
  bodyBytes: number;
  sentBytes: number;
  /** How long the slow connections are held while signed calls are timed. */
  holdMs: number;
  /** Connections open at once in the attempts phase. */
  wave: number;
  /** Every how many slow connections one has a well-formed forged signature (0: none). */
  forgedEvery: number;
}

export interface FloodReport {
  baselineRssMb: number;
  peakRssMb: number;
  /** Slow connections the agent still held at the end of the hold (it closes refused ones at once). */
  slowStillOpen: number;
  signed: { count: number; failures: string[]; maxMs: number };
  attemptsMade: number;
  agentAlive: boolean;
  /** Peak RSS in each phase. */
  peaks: Record<string, number>;
  /** CPU seconds the agent used during the flood, and the wall-clock seconds of it (how loaded the machine was). */
  agentCpuSeconds: number;
  wallSeconds: number;
}

const TOKEN = crypto.randomBytes(32).toString('hex');
/** The token signed calls use (the prober process is given it). */
let probeToken = TOKEN;

/** The node options systemd/autossl-agent.service gives the agent. */
export function unitNodeOptions(): string[] {
  const unit = fs.readFileSync(
    path.resolve(path.dirname(fileURLToPath(import.meta.url)), import.meta.url.includes('/dist/') ? '../../systemd' : '../systemd', 'autossl-agent.service'),
    'utf8',
  );
  return (/^Environment=NODE_OPTIONS=(.*)$/m.exec(unit)?.[1] ?? '').split(/\s+/).filter(Boolean);
}

/** CPU seconds a process used (utime + stime). */
function cpuSeconds(pid: number): number {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** A loopback port nothing listens on now (the test of token rotation takes it too). */
export async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

/** One signed POST /ssl/status on a new connection from 127.0.0.1: its status and time, or what failed. */
function signedStatus(port: number, timeoutMs = 5000): Promise<{ ok: boolean; ms: number; why: string }> {
  const body = JSON.stringify({ domain: 'flood.test' });
  const ts = rfc3339();
  const t0 = performance.now();
  return new Promise((resolve) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        localAddress: '127.0.0.1',
        method: 'POST',
        path: '/ssl/status',
        agent: false,
        headers: {
          'content-type': 'application/json',
          'content-length': body.length,
          'x-timestamp': ts,
          'x-signature': sign(probeToken, ts, 'POST', '/ssl/status', body),
        },
        timeout: timeoutMs,
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve({ ok: res.statusCode === 200, ms: performance.now() - t0, why: `HTTP ${res.statusCode}` }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => resolve({ ok: false, ms: performance.now() - t0, why: e.message }));
    req.end(body);
  });
}

function attacker(port: number, i: number, sources: number, payload: string | null): net.Socket {
  const s = net.connect({ host: '127.0.0.1', port, localAddress: `127.0.0.${10 + (i % sources)}` });
  s.on('error', () => {});
  // read what the agent answers, so its closing is seen ('close')
  s.resume();
  if (payload !== null) s.once('connect', () => s.write(payload));
  return s;
}

export async function runFlood(o: FloodOptions): Promise<FloodReport> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'autossl-flood-'));
  let agent: ChildProcess | null = null;
  const sockets: net.Socket[] = [];
  try {
    fs.mkdirSync(path.join(dir, 'sites'));
    fs.writeFileSync(path.join(dir, 'sites', 'flood.conf'), 'server {\n    listen 80;\n    server_name flood.test;\n    root /var/www/flood;\n}\n');
    fs.writeFileSync(path.join(dir, 'nginx.conf'), `events {}\nhttp {\n    include ${path.join(dir, 'sites')}/*.conf;\n}\n`);
    fs.writeFileSync(path.join(dir, 'tokens'), `${TOKEN}\n`, { mode: 0o600 });
    const port = await freePort();
    const config = path.join(dir, 'autossl.config.json');
    fs.writeFileSync(
      config,
      JSON.stringify({
        nginx: { config: path.join(dir, 'nginx.conf') },
        stateDir: path.join(dir, 'state'),
        certbot: { configDir: path.join(dir, 'le'), workDir: path.join(dir, 'work'), logsDir: path.join(dir, 'logs') },
        agent: { listen: `127.0.0.1:${port}`, tokensFile: path.join(dir, 'tokens'), logLevel: 'error' },
      }),
    );
    // the descriptors of a default shell (1024): the caps must keep the agent inside them; node's options as the
    // shipped unit sets them (its Environment=NODE_OPTIONS=...)
    agent = spawn(
      'prlimit',
      [
        '--nofile=1024:1024',
        process.execPath,
        ...unitNodeOptions(),
        ...(process.env.FLOOD_AGENT_NODE_ARGS ?? '').split(' ').filter(Boolean),
        o.cli,
        'agent',
        '--config',
        config,
      ],
      { stdio: ['ignore', 'ignore', 'inherit'] },
    );
    const pid = agent.pid!;
    for (let i = 0; ; i++) {
      const up = await new Promise<boolean>((r) =>
        http.get(`http://127.0.0.1:${port}/health`, (res) => (res.resume(), r(res.statusCode === 200))).on('error', () => r(false)),
      );
      if (up) break;
      if (i > 150 || agent.exitCode !== null) throw new Error('the agent did not start');
      await new Promise((r) => setTimeout(r, 100));
    }
    // the node process behind prlimit (prlimit execs it: the same pid)
    const baselineRssMb = rssMb(pid);
    const cpu0 = cpuSeconds(pid);
    const t0 = performance.now();
    let peakRssMb = baselineRssMb;
    let phase = 'start';
    const peaks: Record<string, number> = {};
    const sampler = setInterval(() => {
      const now = rssMb(pid);
      peakRssMb = Math.max(peakRssMb, now);
      peaks[phase] = Math.max(peaks[phase] ?? 0, now);
    }, 50);
    // the signed calls come from a process of their own: the attackers' work here must not delay them
    const signed = { count: 0, failures: [] as string[], maxMs: 0 };
    const prober = spawn(process.execPath, [fileURLToPath(import.meta.url), '--probe', String(port), TOKEN], { stdio: ['ignore', 'pipe', 'inherit'] });
    let pending = '';
    prober.stdout!.on('data', (d: Buffer) => {
      pending += d.toString();
      for (let nl = pending.indexOf('\n'); nl >= 0; nl = pending.indexOf('\n')) {
        const r = JSON.parse(pending.slice(0, nl)) as { ok: boolean; ms: number; why: string };
        pending = pending.slice(nl + 1);
        signed.count++;
        signed.maxMs = Math.max(signed.maxMs, r.ms);
        if (!r.ok || r.ms > 1000) signed.failures.push(`${r.why} in ${Math.round(r.ms)} ms (${phase})`);
      }
    });
    const proberDone = new Promise((r) => prober.once('exit', r));
    await Promise.race([
      new Promise((r) => prober.stdout!.once('data', r)),
      proberDone.then(() => Promise.reject(new Error('the prober process ended before its first call'))),
    ]);

    // the attackers (this process) run at the lowest priority: an attacker's CPU is its own machine's, not the
    // agent's; here they share one, and the agent and the prober keep the priority they were started with
    os.setPriority(process.pid, 19);

    // 1. slow bodies
    const head = (signedLooking: boolean): string =>
      `POST /ssl/upload HTTP/1.1\r\nHost: agent\r\nContent-Type: application/json\r\nContent-Length: ${o.bodyBytes}\r\n` +
      (signedLooking ? `X-Timestamp: ${rfc3339()}\r\nX-Signature: ${crypto.randomBytes(32).toString('hex')}\r\n` : '') +
      `\r\n{"domain":"flood.test","certificate":"${'A'.repeat(Math.max(0, o.sentBytes - 40))}`;
    phase = 'slow bodies';
    const slow: net.Socket[] = [];
    let slowClosed = 0;
    for (let i = 0; i < o.slowBodies; i++) {
      const s = attacker(port, i, o.sources, head(o.forgedEvery > 0 && i % o.forgedEvery === 0));
      s.once('close', () => slowClosed++);
      slow.push(s);
      sockets.push(s);
      if (i % 200 === 199) await new Promise((r) => setImmediate(r));
    }
    const holdUntil = Date.now() + o.holdMs;
    while (Date.now() < holdUntil) await new Promise((r) => setTimeout(r, 100));
    const slowStillOpen = slow.length - slowClosed;
    phase = 'attempts';
    for (const s of slow) s.destroy();

    // 2. connection attempts, a wave at a time
    let attemptsMade = 0;
    while (attemptsMade < o.attempts) {
      const n = Math.min(o.wave, o.attempts - attemptsMade);
      const wave = Array.from({ length: n }, (_, i) => attacker(port, attemptsMade + i, o.sources, null));
      attemptsMade += n;
      await Promise.all(wave.map((s) => new Promise((r) => (s.once('connect', r), s.once('close', r)))));
      peakRssMb = Math.max(peakRssMb, rssMb(pid));
      for (const s of wave) s.destroy();
    }
    prober.kill('SIGTERM');
    await proberDone;
    clearInterval(sampler);
    const agentCpuSeconds = cpuSeconds(pid) - cpu0;
    const wallSeconds = (performance.now() - t0) / 1000;
    const last = await signedStatus(port);
    if (!last.ok) signed.failures.push(`after the flood: ${last.why}`);
    return {
      baselineRssMb,
      peakRssMb,
      slowStillOpen,
      signed,
      attemptsMade,
      agentAlive: agent.exitCode === null && last.ok,
      peaks,
      agentCpuSeconds,
      wallSeconds,
    };
  } finally {
    for (const s of sockets) s.destroy();
    if (agent && agent.exitCode === null) {
      agent.kill('SIGTERM');
      await new Promise((r) => {
        const t = setTimeout(() => (agent!.kill('SIGKILL'), r(null)), 10_000);
        agent!.once('exit', () => (clearTimeout(t), r(null)));
      });
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export const DEFAULT_FLOOD: Omit<FloodOptions, 'cli'> = {
  slowBodies: 2000,
  attempts: 20_000,
  sources: 10,
  bodyBytes: 261_000,
  sentBytes: 128 * 1024,
  holdMs: 3000,
  wave: 2000,
  forgedEvery: 2,
};

/** --probe PORT TOKEN: a signed /ssl/status every 100 ms, one JSON line per answer, until SIGTERM. */
async function probe(port: number): Promise<void> {
  let running = true;
  process.once('SIGTERM', () => (running = false));
  while (running) {
    process.stdout.write(`${JSON.stringify(await signedStatus(port))}\n`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const main = process.argv[1] && import.meta.url === pathToFileURL(fs.realpathSync(process.argv[1])).href;
if (main && process.argv[2] === '--probe') {
  probeToken = process.argv[4]!;
  await probe(Number(process.argv[3]));
} else if (main) {
  const slowBodies = Number(process.argv[2] ?? DEFAULT_FLOOD.slowBodies) || DEFAULT_FLOOD.slowBodies;
  const attempts = Number(process.argv[3] ?? DEFAULT_FLOOD.attempts) || DEFAULT_FLOOD.attempts;
  const r = await runFlood({
    ...DEFAULT_FLOOD,
    forgedEvery: Number(process.env.FORGED_EVERY ?? DEFAULT_FLOOD.forgedEvery),
    slowBodies,
    attempts,
    cli: path.resolve(import.meta.dirname, '../src/cli.js'),
  });
  process.stdout.write(
    [
      `agent flood (loopback, default agent.limits, agent descriptors 1024): ${slowBodies} slow-body connections from ${DEFAULT_FLOOD.sources} addresses held ${DEFAULT_FLOOD.holdMs} ms, then ${r.attemptsMade} connection attempts`,
      `  RSS ${r.baselineRssMb.toFixed(0)} MB at rest, peak ${r.peakRssMb.toFixed(0)} MB (bar < 150 MB: ${r.peakRssMb < 150 ? 'met' : 'NOT met'})`,
      `  peak RSS by phase: ${Object.entries(r.peaks)
        .map(([k, v]) => `${k} ${v.toFixed(0)} MB`)
        .join(', ')}`,
      `  slow connections still open at the end of the hold: ${r.slowStillOpen}`,
      `  signed POST /ssl/status meanwhile: ${r.signed.count}, slowest ${Math.round(r.signed.maxMs)} ms, failures ${r.signed.failures.length}${r.signed.failures.length ? ` (${r.signed.failures.slice(0, 5).join('; ')})` : ''} (bar: all 200 within 1 s: ${r.signed.failures.length ? 'NOT met' : 'met'})`,
      `  agent alive and answering after: ${r.agentAlive}; agent CPU ${r.agentCpuSeconds.toFixed(1)} s in ${r.wallSeconds.toFixed(1)} s`,
    ].join('\n') + '\n',
  );
}
