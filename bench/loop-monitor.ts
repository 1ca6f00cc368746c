/**
 * Preloaded into a process under test (`node --import dist/bench/loop-monitor.js ...`): measures that process's
 * event-loop delay with perf_hooks.monitorEventLoopDelay and writes p50/p99/max (ms) as JSON to the file named by
 * AUTOSSL_LOOP_STATS every 500 ms. SIGUSR2 starts a new measurement (the bench sends it when its batch starts).
 *
 * Each stall of 40 ms or more is also split into where the time went, from the kernel's own accounting of the
 * process's main thread (/proc/self/task/PID/schedstat: ns on a CPU, ns waiting in the run queue): `cpu` is the
 * thread running (autossl's code, the GC), `wait` the thread ready but given no CPU (the machine's load). The
 * 20 longest are in the JSON as `stalls`, with the totals over all of them. What remains of a stall (neither) is
 * the thread blocked in the kernel: bench/agent-batch samples what in (wchan, syscall) from outside and names it.
 * A bench helper, not part of autossl.
 */
import fs from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';

const file = process.env.AUTOSSL_LOOP_STATS;
if (file) {
  const histogram = monitorEventLoopDelay({ resolution: 10 });
  histogram.enable();
  let since = Date.now();
  const SCHEDSTAT = `/proc/self/task/${process.pid}/schedstat`;
  /** [ns on a CPU, ns runnable and waiting] of the main thread, or null where /proc has no schedstat. */
  const sched = (): [number, number] | null => {
    try {
      const [run, wait] = fs.readFileSync(SCHEDSTAT, 'utf8').split(' ').map(Number);
      return [run!, wait!];
    } catch {
      return null;
    }
  };
  interface Stall {
    /** ms since the measurement started, and the wall clock (Date.now) when the stall ended */
    at: number;
    end: number;
    ms: number;
    cpu: number;
    wait: number;
  }
  let stalls: Stall[] = [];
  const totals = { count: 0, ms: 0, cpu: 0, wait: 0 };
  // a 10 ms tick, its lateness split as above (the histogram stays the measure; this only explains it)
  let last = performance.now();
  let lastSched = sched();
  setInterval(() => {
    const now = performance.now();
    const late = now - last - 10;
    const s = sched();
    if (late >= 40 && s && lastSched) {
      const stall = {
        at: Math.round(Date.now() - since),
        end: Date.now(),
        ms: Math.round(late),
        cpu: Math.round((s[0] - lastSched[0]) / 1e6),
        wait: Math.round((s[1] - lastSched[1]) / 1e6),
      };
      totals.count++;
      totals.ms += stall.ms;
      totals.cpu += stall.cpu;
      totals.wait += stall.wait;
      stalls.push(stall);
      if (stalls.length > 200) stalls = stalls.sort((a, b) => b.ms - a.ms).slice(0, 20);
    }
    last = now;
    lastSched = s;
  }, 10).unref();
  // written off the loop (fs.promises): a synchronous write would stall the very loop it measures on a busy disk
  let writing = false;
  const write = (): void => {
    if (writing) return;
    writing = true;
    const ms = (ns: number): number => Math.round(ns / 1e4) / 100;
    const stats = {
      since,
      samples: histogram.count,
      p50: ms(histogram.percentile(50)),
      p99: ms(histogram.percentile(99)),
      max: ms(histogram.max),
      stalls: { ...totals, longest: [...stalls].sort((a, b) => b.ms - a.ms).slice(0, 20) },
    };
    void fs.promises
      .writeFile(`${file}.tmp`, JSON.stringify(stats))
      .then(() => fs.promises.rename(`${file}.tmp`, file))
      .catch(() => undefined)
      .finally(() => (writing = false));
  };
  setInterval(write, 500).unref();
  process.on('SIGUSR2', () => {
    histogram.reset();
    since = Date.now();
    stalls = [];
    Object.assign(totals, { count: 0, ms: 0, cpu: 0, wait: 0 });
    write();
  });
}
