/**
 * Issue 24 acceptance: a fleet of three nginx nodes (three network namespaces) behind a round-robin balancer (a
 * fourth) on the one address pebble's DNS gives every name, sharing one PostgreSQL store: a private cluster this
 * file starts (its own data directory, port and socket directory; never the system's), which the nodes reach over
 * its unix socket (a path crosses network namespaces; the host's loopback does not). Certificates are ordered on
 * one node; the CA's validation requests land on any node; every node installs every certificate from the store;
 * a dead node's batch is finished by a live one; a node cut from the others but not from the database changes
 * nothing it serves.
 */
import fs from 'node:fs';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { FleetRig, type FleetNodeInfo } from '../../scripts/sandbox/fleet-rig.js';
import { PG_PASSWORD, startPostgres, type PgCluster } from '../helpers/postgres.js';

const DOMAINS = Array.from({ length: 20 }, (_, i) => `d${String(i + 1).padStart(2, '0')}.fleet.test`);
const BATCH = Array.from({ length: 10 }, (_, i) => `k${String(i + 1).padStart(2, '0')}.fleet.test`);
const SPLIT = 'split.fleet.test';

let cluster: PgCluster;
/** The test's own connection to the fleet's database (over loopback, in the test's namespace). */
let db: pg.Client;
let rig: FleetRig;
let n1: FleetNodeInfo;
let n2: FleetNodeInfo;
let n3: FleetNodeInfo;
const agents = new Map<string, ChildProcess>();

function startAgent(node: FleetNodeInfo): void {
  agents.set(node.name, rig.startAgent(node));
}

/** Challenge requests a node's nginx answered (200) for the names. */
function challengeHits(node: FleetNodeInfo, names: readonly string[]): number {
  const log = fs.existsSync(node.accessLog) ? fs.readFileSync(node.accessLog, 'utf8') : '';
  return log
    .split('\n')
    .filter((l) => l.includes('/.well-known/acme-challenge/') && / 200 /.test(l) && names.some((n) => l.endsWith(` ${n}`)) && !l.includes('autossl-')).length;
}

/** The lineages of the batch in the store, and which node published each. */
async function publishedBatch(): Promise<Map<string, string>> {
  const r = await db.query<{ id: string; node: string }>('SELECT id, node FROM fleet_lineages WHERE id = ANY($1)', [BATCH]);
  return new Map(r.rows.map((x) => [x.id, x.node]));
}

