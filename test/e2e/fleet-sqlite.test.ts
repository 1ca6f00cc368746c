/**
 * The fleet on the built-in SQLite store (processes of one machine sharing one state directory), kept covered with
 * one small scenario: test/e2e/fleet.test.ts runs the acceptance on PostgreSQL. Two nginx nodes behind the
 * round-robin balancer; two domains issued from node 1: one order each, both nodes serve the same serials.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { FleetRig, type FleetNodeInfo } from '../../scripts/sandbox/fleet-rig.js';

const DOMAINS = ['s1.fleet.test', 's2.fleet.test'];

let rig: FleetRig;
const agents: ChildProcess[] = [];

beforeAll(async () => {
  rig = await FleetRig.start({ nodes: 2 });
  for (const n of rig.nodes) {
    for (const d of DOMAINS) rig.addSite(n, d);
    await rig.reload(n);
    agents.push(rig.startAgent(n));
  }
  await vi.waitFor(
    async () => {
      const live = JSON.parse((await rig.cli(rig.nodes[0]!, ['fleet', 'status', '--json'])).stdout).nodes.filter((x: { live: boolean }) => x.live).length;
      if (live !== 2) throw new Error(`${live} live nodes`);
    },
    { timeout: 30_000, interval: 250 },
  );
}, 120_000);

afterAll(async () => {
  for (const a of agents) a.kill('SIGTERM');
  await rig?.stop();
}, 60_000);

describe('a fleet of two nodes on the shared SQLite store', () => {
  it('two domains issued from node 1: one order each, node 2 serves the same serials', async () => {
    const [n1, n2] = rig.nodes as [FleetNodeInfo, FleetNodeInfo];
    const run = await rig.cli(n1, ['issue', ...DOMAINS, '--json']);
    expect(run.exitCode, String(run.all).slice(-3000)).toBe(0);
    for (const d of DOMAINS) expect(rig.ordersOf(d), d).toBe(1);
    const want = await rig.served(n1, DOMAINS);
    for (const d of DOMAINS) expect(want[d], d).toMatch(/^[0-9A-F]+$/);
    await expect.poll(() => rig.served(n2, DOMAINS), { timeout: 60_000, interval: 500 }).toEqual(want);
  }, 300_000);
});
