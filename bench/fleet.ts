/**
 * bench/fleet: 20 fresh domains issued from node 1 of a 3-node fleet (three nginx namespaces behind a round-robin
 * balancer, one shared store, every node serving every certificate at the end) vs the same 20 on one plain node
 * (no fleet), in the same run. Prints both wall times and the ratio (bar: fleet <= 1.5 x one node). The fleet's time
 * runs until all three nodes serve all 20. Needs root and the Debian packages (see .ci/run); not a test.
 *   npm run build && node dist/bench/fleet.js [N]
 */
import { FleetRig } from '../scripts/sandbox/fleet-rig.js';

const n = Number(process.argv[2] ?? 20) || 20;
const names = (prefix: string) => Array.from({ length: n }, (_, i) => `${prefix}${i + 1}.bench.test`);

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return (performance.now() - t) / 1000;
}

async function one(): Promise<number> {
  const rig = await FleetRig.start({ nodes: 1, fleet: false });
  try {
    const node = rig.nodes[0]!;
    const domains = names('s');
    for (const d of domains) rig.addSite(node, d);
    await rig.reload(node);
    return await timed(async () => {
      const run = await rig.cli(node, ['issue', ...domains, '--json']);
      if (run.exitCode !== 0) throw new Error(`one node: issue failed: ${String(run.all).slice(-2000)}`);
    });
  } finally {
    await rig.stop();
  }
}

let issuedAt = 0;
let fleetStart = 0;

async function fleet(): Promise<number> {
  const rig = await FleetRig.start({ nodes: 3 });
  const agents = rig.nodes.map((node) => rig.startAgent(node));
  try {
    const domains = names('f');
    for (const node of rig.nodes) for (const d of domains) rig.addSite(node, d);
    for (const node of rig.nodes) await rig.reload(node);
    // every node's loop is up (its heartbeat is in the store) before the clock starts
    for (;;) {
      const s = await rig.cli(rig.nodes[0]!, ['fleet', 'status', '--json']);
      if (s.exitCode === 0 && (JSON.parse(s.stdout) as { nodes: Array<{ live: boolean }> }).nodes.filter((x) => x.live).length === 3) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    fleetStart = performance.now();
    return await timed(async () => {
      const run = await rig.cli(rig.nodes[0]!, ['issue', ...domains, '--json']);
      if (run.exitCode !== 0) throw new Error(`fleet: issue failed: ${String(run.all).slice(-2000)}`);
      issuedAt = performance.now();
      const want = await rig.served(rig.nodes[0]!, domains);
      for (;;) {
        const all = await Promise.all(rig.nodes.map((node) => rig.served(node, domains)));
        if (all.every((s) => domains.every((d) => s[d] !== null && s[d] === want[d]))) return;
        await new Promise((r) => setTimeout(r, 200));
      }
    });
  } finally {
    for (const a of agents) a.kill('SIGTERM');
    await rig.stop();
  }
}

const single = await one();
const three = await fleet();
console.log(
  `${n} domains: one node ${single.toFixed(1)} s; 3-node fleet (until all three serve all) ${three.toFixed(1)} s; ratio ${(three / single).toFixed(2)} (bar <= 1.5); in the fleet, node 1's issue took ${((issuedAt - fleetStart) / 1000).toFixed(1)} s, the other nodes served all ${(three - (issuedAt - fleetStart) / 1000).toFixed(1)} s after it`,
);
