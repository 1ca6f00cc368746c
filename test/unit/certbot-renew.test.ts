/**
 * The certbot issuer's side of renewal (src/issuer/certbot-renew.ts), behind the Issuer seam: `certbot renew` of the
 * due lineages with each one's outcome (renewDue), one lineage forced (renew), and what certbot's last run failed
 * (lastRunFailures, for the post hook). certbot here is a script that prints what certbot prints and keeps the
 * arguments and environment it was given: the arguments are what autossl renew passed to certbot before the seam.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { CertbotSettings } from '../../src/certbot/certbot.js';
import { lastRunFailuresOfCertbot, renewDueWithCertbot, renewWithCertbot } from '../../src/issuer/certbot-renew.js';
import type { Lineage, LineageSerial } from '../../src/issuer/issuer.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'autossl-certbot-renew-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const RULE = '- '.repeat(39) + '-';

/** A certbot that prints `stdout`/`stderr`, exits with `code`, and writes its argv and AUTOSSL_RENEW_PARENT to files. */
function fakeCertbot(name: string, stdout: string, stderr: string, code: number): CertbotSettings & { argsFile: string; envFile: string } {
  const dir = path.join(root, name);
  fs.mkdirSync(dir, { recursive: true });
  const argsFile = path.join(dir, 'args');
  const envFile = path.join(dir, 'env');
  fs.writeFileSync(path.join(dir, 'out'), stdout);
  fs.writeFileSync(path.join(dir, 'err'), stderr);
  const binary = path.join(dir, 'certbot');
  fs.writeFileSync(
    binary,
    `#!/bin/sh\nprintf '%s\\n' "$@" > '${argsFile}'\nprintf '%s' "$AUTOSSL_RENEW_PARENT" > '${envFile}'\ncat '${dir}/out'\ncat '${dir}/err' >&2\nexit ${code}\n`,
    { mode: 0o755 },
  );
  const logsDir = path.join(dir, 'logs');
  fs.mkdirSync(logsDir);
  return {
    binary,
    configDir: path.join(dir, 'config'),
    workDir: path.join(dir, 'work'),
    logsDir,
    keyType: 'ecdsa',
    extraArgs: [],
    timeoutMs: 30_000,
    argsFile,
    envFile,
  };
}

const certbotArgs = (s: { argsFile: string }): string[] => fs.readFileSync(s.argsFile, 'utf8').trimEnd().split('\n');

