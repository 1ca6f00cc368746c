/**
 * Names, not strings, own a block: a block answering names through a wildcard, regex, leading-dot or trailing
 * wildcard server_name is never re-pointed so that a name it served with a covering certificate loses it. Planned
 * (dry run, the real hooks) for every case of the hostile block list.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/schema.js';
import { createAutoSsl } from '../../src/engine.js';
import { BINARIES } from '../../scripts/sandbox/rig.js';
import { makeTree } from '../helpers/nginx-fixture.js';
import { makeSignedCertificate, writeLineage } from '../helpers/certs.js';
import { NginxTree } from '../../src/nginx/tree.js';
import { planUninstall } from '../../src/nginx/uninstall.js';
import { HOSTILE_BLOCKS } from '../helpers/hostile.js';

const SKIP = ['dns', 'caa', 'port80'];
const DAY = 86_400_000;

async function engineFor(block: string, served: string[], extra: Record<string, unknown> = {}) {
  const t = await makeTree(
    `server {\n    ${block}\n    root /var/www;\n    ssl_certificate {{DIR}}/served/fullchain.pem;\n    ssl_certificate_key {{DIR}}/served/privkey.pem;\n}\n`,
  );
  // a pair nginx -t accepts: a dry run checks the config as it stands first
  const pair = await makeSignedCertificate(served, new Date(Date.now() - DAY), new Date(Date.now() + 60 * DAY));
  fs.mkdirSync(path.join(t.dir, 'served'));
  fs.writeFileSync(path.join(t.dir, 'served', 'fullchain.pem'), pair.chain);
  fs.writeFileSync(path.join(t.dir, 'served', 'privkey.pem'), pair.key);
  const engine = await createAutoSsl(
    validateConfig({
      nginx: { binary: BINARIES.nginx, config: t.main },
      certbot: { configDir: path.join(t.dir, 'le') },
      stateDir: path.join(t.dir, 'state'),
      ...extra,
    }),
  );
  return { t, engine };
}

describe('a block that answers more names than it lists', () => {
  for (const c of HOSTILE_BLOCKS) {
    it(`server_name ${c.block.split('server_name ')[1]} serving ${c.served.join(', ')}, issue ${c.issue}: ${'code' in c.expect ? c.expect.code : c.expect.names.join(', ')}`, async () => {
      const { t, engine } = await engineFor(c.block, c.served);
      const before = fs.readFileSync(t.site);
      const [r] = await engine.issue([c.issue], { dryRun: true, skipChecks: SKIP });
      if ('code' in c.expect) {
        expect(r!.error?.code, r!.error?.message).toBe(c.expect.code);
        if (c.expect.code === 'VHOST_CERT_CONFLICT') {
          // names what it would take off HTTPS, and the fix
          for (const n of c.served) expect(r!.error!.message).toContain(n);
          expect(r!.error!.hint).toBeTruthy();
        }
        expect(r!.files).toEqual([]);
      } else {
        expect(r!.ok, r!.error?.message).toBe(true);
        expect(r!.names).toEqual(c.expect.names);
      }
      expect(fs.readFileSync(t.site).equals(before)).toBe(true);
    });
  }

  it('a wildcard certificate on a wildcard block, with a DNS provider: the wildcard is ordered with the new name', async () => {
    const { engine } = await engineFor('listen 80;\n    listen 443 ssl;\n    server_name *.wild.test;', ['*.wild.test'], {
      sites: [{ domain: 'b.wild.test', challenge: 'dns-01' }],
    });
    const [r] = await engine.issue(['b.wild.test'], { dryRun: true, skipChecks: SKIP });
    // the plan keeps the wildcard; without a DNS plugin the run then stops at the challenge, before any order
    expect(r!.names).toEqual(['*.wild.test']); // b is one label under it: redundant, and refused by Let's Encrypt
    expect(r!.error?.code).toBe('DNS_PROVIDER_MISSING');
  });

  it('an upload for one name of a wildcard-served block that does not cover the others: VHOST_CERT_CONFLICT naming them, nothing written', async () => {
    const wild = 'listen 80;\n    listen 443 ssl;\n    server_name *.wild.test;';
    for (const served of [['a.wild.test', 'c.wild.test'], ['*.wild.test']]) {
      const { t, engine } = await engineFor(wild, served);
      const before = fs.readFileSync(t.site);
      const c = await makeSignedCertificate(['b.wild.test'], new Date(Date.now() - DAY), new Date(Date.now() + 30 * DAY));
      const error = await engine.installCertificate('b.wild.test', { certificate: c.chain, privateKey: c.key }).then(
        () => null,
        (e: Error & { code?: string }) => e,
      );
      expect(error?.code, error?.message).toBe('VHOST_CERT_CONFLICT');
      for (const n of served) expect(error!.message).toContain(n);
      expect(fs.readFileSync(t.site).equals(before)).toBe(true);
      expect(fs.existsSync(path.join(t.dir, 'state', 'custom', 'b.wild.test'))).toBe(false);
    }
  });

  it('uninstall of one name of a wildcard or regex block whose certificate covers others: VHOST_CERT_CONFLICT naming them; alone on it: taken back', async () => {
    for (const [serverName, served, domain, lost] of [
      ['*.wild.test', ['a.wild.test', 'b.wild.test'], 'a.wild.test', 'b.wild.test'],
      ['*.wild.test', ['*.wild.test'], 'a.wild.test', '*.wild.test'],
      ['~^(?<sub>.+)\\.rx\\.test$', ['a.rx.test', 'b.rx.test'], 'b.rx.test', 'a.rx.test'],
    ] as const) {
      const { t } = await engineFor(`listen 80;\n    listen 443 ssl;\n    server_name ${serverName};`, [...served]);
      expect(() => planUninstall(NginxTree.load(t.main), domain), serverName).toThrow(
        expect.objectContaining({ code: 'VHOST_CERT_CONFLICT', message: expect.stringContaining(lost) }),
      );
    }
    const { t } = await engineFor('listen 80;\n    listen 443 ssl;\n    server_name *.wild.test;', ['a.wild.test']);
    expect(planUninstall(NginxTree.load(t.main), 'a.wild.test').edits.length).toBe(1);
  });

  it('a renewal of a lineage that covers fewer names than the block serves covered does not re-point the block', async () => {
    const t = await makeTree(
      'server {\n    listen 80;\n    listen 443 ssl;\n    server_name *.wild.test;\n    root /var/www;\n    ssl_certificate {{DIR}}/served/fullchain.pem;\n    ssl_certificate_key {{DIR}}/served/privkey.pem;\n}\n',
    );
    const pair = await makeSignedCertificate(['b.wild.test', 'a.wild.test'], new Date(Date.now() - DAY), new Date(Date.now() + 60 * DAY));
    fs.mkdirSync(path.join(t.dir, 'served'));
    fs.writeFileSync(path.join(t.dir, 'served', 'fullchain.pem'), pair.chain);
    fs.writeFileSync(path.join(t.dir, 'served', 'privkey.pem'), pair.key);
    const le = path.join(t.dir, 'le');
    await writeLineage(le, 'a.wild.test', 90, 89); // a's own lineage, left from before the union, renewed by certbot
    const engine = await createAutoSsl(
      validateConfig({
        nginx: { binary: BINARIES.nginx, config: t.main, extraArgs: ['-p', t.dir, '-e', path.join(t.dir, 'error.log')], reloadCommand: ['/bin/true'] },
        certbot: { configDir: le },
        stateDir: path.join(t.dir, 'state'),
      }),
    );
    const before = fs.readFileSync(t.site);
    const result = await engine.deploy({ RENEWED_LINEAGE: path.join(le, 'live', 'a.wild.test'), RENEWED_DOMAINS: 'a.wild.test' });
    await engine.close();
    expect(result.error?.message).toBeUndefined();
    expect(result.changedFiles).toEqual([]);
    expect(fs.readFileSync(t.site).equals(before)).toBe(true);
  });

  it('a wildcard block whose served names outgrow one certificate (100 names): VHOST_CERT_CONFLICT before any order', async () => {
    const served = Array.from({ length: 100 }, (_, i) => `n${i}.wild.test`);
    const { engine } = await engineFor('listen 80;\n    listen 443 ssl;\n    server_name *.wild.test;', served);
    const [r] = await engine.issue(['new.wild.test'], { dryRun: true, skipChecks: SKIP });
    expect(r!.error?.code).toBe('VHOST_CERT_CONFLICT');
    expect(r!.error?.message).toContain('101 names');
  });
});
