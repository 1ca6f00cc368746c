/**
 * The Store seam (issue 22): a store that wraps the SQLite one and counts calls, plugged in through the config
 * file, runs the whole pipeline end to end (pebble, certbot and nginx, all real on 127.0.0.1) without a line of
 * src/ knowing it: issue → served, status, and the counts show jobs, attempts, certificates and locks went
 * through it. A store module that cannot be loaded is a CONFIG_INVALID naming it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AcmeRig } from '../../scripts/sandbox/rig.js';
import { parseJson } from '../helpers/json.js';
import { expectIssuedAndServed } from '../helpers/served.js';

const CLI = path.resolve(import.meta.dirname, '../../dist/src/cli.js');
const STORE = path.resolve(import.meta.dirname, '../helpers/counting-store.mjs');
const DOMAIN = 'counted.store.test';

let rig: AcmeRig;
let config: string;
let countsFile: string;

function cli(args: string[], file = config) {
  return execa('node', [CLI, ...args, '--config', file], { reject: false });
}

/** Calls per "<table>.<method>" (and per "locker.lock <key>") the counting store saw. */
function counts(): Map<string, number> {
  const out = new Map<string, number>();
  const lines = fs.existsSync(countsFile) ? fs.readFileSync(countsFile, 'utf8').split('\n').filter(Boolean) : [];
  for (const l of lines) out.set(l, (out.get(l) ?? 0) + 1);
  return out;
}

beforeAll(async () => {
  rig = await AcmeRig.start();
  rig.addSite(DOMAIN, `server {\n    listen 127.0.0.1:80;\n    server_name {name};\n    root {root};\n}\n`);
  await rig.reloadNginx();
  countsFile = path.join(rig.info.dir, 'store-calls.log');
  config = rig.writeAutosslConfig({ store: { module: STORE, options: { countsFile } }, sites: [{ domain: DOMAIN }] });
});

afterAll(async () => {
  await rig?.stop();
});

describe('a store plugged in through the config', () => {
  it('a counting store wrapping SQLite runs issue → served → status end to end; jobs, attempts, certificates and locks go through it', async () => {
    const { serial } = await expectIssuedAndServed(cli, rig.certbotDirs().configDir, DOMAIN);

    const afterIssue = counts();
    // the run is a job, its domain's progress and end recorded; the attempt recorded; one order lock, block locks
    expect(afterIssue.get('jobs.create')).toBeGreaterThanOrEqual(1);
    expect(afterIssue.get('jobs.updateDomain')).toBeGreaterThanOrEqual(2);
    expect(afterIssue.get('jobs.finish')).toBeGreaterThanOrEqual(1);
    expect(afterIssue.get('attempts.record')).toBe(1);
    expect(afterIssue.get('attempts.validationFailures')).toBeGreaterThanOrEqual(1); // the pre-flight budget
    expect(afterIssue.get(`locker.lock order-${DOMAIN}`)).toBe(1);
    expect([...afterIssue.keys()].some((k) => k.startsWith('locker.lock block-'))).toBe(true);

    const status = await cli(['status', '--json']);
    expect(status.exitCode, status.stderr).toBe(0);
    const report = parseJson(status.stdout) as { certificates: Array<{ lineage: string | null; state: string; serial: string | null }> };
    expect(report.certificates.find((c) => c.lineage === DOMAIN)).toMatchObject({ state: 'ok', serial });
    const afterStatus = counts();
    // status scanned the lineages into the store's certificates table
    expect(afterStatus.get('certificates.list') ?? 0).toBeGreaterThan(afterIssue.get('certificates.list') ?? 0);
    expect(afterStatus.get('certificates.upsert')).toBeGreaterThanOrEqual(1);

    const jobs = await cli(['jobs', '--json']);
    expect(jobs.exitCode, jobs.stderr).toBe(0);
    expect(counts().get('jobs.list') ?? 0).toBeGreaterThan(afterStatus.get('jobs.list') ?? 0);
  });

  it('a store module that cannot be loaded is CONFIG_INVALID naming it (exit 2); one that cannot open is STATE_UNAVAILABLE', async () => {
    const bad = path.join(rig.info.dir, 'bad-store.config.json');
    fs.writeFileSync(bad, JSON.stringify(rig.autosslConfig({ store: './no-such-store.mjs', sites: [{ domain: DOMAIN }] }), null, 2));
    const run = await cli(['status', '--json'], bad);
    expect(run.exitCode).toBe(2);
    expect(run.stdout + run.stderr).toMatch(/CONFIG_INVALID/);
    expect(run.stdout + run.stderr).toContain('no-such-store.mjs');
    const notFactory = path.join(rig.info.dir, 'not-a-store.mjs');
    fs.writeFileSync(notFactory, 'export const x = 1;\n');
    fs.writeFileSync(bad, JSON.stringify(rig.autosslConfig({ store: { module: './not-a-store.mjs' }, sites: [{ domain: DOMAIN }] }), null, 2));
    const again = await cli(['status', '--json'], bad);
    expect(again.exitCode).toBe(2);
    expect(again.stdout + again.stderr).toMatch(/does not export a store factory/);
    // a store that cannot open (its database is down): STATE_UNAVAILABLE with its words, no stack trace
    fs.writeFileSync(path.join(rig.info.dir, 'down-store.mjs'), "export default () => { throw new Error('database is down'); };\n");
    fs.writeFileSync(bad, JSON.stringify(rig.autosslConfig({ store: './down-store.mjs', sites: [{ domain: DOMAIN }] }), null, 2));
    const down = await cli(['status', '--json'], bad);
    expect(down.exitCode).not.toBe(0);
    expect(down.stdout + down.stderr).toMatch(/STATE_UNAVAILABLE/);
    expect(down.stdout + down.stderr).toContain('database is down');
    expect(down.stdout + down.stderr).not.toMatch(/\n\s+at /);
  });
});