describe("the certbot issuer's renewals", () => {
  it('renewDue runs certbot renew as autossl renew did and reads each lineage from its summary and the serials', async () => {
    const stdout = `${RULE}\nProcessing /etc/letsencrypt/renewal/b.test.conf\n${RULE}\nRenewing an existing certificate for b.test\n\nCertbot failed to authenticate some domains (authenticator: webroot). The Certificate Authority reported these problems:\n  Identifier: b.test\n  Type:   unauthorized\n  Detail: Invalid response from http://b.test/.well-known/acme-challenge/x: 404\n\n`;
    const stderr = `Failed to renew certificate b.test with error: Some challenges have failed.\nThe following certificates are not due for renewal yet:\n  /etc/letsencrypt/live/c.test/fullchain.pem expires on 2027-02-01 (skipped)\nThe following renewals succeeded:\n  /etc/letsencrypt/live/a.test/fullchain.pem (success)\nThe following renewals failed:\n  /etc/letsencrypt/live/b.test/fullchain.pem (failure)\n1 renew failure(s), 0 parse failure(s)\n`;
    const s = fakeCertbot('due', stdout, stderr, 1);
    const before: LineageSerial[] = ['a', 'b', 'c', 'd', 'e'].map((l) => ({ lineage: `${l}.test`, names: [`${l}.test`], serial: `0${l.charCodeAt(0)}` }));
    // d was renewed though certbot's output does not say it (cut short); e is in no summary line and certbot failed
    const after = before.map((c) => (c.lineage === 'a.test' || c.lineage === 'd.test' ? { ...c, serial: 'FF' } : c));
    const outcomes = await renewDueWithCertbot(s, { force: false, before, current: async () => after });
    expect(certbotArgs(s).slice(0, 3)).toEqual(['renew', '--no-random-sleep-on-renew', '--non-interactive']);
    expect(fs.readFileSync(s.envFile, 'utf8')).toBe(String(process.pid));
    expect(outcomes).toEqual([
      { lineage: 'a.test', names: ['a.test'], outcome: 'renewed', problems: [], message: undefined },
      {
        lineage: 'b.test',
        names: ['b.test'],
        outcome: 'failed',
        problems: [{ domain: 'b.test', type: 'unauthorized', detail: 'Invalid response from http://b.test/.well-known/acme-challenge/x: 404' }],
        message: 'b.test: unauthorized: Invalid response from http://b.test/.well-known/acme-challenge/x: 404',
      },
      { lineage: 'c.test', names: ['c.test'], outcome: 'not-due', problems: [], message: undefined },
      { lineage: 'd.test', names: ['d.test'], outcome: 'renewed', problems: [], message: undefined },
      { lineage: 'e.test', names: ['e.test'], outcome: 'failed', problems: [], message: '1 renew failure(s), 0 parse failure(s)' },
    ]);
  });

  it('renewDue of one lineage, forced, passes --cert-name and --force-renewal and reports only that lineage', async () => {
    const s = fakeCertbot('one', '', 'The following renewals succeeded:\n  /etc/letsencrypt/live/a.test/fullchain.pem (success)\n', 0);
    const before: LineageSerial[] = [
      { lineage: 'a.test', names: ['a.test'], serial: '01' },
      { lineage: 'b.test', names: ['b.test'], serial: '02' },
    ];
    const outcomes = await renewDueWithCertbot(s, { certName: 'a.test', force: true, before, current: async () => before });
    expect(certbotArgs(s).slice(0, 5)).toEqual(['renew', '--no-random-sleep-on-renew', '--cert-name', 'a.test', '--force-renewal']);
    expect(outcomes.map((o) => [o.lineage, o.outcome])).toEqual([['a.test', 'renewed']]);
  });

  const lineage = (serial: string): Lineage => ({
    id: 'a.test',
    names: ['a.test'],
    serial,
    notBefore: new Date(0),
    notAfter: new Date(0),
    certPath: '/nonexistent/cert.pem',
    chainPath: '/nonexistent/chain.pem',
    fullchainPath: '/nonexistent/fullchain.pem',
    keyPath: '/nonexistent/privkey.pem',
  });

  it("a forced renewal certbot refused throws CERTBOT_FAILED with the CA's problems and the reason a report shows", async () => {
    const stdout = `An unexpected error occurred:\nThe client lacks sufficient authorization\n`;
    const s = fakeCertbot('forced-fail', stdout, 'Ask for help or search for solutions at https://community.letsencrypt.org.\n', 1);
    const error = await renewWithCertbot(s, lineage('01'), true, async () => lineage('01')).catch((e: unknown) => e);
    expect(certbotArgs(s).slice(0, 5)).toEqual(['renew', '--no-random-sleep-on-renew', '--cert-name', 'a.test', '--force-renewal']);
    expect(fs.readFileSync(s.envFile, 'utf8')).toBe(String(process.pid));
    expect(error).toMatchObject({
      code: 'CERTBOT_FAILED',
      message: 'certbot could not renew a.test: The client lacks sufficient authorization',
      details: { problems: [{ detail: 'The client lacks sufficient authorization' }], reason: 'The client lacks sufficient authorization' },
    });
  });

  it('a forced renewal that left the same certificate is a refusal too; one that replaced it returns the new lineage', async () => {
    const s = fakeCertbot('forced-same', '', '', 0);
    await expect(renewWithCertbot(s, lineage('01'), true, async () => lineage('01'))).rejects.toMatchObject({
      code: 'CERTBOT_FAILED',
      details: { problems: [], reason: 'certbot renew failed' },
    });
    await expect(renewWithCertbot(s, lineage('01'), true, async () => lineage('02'))).resolves.toMatchObject({ serial: '02' });
  });

  it("lastRunFailures: a lineage certbot's log says failed, with its own problems; one the log does not name was not tried", () => {
    const dir = fs.mkdtempSync(path.join(root, 'log-'));
    fs.writeFileSync(
      path.join(dir, 'letsencrypt.log'),
      `2026-12-03 07:18:12,178:DEBUG:certbot._internal.log:Root logging level set at 30
2026-12-03 07:18:12,180:DEBUG:certbot._internal.display.obj:Notifying user: Processing /etc/letsencrypt/renewal/a.test.conf
2026-12-03 07:18:13,000:DEBUG:acme.client:Received response:
{
  "type": "urn:ietf:params:acme:error:badNonce",
  "detail": "JWS has an invalid anti-replay nonce"
}
2026-12-03 07:18:13,449:ERROR:certbot._internal.renewal:Failed to renew certificate a.test with error: JWS has an invalid anti-replay nonce
2026-12-03 07:18:13,453:DEBUG:certbot._internal.display.obj:Notifying user: Processing /etc/letsencrypt/renewal/b.test.conf
`,
    );
    const unrenewed = [
      { lineage: 'a.test', names: ['a.test'], due: true },
      { lineage: 'b.test', names: ['b.test'], due: true },
      { lineage: 'c.test', names: ['c.test'], due: true },
    ];
    expect(lastRunFailuresOfCertbot(dir, unrenewed, 3)).toEqual([
      {
        lineage: 'a.test',
        names: ['a.test'],
        outcome: 'failed',
        problems: [{ type: 'badNonce', detail: 'JWS has an invalid anti-replay nonce' }],
        message: 'badNonce: JWS has an invalid anti-replay nonce',
      },
    ]);
    // no log at all: a lineage that was due counts as tried and failed, one that was not due as not tried
    const empty = fs.mkdtempSync(path.join(root, 'nolog-'));
    expect(
      lastRunFailuresOfCertbot(
        empty,
        [
          { lineage: 'a.test', names: ['a.test'], due: true },
          { lineage: 'b.test', names: ['b.test'], due: false },
        ],
        2,
      ),
    ).toEqual([{ lineage: 'a.test', names: ['a.test'], outcome: 'failed', problems: [], message: "certbot did not renew it (see certbot's log)" }]);
  });
});
