/**
 * Issue 24 acceptance: a fleet of three nginx nodes (three network namespaces) behind a round-robin balancer (a
 * fourth) on the one address pebble's DNS gives every name. Certificates are ordered on one node; the CA's
 * validation requests land on any node; every node installs every certificate from the store.
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { FleetRig, type FleetNodeInfo } from '../../scripts/sandbox/fleet-rig.js';

const DOMAINS = Array.from({ length: 20 }, (_, i) => `d${String(i + 1).padStart(2, '0')}.fleet.test`);
const BATCH = Array.from({ length: 10 }, (_, i) => `k${String(i + 1).padStart(2, '0')}.fleet.test`);

let rig: FleetRig;
let n1: FleetNodeInfo;
let n2: FleetNodeInfo;
let n3: FleetNodeInfo;
const agents = new Map<string, ChildProcess>();

function startAgent(node: FleetNodeInfo): void {
  agents.set(node.name, rig.startAgent(node));
}

function killAgent(node: FleetNodeInfo): void {
  agents.get(node.name)?.kill('SIGKILL');
  agents.delete(node.name);
}

/** Challenge requests a node's nginx answered (200) for the names. */
function challengeHits(node: FleetNodeInfo, names: readonly string[]): number {
  const log = fs.existsSync(node.accessLog) ? fs.readFileSync(node.accessLog, 'utf8') : '';
  return log
    .split('\n')
    .filter((l) => l.includes('/.well-known/acme-challenge/') && / 200 /.test(l) && names.some((n) => l.endsWith(` ${n}`)) && !l.includes('autossl-')).length;
}

beforeAll(async () => {
  rig = await FleetRig.start({ nodes: 3 });
  [n1, n2, n3] = rig.nodes as [FleetNodeInfo, FleetNodeInfo, FleetNodeInfo];
  for (const d of [...DOMAINS, ...BATCH]) {
    rig.addSite(n1, d);
    rig.addSite(n2, d);
    rig.addSite(n3, d, 'all-sites.conf'); // node 3 lays its vhosts out differently: one file for every site
  }
  for (const n of rig.nodes) await rig.reload(n);
  for (const n of rig.nodes) startAgent(n);
  // every node's loop has written its heartbeat: the first order waits for all three
  await vi.waitFor(
    async () => {
      const live = JSON.parse((await rig.cli(n1, ['fleet', 'status', '--json'])).stdout).nodes.filter((x: { live: boolean }) => x.live).length;
      if (live !== 3) throw new Error(`${live} live nodes`);
    },
    { timeout: 30_000, interval: 250 },
  );
}, 120_000);

afterAll(async () => {
  for (const a of agents.values()) a.kill('SIGTERM');
  await rig?.stop();
}, 60_000);

describe('a fleet of three nginx nodes behind a round-robin balancer', () => {
  it('20 domains issued from node 1: one order per domain, every node serves all 20 with the same serial, each answered challenges', async () => {
    const run = await rig.cli(n1, ['issue', ...DOMAINS, '--json']);
    expect(run.exitCode, String(run.all).slice(-4000)).toBe(0);
    for (const d of DOMAINS) expect(rig.ordersOf(d), d).toBe(1);
    const want = await rig.served(n1, DOMAINS);
    for (const d of DOMAINS) expect(want[d], d).toMatch(/^[0-9A-F]+$/);
    for (const n of [n2, n3]) await expect.poll(() => rig.served(n, DOMAINS), { timeout: 60_000, interval: 500 }).toEqual(want);
    // the balancer spread the CA's requests: every node answered some
    for (const n of rig.nodes) expect(challengeHits(n, DOMAINS), n.name).toBeGreaterThan(0);
    // autossl status on any node: every node serves the published serial
    await expect
      .poll(
        async () => {
          const s = JSON.parse((await rig.cli(n3, ['status', '--json'])).stdout);
          return s.fleet.certificates.filter((c: { nodes: Array<{ state: string }> }) => c.nodes.every((x) => x.state === 'ok')).length;
        },
        { timeout: 30_000, interval: 500 },
      )
      .toBe(20);
  }, 300_000);

  it('autossl renew --force on node 1: all three nodes serve the new serial', async () => {
    const name = DOMAINS[0]!;
    const before = (await rig.served(n1, [name]))[name];
    const hooks = await rig.cli(n1, ['install-hooks']);
    expect(hooks.exitCode, hooks.all).toBe(0);
    const renew = await rig.cli(n1, ['renew', '--cert-name', name, '--force', '--json']);
    expect(renew.exitCode, String(renew.all).slice(-3000)).toBe(0);
    const after = (await rig.served(n1, [name]))[name];
    expect(after).toMatch(/^[0-9A-F]+$/);
    expect(after).not.toBe(before);
    for (const n of [n2, n3]) await expect.poll(async () => (await rig.served(n, [name]))[name], { timeout: 60_000, interval: 500 }).toBe(after);
  }, 600_000);

  it('node 1 killed in the middle of a 10-domain batch: node 2 finishes it, both live nodes serve every domain; node 1 restarted catches up', async () => {
    const batch = rig.cli(n1, ['issue', ...BATCH, '--json']);
    // some certificates of the batch are out (published) when node 1's machine dies
    // read from the store itself (a CLI call takes seconds on a loaded machine: the batch would be over)
    const published = (): string[] => {
      const db = new Database(path.join(rig.dir, 'shared-state', 'state.db'), { readonly: true, fileMustExist: true });
      try {
        return (db.prepare('SELECT id FROM fleet_lineages').all() as Array<{ id: string }>).map((r) => r.id).filter((id) => BATCH.includes(id));
      } finally {
        db.close();
      }
    };
    await expect.poll(published, { timeout: 240_000, interval: 50 }).not.toEqual([]);
    await rig.killNode(n1);
    agents.delete(n1.name);
    const run = await batch;
    expect(run.signal ?? run.exitCode, 'node 1 was killed before its batch ended').not.toBe(0);
    const before = published();
    expect(before.length).toBeLessThan(BATCH.length);
    const finish = await rig.cli(n2, ['issue', ...BATCH, '--json']);
    expect(finish.exitCode, String(finish.all).slice(-3000)).toBe(0);
    // what node 1 had published is not ordered again
    for (const d of before) expect(rig.ordersOf(d), d).toBe(1);
    const want = await rig.served(n2, BATCH);
    for (const d of BATCH) expect(want[d], d).toMatch(/^[0-9A-F]+$/);
    await expect.poll(() => rig.served(n3, BATCH), { timeout: 90_000, interval: 500 }).toEqual(want);
    // node 1 comes back: its nginx, then its fleet loop, which catches up from the store
    await rig.startNginx(n1);
    startAgent(n1);
    await expect.poll(() => rig.served(n1, BATCH), { timeout: 120_000, interval: 500 }).toEqual(want);
  }, 600_000);
});