beforeAll(async () => {
  cluster = await startPostgres();
  db = new pg.Client({ connectionString: await cluster.createDatabase('fleet') });
  await db.connect();
  const store = { postgres: cluster.socketUrl('fleet') };
  rig = await FleetRig.start({ nodes: 3, store });
  [n1, n2, n3] = rig.nodes as [FleetNodeInfo, FleetNodeInfo, FleetNodeInfo];
  for (const d of [...DOMAINS, ...BATCH, SPLIT]) {
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
  await db?.end().catch(() => undefined);
  await cluster?.stop();
}, 60_000);

describe('a fleet of three nginx nodes behind a round-robin balancer', () => {
  it('20 domains issued from node 1: one order per domain, every node serves all 20 with the same serial, each answered challenges', async () => {
    // every node's config names the database by its socket, with a password that no output repeats
    expect(JSON.parse(fs.readFileSync(n1.configFile, 'utf8')).store.postgres).toMatch(/^postgresql:\/\/autossl:[^@]+@\/fleet\?host=/);
    const run = await rig.cli(n1, ['issue', ...DOMAINS, '--json']);
    expect(run.exitCode, String(run.all).slice(-4000)).toBe(0);
    expect(String(run.all)).not.toContain(PG_PASSWORD);
    // the store is the private cluster: the lineages and each node's heartbeat are there
    expect(Number((await db.query('SELECT count(*) AS n FROM fleet_lineages WHERE id = ANY($1)', [DOMAINS])).rows[0].n)).toBe(20);
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

  it('node 1 killed in the middle of a 10-domain batch: a live node finishes it with nobody re-running it, both live nodes serve every domain; node 1 restarted catches up', async () => {
    // two orders at a time on node 1: with ten at once a fast machine (the sid root) published all ten within one
    // poll of the store, and there was no middle of the batch left to die in
    const n1Config = JSON.parse(fs.readFileSync(n1.configFile, 'utf8')) as { batch?: Record<string, unknown> };
    fs.writeFileSync(n1.configFile, JSON.stringify({ ...n1Config, batch: { ...n1Config.batch, concurrency: 2 } }, null, 2));
    const batch = rig.cli(n1, ['issue', ...BATCH, '--json']);
    // some certificates of the batch are out (published) when node 1's machine dies
    // read from the store itself (a CLI call takes seconds on a loaded machine: the batch would be over)
    await expect.poll(async () => (await publishedBatch()).size, { timeout: 240_000, interval: 50 }).toBeGreaterThan(0);
    await rig.killNode(n1);
    agents.delete(n1.name);
    const run = await batch;
    expect(run.signal ?? run.exitCode, 'node 1 was killed before its batch ended').not.toBe(0);
    // what node 1 had published before it died (a node's own publications are named by it: no race with the taker)
    const before = [...(await publishedBatch())].filter(([, node]) => node === n1.name).map(([id]) => id);
    expect(before.length).toBeGreaterThan(0);
    expect(before.length).toBeLessThan(BATCH.length);
    const jobId = (await db.query<{ job_id: string }>('SELECT job_id FROM job_domains WHERE domain = $1', [BATCH[0]])).rows[0]!.job_id;

    // nobody runs anything: a live node's fleet loop finds the job's process gone, takes the job and finishes it
    await expect
      .poll(async () => (await db.query<{ state: string }>('SELECT state FROM jobs WHERE id = $1', [jobId])).rows[0]!.state, {
        timeout: 420_000,
        interval: 1000,
      })
      .not.toBe('running');
    const job = JSON.parse((await rig.cli(n3, ['jobs', jobId, '--json'])).stdout);
    expect(job.state, JSON.stringify(job.domains.filter((d: { state: string }) => d.state !== 'done'))).toBe('done');
    expect(job.domains.map((d: { state: string }) => d.state)).toEqual(BATCH.map(() => 'done'));
    // one node took it (two live nodes raced for it), and the job says which
    expect(job.options.handedOver).toHaveLength(1);
    const taker = job.options.handedOver[0].node as string;
    expect([n2.name, n3.name]).toContain(taker);
    const shown = await rig.cli(n2, ['jobs', jobId]);
    expect(shown.exitCode, shown.all).toBe(0);
    expect(shown.stdout).toContain(`taken over by node ${taker}`);
    expect(fs.readFileSync(`${rig.dir}/fleet-${taker}.log`, 'utf8')).toContain(`job ${jobId}: done, finished by ${taker}`);

    // what node 1 had published is adopted, not ordered again
    for (const d of before) expect(rig.ordersOf(d), d).toBe(1);
    for (const d of BATCH) expect(rig.ordersOf(d), d).toBeGreaterThanOrEqual(1);
    const want = await rig.served(n2, BATCH);
    for (const d of BATCH) expect(want[d], d).toMatch(/^[0-9A-F]+$/);
    await expect.poll(() => rig.served(n3, BATCH), { timeout: 90_000, interval: 500 }).toEqual(want);
    // node 1 comes back: its nginx, then its fleet loop, which catches up from the store
    await rig.startNginx(n1);
    startAgent(n1);
    await expect.poll(() => rig.served(n1, BATCH), { timeout: 120_000, interval: 500 }).toEqual(want);
  }, 900_000);

  it('a split (node 3 cut from the balancer and the other nodes, still reaching the database) changes nothing served; healed, it serves as the others', async () => {
    const names = [...DOMAINS, ...BATCH];
    const served3 = await rig.served(n3, names);
    for (const d of names) expect(served3[d], d).toMatch(/^[0-9A-F]+$/);
    await rig.cut(n3);
    try {
      // node 3 still heartbeats through the database: every node counts it live
      const live = JSON.parse((await rig.cli(n1, ['fleet', 'status', '--json'])).stdout).nodes.filter((x: { live: boolean }) => x.live);
      expect(live.map((x: { node: string }) => x.node).sort()).toEqual([n1.name, n2.name, n3.name]);
      // a new name ordered on node 1: node 3 acknowledges the token through the database (it writes it locally),
      // so node 1 does not wait for it in vain; the CA's requests the balancer cannot bring to node 3 go to another node
      const run = await rig.cli(n1, ['issue', SPLIT, '--json']);
      expect(run.exitCode, String(run.all).slice(-3000)).toBe(0);
      expect(rig.ordersOf(SPLIT)).toBe(1);
      expect(challengeHits(n3, [SPLIT])).toBe(0);
      expect(challengeHits(n1, [SPLIT]) + challengeHits(n2, [SPLIT])).toBeGreaterThan(0);
      const fresh = (await rig.served(n1, [SPLIT]))[SPLIT];
      expect(fresh).toMatch(/^[0-9A-F]+$/);
      // what node 3 serves for every existing name is unchanged, and it installs the new one from the database
      await expect.poll(async () => (await rig.served(n3, [SPLIT]))[SPLIT], { timeout: 60_000, interval: 500 }).toBe(fresh);
      expect(await rig.served(n3, names)).toEqual(served3);
    } finally {
      await rig.heal(n3);
    }
    // healed: the balancer reaches node 3 again, which serves what the others serve
    const all = [...names, SPLIT];
    const want = await rig.served(n2, all);
    await expect.poll(() => rig.served(n3, all), { timeout: 60_000, interval: 500 }).toEqual(want);
    await expect.poll(() => rig.served(n1, all), { timeout: 60_000, interval: 500 }).toEqual(want);
    // round robin over three nodes: of six requests through the balancer, node 3 answers some again
    const hits = (): number =>
      (fs.existsSync(n3.accessLog) ? fs.readFileSync(n3.accessLog, 'utf8') : '').split('\n').filter((l) => l.includes('"GET / ') && l.endsWith(` ${SPLIT}`))
        .length;
    const hitsBefore = hits();
    for (let i = 0; i < 6; i++) expect(await rig.viaBalancer(SPLIT, '/')).toBeGreaterThan(0); // an answer (200, or a redirect to HTTPS)
    expect(hits()).toBeGreaterThan(hitsBefore);
  }, 600_000);
});
