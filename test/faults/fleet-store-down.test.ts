/**
 * Issue 24, faults: the fleet's store unreachable. No order is placed (the order lock and the challenge publication
 * need the store), the run fails with STATE_UNAVAILABLE, no file changes, and what nginx serves stays; the node's
 * `autossl fleet run` keeps going (logging the failing round) without touching what is served.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AcmeRig } from '../../scripts/sandbox/rig.js';
import { servedSerial } from '../../src/installer/sni.js';

const CLI = path.resolve(import.meta.dirname, '../../dist/src/cli.js');
const STORE = path.resolve(import.meta.dirname, '../helpers/switchable-store.mjs');
const UP = 'up.fleetdown.test';
const NEW = 'new.fleetdown.test';

let rig: AcmeRig;
let config: string;
let downFile: string;

const cli = (args: string[]) => execa('node', [CLI, ...args, '--config', config], { reject: false, all: true });
const snapshot = (dir: string) => Object.fromEntries(fs.readdirSync(dir).map((f) => [f, fs.readFileSync(path.join(dir, f), 'utf8')]));

beforeAll(async () => {
  rig = await AcmeRig.start();
  for (const d of [UP, NEW]) rig.addSite(d, `server {\n    listen 127.0.0.1:80;\n    server_name {name};\n    root {root};\n}\n`);
  await rig.reloadNginx();
  downFile = path.join(rig.info.dir, 'store-down');
  config = path.join(rig.info.dir, 'autossl.config.json');
  fs.writeFileSync(config, JSON.stringify(rig.autosslConfig({ store: { module: STORE, options: { downFile } }, fleet: { node: 'n1', pollMs: 100 } }), null, 2));
});

afterAll(async () => {
  await rig?.stop();
});

describe('a fleet node whose store is unreachable', () => {
  it('orders nothing (STATE_UNAVAILABLE), writes nothing, keeps serving; fleet run goes on without touching what is served', async () => {
    const first = await cli(['issue', UP, '--json']);
    expect(first.exitCode, String(first.all).slice(-2000)).toBe(0);
    const serial = await servedSerial('127.0.0.1', 443, UP);

    fs.writeFileSync(downFile, '');
    const before = snapshot(rig.info.sitesDir);
    const run = await cli(['issue', NEW, '--json']);
    expect(run.exitCode).not.toBe(0);
    expect(run.all).toContain('STATE_UNAVAILABLE');
    expect(run.all).not.toMatch(/at .*\.js:\d+/); // a typed error, no stack
    expect(fs.readFileSync(rig.info.pebbleLog, 'utf8')).not.toContain(NEW);
    expect(snapshot(rig.info.sitesDir)).toEqual(before);
    expect(await servedSerial('127.0.0.1', 443, UP)).toBe(serial);

    const log = path.join(rig.info.dir, 'fleet-run.log');
    const out = fs.openSync(log, 'a');
    const node = spawn('node', [CLI, 'fleet', 'run', '--config', config], { stdio: ['ignore', out, out] });
    fs.closeSync(out);
    try {
      await expect.poll(() => fs.readFileSync(log, 'utf8'), { timeout: 30_000, interval: 200 }).toMatch(/round failed \(what is served stays as it is\)/);
      expect(node.exitCode).toBeNull(); // still running
      expect(snapshot(rig.info.sitesDir)).toEqual(before);
      expect(await servedSerial('127.0.0.1', 443, UP)).toBe(serial);
      // the store back: the node's rounds succeed again
      fs.rmSync(downFile);
      await expect.poll(() => fs.readFileSync(log, 'utf8'), { timeout: 30_000, interval: 200 }).toMatch(/the store answers again/);
    } finally {
      node.kill('SIGTERM');
    }
  }, 240_000);
});
