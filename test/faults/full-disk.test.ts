/**
 * Fault matrix: a real full filesystem. As root, the CLI runs in a private mount namespace (`unshare -m`) where a
 * tiny tmpfs (64 KiB), filled to the last block, is mounted over the vhost's directory, over the journal directory
 * in stateDir, or over the whole state directory. The write that cannot happen is refused with a code before the
 * vhost changes: the vhost byte-identical (and the same inode: never rewritten), no temp file beside it, no
 * journal to recover, nginx (outside the namespace, on the same files) still serving.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AcmeRig, BINARIES } from '../../scripts/sandbox/rig.js';
import { NginxControl } from '../../src/nginx/control.js';
import { sha256 } from '../../src/nginx/transaction.js';
import { servedSerial } from '../../src/stages/verify-tls.js';
import { writeLineage } from '../helpers/certs.js';
import { CLI, cli, expectCoded, reloadAndServe, httpGet, journals, locks, PHP_SITE, STATIC_SITE, type CliRun } from './helpers.js';

let rig: AcmeRig;
let nginx: NginxControl;

beforeAll(async () => {
  rig = await AcmeRig.start();
  nginx = new NginxControl({ binary: BINARIES.nginx, config: rig.info.nginxConf, extraArgs: rig.nginxArgs });
});

afterAll(async () => {
  await rig?.stop();
});

interface Inside {
  run: CliRun;
  /** sha256 and inode of the vhost, and what the full directory holds ("f name", "d name"), as seen inside the namespace. */
  sha: string;
  inode: number;
  listing: string[];
}

/**
 * Runs `autossl issue <domain> --json` in a private mount namespace with a full 64 KiB tmpfs over `full`
 * (`prepare` runs first, inside, to put files on it), then reports what the namespace saw.
 */
