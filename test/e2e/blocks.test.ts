/**
 * Names, not strings, own a block (issue 19), end to end (pebble, certbot, a private nginx, all real on 127.0.0.1):
 * on a `server_name *.wild.test;` block and on a regex one, issue a, then b; then an upload for one name; then
 * `uninstall` of one name; and two `autossl issue` processes at once for two exact names of one block. After each
 * step every name that had HTTPS is served a certificate that covers it (a TLS handshake with the name as SNI,
 * verified against pebble's root and the name), or the step was refused before any order or write
 * (VHOST_CERT_CONFLICT); `status` exits 0 only when that holds, and the engine's `exists` (the agent's) agrees.
 */
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AcmeRig } from '../../scripts/sandbox/rig.js';
import { validateConfig } from '../../src/config/schema.js';
import { createAutoSsl } from '../../src/engine.js';
import { sha256 } from '../../src/nginx/transaction.js';
import { makeSignedCertificate } from '../helpers/certs.js';
import { parseJson } from '../helpers/json.js';

const CLI = path.resolve(import.meta.dirname, '../../dist/src/cli.js');
const DAY = 86_400_000;

let rig: AcmeRig;
let root: string;
let config: string;
const cli = (args: string[]) => execa('node', [CLI, ...args, '--config', config], { reject: false });

/** Whether a handshake with `name` as SNI gets a certificate valid for `name` under pebble's root. */
function coveredNow(name: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port: 443, servername: name, ca: root, rejectUnauthorized: true }, () => {
      socket.end();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
    socket.setTimeout(3000, () => {
      socket.destroy();
      resolve(false);
    });
  });
}

/** Every name is served covered (nginx reloads gracefully: an old worker may answer for a moment). */
async function expectCovered(names: readonly string[]): Promise<void> {
  for (const name of names)
    await expect.poll(() => coveredNow(name), { timeout: 8000, interval: 200, message: `${name} is served a certificate that covers it` }).toBe(true);
}

/** `status` exits 0, and the engine (what the agent's /ssl/status reads) says each name exists. */
async function expectStatusOk(names: readonly string[]): Promise<void> {
  const run = await cli(['status', '--json']);
  expect(run.exitCode, run.stdout).toBe(0);
  const engine = await createAutoSsl(validateConfig(JSON.parse(fs.readFileSync(config, 'utf8'))));
  try {
    for (const name of names) expect((await engine.certificate(name, { fresh: true })).exists, name).toBe(true);
  } finally {
    await engine.close();
  }
}

function refused(run: { exitCode?: number; stdout: string; stderr: string }, code: string, ...named: string[]): void {
  expect(run.exitCode).not.toBe(0);
  const text = run.stdout + run.stderr;
  expect(text).toContain(code);
  for (const n of named) expect(text).toContain(n);
}

beforeAll(async () => {
  rig = await AcmeRig.start();
  rig.addSite('wild.test', 'server {\n    listen 127.0.0.1:80;\n    server_name *.wild.test;\n    root {root};\n}\n');
  rig.addSite('rx.test', 'server {\n    listen 127.0.0.1:80;\n    server_name ~^(?<sub>.+)\\.rx\\.test$;\n    root {root};\n}\n');
  rig.addSite('wb.test', 'server {\n    listen 127.0.0.1:80;\n    server_name *.wb.test;\n    root {root};\n}\n');
  rig.addSite('sb.test', 'server {\n    listen 127.0.0.1:80;\n    server_name sb.test other.test;\n    root {root};\n}\n');
  await rig.reloadNginx();
  root = await rig.issuingRoot();
  config = path.join(rig.info.dir, 'autossl.config.json');
  fs.writeFileSync(config, JSON.stringify(rig.autosslConfig(), null, 2));
});

afterAll(async () => {
  await rig?.stop();
});

