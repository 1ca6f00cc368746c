/**
 * `engine.renew()` with the certbot issuer reaches certbot only through the Issuer (Issuer.renewDue): the same
 * `certbot renew` arguments and environment as before the seam, and each lineage's outcome from what certbot said.
 * certbot is a script that prints a failed renewal and keeps its arguments; nginx is never run.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/schema.js';
import { createAutoSsl } from '../../src/engine.js';
import { BINARIES } from '../../scripts/sandbox/rig.js';
import { writeLineage } from '../helpers/certs.js';
import { makeTree } from '../helpers/nginx-fixture.js';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

describe('autossl renew through the Issuer seam', () => {
  it("runs certbot renew as before and reports each lineage from certbot's summary and its section of the output", async () => {
    const t = await makeTree('server {\n    listen 80;\n    server_name a.seam.test;\n    root /var/www;\n}\n');
    dirs.push(t.dir);
    const le = path.join(t.dir, 'le');
    await writeLineage(le, 'a.seam.test', 90, 10); // due
    await writeLineage(le, 'b.seam.test', 90, 80); // not due
    const argsFile = path.join(t.dir, 'certbot-args');
    const stdout = `Processing ${le}/renewal/a.seam.test.conf\nCertbot failed to authenticate some domains (authenticator: webroot). The Certificate Authority reported these problems:\n  Identifier: a.seam.test\n  Type:   unauthorized\n  Detail: Invalid response from http://a.seam.test/.well-known/acme-challenge/x: 404\n\nProcessing ${le}/renewal/b.seam.test.conf\n`;
    const stderr = `Failed to renew certificate a.seam.test with error: Some challenges have failed.\nThe following certificates are not due for renewal yet:\n  ${le}/live/b.seam.test/fullchain.pem expires on 2027-02-01 (skipped)\nAll renewals failed. The following certificates could not be renewed:\n  ${le}/live/a.seam.test/fullchain.pem (failure)\n1 renew failure(s), 0 parse failure(s)\n`;
    fs.writeFileSync(path.join(t.dir, 'certbot-out'), stdout);
    fs.writeFileSync(path.join(t.dir, 'certbot-err'), stderr);
    const binary = path.join(t.dir, 'certbot');
    fs.writeFileSync(
      binary,
      `#!/bin/sh\n[ "$1" = --version ] && exit 0\nprintf '%s\\n' "$@" "AUTOSSL_RENEW_PARENT=$AUTOSSL_RENEW_PARENT" > '${argsFile}'\ncat '${t.dir}/certbot-out'\ncat '${t.dir}/certbot-err' >&2\nexit 1\n`,
      { mode: 0o755 },
    );
    const config = validateConfig(
      { nginx: { binary: BINARIES.nginx, config: t.main }, certbot: { binary, configDir: le }, stateDir: path.join(t.dir, 'state') },
      path.join(t.dir, 'autossl.config.json'),
      t.dir,
    );
    const engine = await createAutoSsl(config);
    try {
      const report = await engine.renew();
      const args = fs.readFileSync(argsFile, 'utf8').trimEnd().split('\n');
      expect(args.slice(0, 5)).toEqual(['renew', '--no-random-sleep-on-renew', '--non-interactive', '--config-dir', le]);
      expect(args).not.toContain('--cert-name');
      expect(args).not.toContain('--force-renewal');
      expect(args.at(-1)).toBe(`AUTOSSL_RENEW_PARENT=${process.pid}`);
      expect(report.hookErrors).toEqual([]);
      expect(report.results).toEqual([
        {
          lineage: 'a.seam.test',
          names: ['a.seam.test'],
          outcome: 'failed',
          problems: [{ domain: 'a.seam.test', type: 'unauthorized', detail: 'Invalid response from http://a.seam.test/.well-known/acme-challenge/x: 404' }],
          message: 'a.seam.test: unauthorized: Invalid response from http://a.seam.test/.well-known/acme-challenge/x: 404',
        },
        { lineage: 'b.seam.test', names: ['b.seam.test'], outcome: 'not-due', problems: [], message: undefined },
      ]);
      // recorded as before: the failure is the lineage's last attempt
      const a = (await engine.status()).certificates.find((c) => c.lineage === 'a.seam.test');
      expect(a).toMatchObject({ state: 'failing', consecutiveFailures: 1, lastError: { code: 'CERTBOT_FAILED', message: report.results[0]!.message } });
    } finally {
      await engine.close();
    }
  });
});
