/**
 * Fault matrix: the autossl process SIGKILLed at every step boundary of the pipeline in turn. A test plugin taps
 * the chosen hook before everything else, writes a marker and hangs; the test kills the CLI with SIGKILL, runs
 * `autossl recover`, and checks: the vhost restored byte for byte, or complete and valid (past the commit; or
 * recovery finished the interrupted job with a certificate it already had), no journal and no lock left,
 * `nginx -t` passes, nginx serves what the files say, and a following `autossl issue` succeeds.
 * All real: pebble, certbot and a private nginx on 127.0.0.1.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AcmeRig, BINARIES } from '../../scripts/sandbox/rig.js';
import { NginxControl } from '../../src/nginx/control.js';
import { HOOK_ORDER } from '../../src/pipeline/hooks.js';
import { readCertificate } from '../../src/issuer/certificate.js';
import { servedSerial } from '../../src/stages/verify-tls.js';
import { sha256 } from '../../src/nginx/transaction.js';
import { answer, cli, HANG_PLUGIN, reloadAndServe, httpGet, journals, locks, PHP_SITE, spawnCli, waitFor } from './helpers.js';

const DOMAIN = 'killed.fault.test';
let rig: AcmeRig;
let config: string;
let site: string;
let original: string;
let stateDir: string;
let nginx: NginxControl;

beforeAll(async () => {
  rig = await AcmeRig.start();
  site = rig.addSite(DOMAIN, PHP_SITE, { index: 'killed index\n' }).file;
  await rig.reloadNginx();
  original = fs.readFileSync(site, 'latin1');
  fs.writeFileSync(path.join(rig.info.dir, 'hang.mjs'), HANG_PLUGIN);
  config = path.join(rig.info.dir, 'autossl.config.json');
  fs.writeFileSync(config, JSON.stringify(rig.autosslConfig({ plugins: ['./hang.mjs'], sites: [{ domain: DOMAIN }] })));
  stateDir = path.join(rig.info.dir, 'state');
  nginx = new NginxControl({ binary: BINARIES.nginx, config: rig.info.nginxConf, extraArgs: rig.nginxArgs });
});

afterAll(async () => {
  await rig?.stop();
});

describe('autossl SIGKILLed at each step boundary, then autossl recover', () => {
  // every hook of one domain's run; "finally" runs after the commit (the edits are final by then)
  it.each(HOOK_ORDER.map((s) => [s]))('killed in "%s"', async (stage) => {
    // each kill starts from the untouched vhost (the issue that ended the previous case edited it)
    if (fs.readFileSync(site, 'latin1') !== original) {
      fs.writeFileSync(site, original, 'latin1');
      await reloadAndServe([...rig.nginxArgs, '-c', rig.info.nginxConf], DOMAIN);
    }
    const marker = path.join(rig.info.dir, `hang-${stage}`);
    const child = spawnCli(['issue', DOMAIN], config, { AUTOSSL_TEST_HANG_AT: stage, AUTOSSL_TEST_HANG_MARKER: marker });
    await waitFor(`the run to reach "${stage}"`, () => fs.existsSync(marker) || child.exitCode !== null);
    if (!fs.existsSync(marker)) throw new Error(`the run ended before "${stage}": ${String((await child).stdout)}`);
    child.kill('SIGKILL');
    expect((await child).signal).toBe('SIGKILL');

    const recover = await cli(['recover', '--json'], config);
    expect(recover.exitCode, recover.stdout + recover.stderr).toBe(0);
    const report = answer(recover.stdout) as { ok: boolean; restored: string[]; conflicts: unknown[]; damaged: unknown[]; finished: string[] };
    expect(report.ok).toBe(true);
    expect(report.conflicts).toEqual([]);
    expect(report.damaged).toEqual([]);
    // a run killed after the challenge edit (from beforeIssue on) and before the commit left a journal to undo
    const edited = ['beforeIssue', 'issue', 'vhost', 'validate', 'reload', 'verify'].includes(stage);
    expect(report.restored).toEqual(edited ? [site] : []);
    const after = fs.readFileSync(site, 'latin1');
    const live = path.join(rig.info.dir, 'certbot', 'config', 'live', DOMAIN);
    // complete: the certificate installed (killed after the commit; or recovery finished the interrupted job with
    // the lineage it already had, ordering nothing) ...
    const installed = after.includes(`ssl_certificate ${path.join(live, 'fullchain.pem')};`);
    if (stage === 'finally') expect(installed, 'the committed edit is kept').toBe(true);
    // what recovery finished is reported, not only the files it restored
    else if (installed)
      expect(report.finished.join('\n'), 'recover reports the job it finished').toMatch(
        /^job \S+ was interrupted: installing the certificates it obtained \(killed\./m,
      );
    // ... or restored byte for byte
    if (!installed) expect(sha256(after), 'the vhost is restored byte for byte').toBe(sha256(original));
    expect(journals(stateDir), 'no journal left').toEqual([]);
    expect(locks(stateDir), 'no lock left').toEqual([]);
    await expect(nginx.test()).resolves.toBeUndefined();
    const page = await httpGet(DOMAIN);
    expect(page.status).toBe(200);
    expect(page.body).toBe('killed index\n');
    // nginx serves what the files say: the installed certificate, or (restored) no TLS server, not the killed edit
    // (nginx reloads asynchronously: the old workers may answer for a moment)
    const serial = (): Promise<string | null> => servedSerial('127.0.0.1', 443, DOMAIN, 1000).catch(() => null);
    const want = installed ? readCertificate(path.join(live, 'cert.pem')).serial : null;
    await expect
      .poll(serial, {
        timeout: 5000,
        interval: 100,
        message: installed ? 'nginx does not serve the installed certificate' : "nginx still serves the killed run's TLS edit",
      })
      .toBe(want);

    const issue = await cli(['issue', DOMAIN, '--json'], config);
    expect(issue.exitCode, issue.stdout + issue.stderr).toBe(0);
    const result = (answer(issue.stdout) as { results: Array<{ ok: boolean }> }).results[0]!;
    expect(result.ok).toBe(true);
    const cert = readCertificate(path.join(rig.info.dir, 'certbot', 'config', 'live', DOMAIN, 'cert.pem'));
    expect(await servedSerial('127.0.0.1', 443, DOMAIN)).toBe(cert.serial);
    expect(journals(stateDir)).toEqual([]);
    expect(locks(stateDir)).toEqual([]);
  });
});
