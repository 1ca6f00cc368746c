/**
 * Faults: nginx -t failing after the edit, a write failing half-way, and the process killed between write and
 * validate. In every case the vhost's sha256 equals the original's and nginx still serves.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/schema.js';
import { createAutoSsl } from '../../src/engine.js';
import { EditTransaction, sha256, type FileWriter } from '../../src/nginx/transaction.js';
import { recoverJournals } from '../../src/nginx/journal-recovery.js';
import type { Plugin } from '../../src/pipeline/context.js';
import { BINARIES, stopNginx } from '../../scripts/sandbox/rig.js';
import { makeTree, type NginxSandboxTree } from '../helpers/nginx-fixture.js';
import { selfSignedEcdsa } from '../../scripts/sandbox/openssl.js';

const PORT = 80; // HTTP-01 needs port 80; files run one at a time, so the e2e sandbox is not holding it
const SITE = `server {\n    listen 127.0.0.1:${PORT};\n    server_name fault.example.test;\n    root {{DIR}}/www;\n}\n`;
let t: NginxSandboxTree;
let nginxArgs: string[];

async function served(): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${PORT}/`, { headers: { Host: 'fault.example.test' } });
  return res.status;
}

beforeAll(async () => {
  t = await makeTree(SITE);
  fs.mkdirSync(path.join(t.dir, 'www'));
  fs.writeFileSync(path.join(t.dir, 'www', 'index.html'), 'hello\n');
  nginxArgs = ['-p', t.dir, '-e', path.join(t.dir, 'error.log'), '-c', t.main];
  await execa(BINARIES.nginx, nginxArgs);
  expect(await served()).toBe(200);
});

afterAll(async () => {
  if (t) await stopNginx(path.join(t.dir, 'nginx.pid'));
});

/** A certbot config dir holding a valid lineage for the name, so the pipeline reuses it without certbot. */
async function existingLineage(dir: string, name: string): Promise<string> {
  const live = path.join(dir, 'le', 'live', name);
  fs.mkdirSync(live, { recursive: true });
  fs.mkdirSync(path.join(dir, 'le', 'renewal'), { recursive: true });
  await selfSignedEcdsa({
    key: path.join(live, 'privkey.pem'),
    cert: path.join(live, 'cert.pem'),
    days: 90,
    subject: `/CN=${name}`,
    extra: ['-addext', `subjectAltName=DNS:${name}`],
  });
  fs.copyFileSync(path.join(live, 'cert.pem'), path.join(live, 'fullchain.pem'));
  fs.copyFileSync(path.join(live, 'cert.pem'), path.join(live, 'chain.pem'));
  fs.writeFileSync(
    path.join(dir, 'le', 'renewal', `${name}.conf`),
    ['cert', 'chain', 'fullchain', 'privkey'].map((k) => `${k} = ${path.join(live, `${k}.pem`)}`).join('\n') + '\n',
  );
  return path.join(dir, 'le');
}

describe('faults', () => {
  it('nginx -t failing after the edit: the vhost is restored byte-identical and nginx keeps serving', async () => {
    const configDir = await existingLineage(t.dir, 'fault.example.test');
    const config = validateConfig({
      certbot: { binary: '/bin/false', configDir, workDir: path.join(t.dir, 'le-work'), logsDir: path.join(t.dir, 'le-logs') },
      nginx: { binary: BINARIES.nginx, config: t.main, extraArgs: ['-p', t.dir, '-e', path.join(t.dir, 'error.log')], httpsPort: 18443 },
      stateDir: path.join(t.dir, 'state'),
    });
    // a plugin whose directive nginx does not know
    const broken: Plugin = {
      name: 'broken',
      apply: (hooks) => hooks.vhost.tapPromise('broken', async (edit) => (edit.https._add('no_such_directive', 'on'), edit)),
    };
    const engine = await createAutoSsl(config, [broken]);
    const before = sha256(fs.readFileSync(t.site));
    // (pre-flight skipped: this test is about the editor's rollback, and must not ask a resolver off this machine)
    const [result] = await engine.issue(['fault.example.test'], { skipChecks: ['dns', 'caa', 'port80'] });
    expect(result!.error?.code).toBe('NGINX_TEST_FAILED');
    expect(result!.error?.message).toContain('unknown directive "no_such_directive"');
    expect(result!.error?.details).toMatchObject({ file: t.site, line: expect.any(Number) });
    expect(result!.rolledBack).toEqual([t.site]);
    expect(sha256(fs.readFileSync(t.site))).toBe(before);
    await expect(t.control.test()).resolves.toBeUndefined();
    expect(await served()).toBe(200);
  });

  it('a write failing half-way leaves the file untouched and no temp file behind', async () => {
    const before = fs.readFileSync(t.site, 'latin1');
    const halfWriter: FileWriter = async (file, data) => {
      fs.writeFileSync(file, data.subarray(0, data.length >> 1));
      throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    };
    const tx = new EditTransaction({ journalDir: path.join(t.dir, 'state', 'journal'), writer: halfWriter });
    await expect(tx.write(t.site, before, before.replace('root', 'listen 127.0.0.1:9;\n    root'))).rejects.toMatchObject({ code: 'WRITE_FAILED' });
    await tx.revert();
    expect(fs.readFileSync(t.site, 'latin1')).toBe(before);
    expect(fs.readdirSync(path.dirname(t.site)).filter((f) => f.includes('autossl-'))).toEqual([]);
    expect(await served()).toBe(200);
  });

  it('a process killed between write and validate is undone by the next run', async () => {
    const journalDir = path.join(t.dir, 'state', 'journal');
    const before = fs.readFileSync(t.site, 'latin1');
    const script = `
      import { EditTransaction } from ${JSON.stringify(path.resolve('dist/src/nginx/transaction.js'))};
      import fs from 'node:fs';
      const file = ${JSON.stringify(t.site)};
      const before = fs.readFileSync(file, 'latin1');
      const tx = new EditTransaction({ journalDir: ${JSON.stringify(journalDir)} });
      await tx.write(file, before, before.replace('root', 'no_such_directive on;\\n    root'));
      process.kill(process.pid, 'SIGKILL'); // dies before nginx -t could run
    `;
    const child = await execa('node', ['--input-type=module', '-e', script], { reject: false });
    expect(child.signal).toBe('SIGKILL');
    expect(fs.readFileSync(t.site, 'latin1')).not.toBe(before); // the half-done edit is on disk
    await expect(t.control.test()).rejects.toMatchObject({ code: 'NGINX_TEST_FAILED' });
    const { restored } = await recoverJournals(journalDir);
    expect(restored).toEqual([t.site]);
    expect(sha256(fs.readFileSync(t.site))).toBe(sha256(Buffer.from(before, 'latin1')));
    await expect(t.control.test()).resolves.toBeUndefined();
    expect(await served()).toBe(200);
    expect((await recoverJournals(journalDir)).restored).toEqual([]); // nothing left to do
  });

  it('refuses to write over a file that changed since it was read', async () => {
    const before = fs.readFileSync(t.site, 'latin1');
    const tx = new EditTransaction({ journalDir: path.join(t.dir, 'state', 'journal') });
    await expect(tx.write(t.site, before + '# stale\n', before + '# ours\n')).rejects.toMatchObject({ code: 'VHOST_CHANGED' });
    await tx.revert();
    expect(fs.readFileSync(t.site, 'latin1')).toBe(before);
  });
});