async function issueWithFullDisk(domain: string, config: string, full: string, vhost: string, prepare: string): Promise<Inside> {
  const out = fs.mkdtempSync(path.join(rig.info.dir, 'ns-'));
  const q = (s: string): string => `'${s.replaceAll("'", `'\\''`)}'`;
  const script = [
    'set -e',
    `mount -t tmpfs -o size=64k tmpfs ${q(full)}`,
    prepare,
    // fill it to the last block (dd stops at ENOSPC)
    `dd if=/dev/zero of=${q(path.join(full, '.fill'))} bs=4096 2>/dev/null || true`,
    'set +e',
    `node ${q(CLI)} issue ${q(domain)} --json --config ${q(config)} > ${q(path.join(out, 'stdout'))} 2> ${q(path.join(out, 'stderr'))}`,
    `echo $? > ${q(path.join(out, 'code'))}`,
    `sha256sum ${q(vhost)} | cut -d' ' -f1 > ${q(path.join(out, 'sha'))}`,
    `stat -c %i ${q(vhost)} > ${q(path.join(out, 'inode'))}`,
    `find ${q(full)} -mindepth 1 -printf '%y %P\\n' > ${q(path.join(out, 'listing'))}`,
  ].join('\n');
  const ns = await execa('unshare', ['-m', 'sh', '-c', script], { reject: false });
  expect(ns.exitCode, `${ns.stdout}${ns.stderr}`).toBe(0);
  const read = (f: string): string => fs.readFileSync(path.join(out, f), 'utf8');
  return {
    run: { exitCode: Number(read('code')), signal: undefined, stdout: read('stdout'), stderr: read('stderr') },
    sha: read('sha').trim(),
    inode: Number(read('inode')),
    listing: read('listing').split('\n').filter(Boolean),
  };
}

async function expectServing(domain: string, stateDir: string): Promise<void> {
  await expect(nginx.test()).resolves.toBeUndefined();
  const page = await httpGet(domain);
  expect(page.status).toBe(200);
  expect(page.body).toBe(`${domain} index\n`);
  expect(
    await servedSerial('127.0.0.1', 443, domain, 1000).then(
      () => true,
      () => false,
    ),
  ).toBe(false);
  expect(journals(stateDir)).toEqual([]);
  expect(locks(stateDir)).toEqual([]);
}

/** A site whose server block lives in its own directory (the one the full tmpfs covers), included from sites/. */
async function siteIn(domain: string, shape: string): Promise<{ dir: string; vhost: string; text: string }> {
  const dir = path.join(rig.info.dir, `vhosts-${domain}`);
  fs.mkdirSync(dir, { recursive: true });
  const { file } = rig.addSite(domain, shape, { index: `${domain} index\n` });
  const vhost = path.join(dir, `${domain}.conf`);
  fs.renameSync(file, vhost);
  fs.writeFileSync(file, `include ${vhost};\n`);
  await reloadAndServe([...rig.nginxArgs, '-c', rig.info.nginxConf], domain);
  return { dir, vhost, text: fs.readFileSync(vhost, 'latin1') };
}

function config(name: string, domain: string, stateDir: string): string {
  const file = path.join(rig.info.dir, `${name}.config.json`);
  fs.writeFileSync(file, JSON.stringify(rig.autosslConfig({ stateDir, sites: [{ domain }] })));
  return file;
}

describe('a full filesystem', () => {
  it("the vhost's directory full: the HTTPS edit fails with WRITE_FAILED, the vhost untouched, no temp file", async () => {
    const domain = 'vhost-full.fault.test';
    const { dir, vhost, text } = await siteIn(domain, STATIC_SITE); // no challenge edit: the HTTPS edit is the first write
    await writeLineage(path.join(rig.info.dir, 'certbot', 'config'), domain, 90, 80); // reused: no order needed
    const stateDir = path.join(rig.info.dir, 'state-vhost-full');
    const cfg = config('vhost-full', domain, stateDir);
    // inside the namespace the tmpfs holds the same bytes as the disk outside (where nginx reads them)
    const orig = path.join(rig.info.dir, 'vhost-full.orig');
    fs.copyFileSync(vhost, orig);
    const inside = await issueWithFullDisk(domain, cfg, dir, vhost, `cp -p '${orig}' '${vhost}'`);
    const error = expectCoded(inside.run, ['WRITE_FAILED'], 'vhost dir full');
    expect(error.message).toContain(vhost);
    expect(error.message).toMatch(/ENOSPC/);
    expect(inside.sha).toBe(sha256(text));
    expect(inside.listing.sort()).toEqual(['f .fill', `f ${path.basename(vhost)}`]); // no temp file left
    expect(sha256(fs.readFileSync(vhost))).toBe(sha256(text));
    await expectServing(domain, stateDir);
  });

  it('the journal directory full: the journal write fails before the vhost is touched', async () => {
    const domain = 'journal-full.fault.test';
    const { vhost, text } = await siteIn(domain, PHP_SITE); // the challenge edit is the first write
    const stateDir = path.join(rig.info.dir, 'state-journal-full');
    const cfg = config('journal-full', domain, stateDir);
    expect((await cli(['recover'], cfg)).exitCode).toBe(0); // the state database exists, on a disk with room
    const journal = path.join(stateDir, 'journal');
    fs.mkdirSync(journal, { recursive: true });
    const inode = fs.statSync(vhost).ino;
    const inside = await issueWithFullDisk(domain, cfg, journal, vhost, 'true');
    const error = expectCoded(inside.run, ['WRITE_FAILED', 'STATE_UNAVAILABLE'], 'journal full');
    expect(error.message).toContain(journal);
    expect(error.hint).toMatch(/full|free (disk )?space/);
    expect(inside.sha).toBe(sha256(text));
    expect(inside.inode).toBe(inode); // never rewritten
    // nothing to recover on the full disk: no manifest, no backup (the transaction's directory may be left empty:
    // EditTransaction.begin creates it before its first manifest write, and recovery drops empty ones after 60 s)
    expect(inside.listing.filter((l) => l !== 'f .fill' && !/^d [^/]+$/.test(l))).toEqual([]);
    expect(fs.readdirSync(path.dirname(vhost)).filter((n) => n.includes('.autossl-'))).toEqual([]);
    await expectServing(domain, stateDir);
  });

  it('the whole state directory full: STATE_UNAVAILABLE before anything, the vhost untouched', async () => {
    const domain = 'state-full.fault.test';
    const { vhost, text } = await siteIn(domain, PHP_SITE);
    const stateDir = path.join(rig.info.dir, 'state-full');
    fs.mkdirSync(stateDir, { recursive: true });
    const cfg = config('state-full', domain, stateDir);
    const inode = fs.statSync(vhost).ino;
    const inside = await issueWithFullDisk(domain, cfg, stateDir, vhost, 'true');
    const error = expectCoded(inside.run, ['STATE_UNAVAILABLE', 'WRITE_FAILED'], 'state dir full');
    expect(error.message).toContain(stateDir);
    expect(error.hint, 'the hint names the fix: free space (not permissions)').toMatch(/full|free (disk )?space/);
    expect(inside.sha).toBe(sha256(text));
    expect(inside.inode).toBe(inode);
    await expectServing(domain, stateDir);
  });
});