describe('names of one block never take it from each other', () => {
  for (const zone of ['wild.test', 'rx.test']) {
    it(`${zone === 'wild.test' ? 'server_name *.wild.test' : 'a regex server_name'}: issue a, then b; an upload for c; uninstall a: a and b stay served covered, status 0`, async () => {
      const [a, b, c] = ['a', 'b', 'c'].map((l) => `${l}.${zone}`) as [string, string, string];
      const file = path.join(rig.info.sitesDir, `${zone}.conf`);
      const first = await cli(['issue', a, '--json']);
      expect(first.exitCode, first.stdout).toBe(0);
      await expectCovered([a]);
      await expectStatusOk([a]);

      // b on the same block: one certificate for both (it re-pointed the block to b alone, and a lost HTTPS)
      const second = await cli(['issue', b, '--json']);
      expect(second.exitCode, second.stdout).toBe(0);
      expect(parseJson<{ results: Array<{ names: string[] }> }>(second.stdout).results[0]!.names).toEqual([b, a]);
      await expectCovered([a, b]);
      await expectStatusOk([a, b]);

      // an upload for c alone would take a and b off HTTPS: refused before a byte is written
      const up = await makeSignedCertificate([c], new Date(Date.now() - DAY), new Date(Date.now() + 30 * DAY));
      fs.writeFileSync(path.join(rig.info.dir, `${c}.crt`), up.chain);
      fs.writeFileSync(path.join(rig.info.dir, `${c}.key`), up.key);
      const before = sha256(fs.readFileSync(file));
      const upload = await cli(['upload', c, '--cert', path.join(rig.info.dir, `${c}.crt`), '--key', path.join(rig.info.dir, `${c}.key`)]);
      refused(upload, 'VHOST_CERT_CONFLICT', a, b);
      expect(sha256(fs.readFileSync(file))).toBe(before);
      expect(fs.existsSync(path.join(rig.info.dir, 'state', 'custom', c))).toBe(false);
      await expectCovered([a, b]);

      // uninstall a would take b off HTTPS with it: refused, nothing changed
      const off = await cli(['uninstall', a]);
      refused(off, 'VHOST_CERT_CONFLICT', b);
      expect(sha256(fs.readFileSync(file))).toBe(before);
      await expectCovered([a, b]);
      await expectStatusOk([a, b]);
    });
  }

  it("two issue processes at once for two names of one block: the second plans on the first's result; every name that exits 0 is served covered, status 0", async () => {
    const file = path.join(rig.info.sitesDir, 'sb.test.conf');
    const names = ['sb.test', 'other.test'];
    const runs = await Promise.all(names.map((n) => cli(['issue', n, '--json'])));
    const ok = names.filter((_, i) => runs[i]!.exitCode === 0);
    expect(ok.length, runs.map((r) => r.stdout).join('\n')).toBeGreaterThan(0);
    for (const [i, run] of runs.entries()) {
      if (run.exitCode === 0) continue;
      // the other one was refused while planning: nothing ordered, nothing of it left in the journal
      expect(parseJson<{ results: Array<{ error: { code: string; message: string } }> }>(run.stdout).results[0]!.error.code, run.stdout).toBe(
        'VHOST_CERT_CONFLICT',
      );
      expect(run.stdout).toContain(names[1 - i]!);
    }
    await expectCovered(ok);
    await expectStatusOk(ok);
    // no run left work behind: a later command does not ask for recover
    const after = await cli(['status']);
    expect(after.stdout + after.stderr).not.toContain('left work behind');
    expect(fs.readFileSync(file, 'latin1')).toContain('ssl_certificate');
  });

  it('one batch with two names of one wildcard block: the second waits for the first and keeps it on its certificate; both served covered, no journal left', async () => {
    const run = await cli(['issue', 'a.wb.test', 'b.wb.test', '--json']);
    const results = parseJson<{ results: Array<{ domain: string; ok: boolean; names: string[]; error?: { code: string; message: string } }> }>(
      run.stdout,
    ).results;
    expect(results, run.stdout.slice(-2000) + run.stderr).toBeDefined();
    expect(results.map((r) => [r.domain, r.ok, r.error?.message])).toEqual([
      ['a.wb.test', true, undefined],
      ['b.wb.test', true, undefined],
    ]);
    expect(run.exitCode).toBe(0);
    // whichever ran second holds both names
    expect(results.map((r) => r.names.length).sort()).toEqual([1, 2]);
    await expectCovered(['a.wb.test', 'b.wb.test']);
    await expectStatusOk(['a.wb.test', 'b.wb.test']);
    expect(fs.readdirSync(path.join(rig.info.dir, 'state', 'journal')).filter((n) => n !== 'locks')).toEqual([]);
  });

  it("status (and the agent's /v1/certificates) says mismatch, exit 1, when a name of a lineage is served a certificate that does not cover it (the block re-pointed by hand); exists is false for it", async () => {
    const file = path.join(rig.info.sitesDir, 'wild.test.conf');
    const text = fs.readFileSync(file, 'latin1');
    const live = path.join(rig.certbotDirs().configDir, 'live');
    // point the block back at a's own lineage (certbot's a.wild.test, which covers a alone): b is served without cover
    fs.writeFileSync(file, text.replaceAll(`${live}/b.wild.test/`, `${live}/a.wild.test/`), 'latin1');
    try {
      await rig.reloadNginx();
      await expect.poll(() => coveredNow('b.wild.test'), { timeout: 8000 }).toBe(false);
      const run = await cli(['status', '--json']);
      expect(run.exitCode, run.stdout).toBe(1);
      const rows = parseJson<{ certificates: Array<{ lineage: string; state: string; lastError: { message: string } | null }> }>(run.stdout).certificates;
      expect(rows.find((r) => r.lineage === 'b.wild.test')).toMatchObject({ state: 'mismatch' });
      const engine = await createAutoSsl(validateConfig(JSON.parse(fs.readFileSync(config, 'utf8'))));
      expect((await engine.certificate('b.wild.test', { fresh: true })).exists).toBe(false);
      expect((await engine.certificate('a.wild.test', { fresh: true })).exists).toBe(true);
      // the agent's /v1/certificates is this report
      const report = await engine.status();
      expect(report.attention).toBe(true);
      expect(report.certificates.find((r) => r.lineage === 'b.wild.test')?.state).toBe('mismatch');
      await engine.close();
    } finally {
      fs.writeFileSync(file, text, 'latin1');
      await rig.reloadNginx();
    }
  });
});
