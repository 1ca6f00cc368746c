/**
 * Preloaded into a process under test (`node --import dist/bench/loop-monitor.js ...`): measures that process's
 * event-loop delay with perf_hooks.monitorEventLoopDelay and writes p50/p99/max (ms) as JSON to the file named by
 * AUTOSSL_LOOP_STATS every 500 ms. SIGUSR2 starts a new measurement (the bench sends it when its batch starts).
 * A bench helper, not part of autossl.
 */
import fs from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';

const file = process.env.AUTOSSL_LOOP_STATS;
if (file) {
  const histogram = monitorEventLoopDelay({ resolution: 10 });
  histogram.enable();
  let since = Date.now();
  // written off the loop (fs.promises): a synchronous write would stall the very loop it measures on a busy disk
  let writing = false;
  const write = (): void => {
    if (writing) return;
    writing = true;
    const ms = (ns: number): number => Math.round(ns / 1e4) / 100;
    const stats = { since, samples: histogram.count, p50: ms(histogram.percentile(50)), p99: ms(histogram.percentile(99)), max: ms(histogram.max) };
    void fs.promises.writeFile(`${file}.tmp`, JSON.stringify(stats)).then(() => fs.promises.rename(`${file}.tmp`, file)).catch(() => undefined).finally(() => (writing = false));
  };
  setInterval(write, 500).unref();
  process.on('SIGUSR2', () => {
    histogram.reset();
    since = Date.now();
    write();
  });
}
