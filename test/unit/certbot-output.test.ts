/** Pulling the ACME error out of certbot 2.1's output, or out of its log when it printed only a traceback. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { lineageFromOutput, lineageProblems, parseCertbotProblems, problemsFromLog } from '../../src/certbot/certbot.js';
import { parseRenewSummary } from '../../src/issuer/certbot-renew.js';

describe('certbot output', () => {
  it('reads the Domain/Type/Detail blocks', () => {
    const out = `Certbot failed to authenticate some domains (authenticator: webroot). The Certificate Authority reported these problems:
  Domain: a.example.test
  Type:   connection
  Detail: 127.0.0.9: Fetching http://a.example.test/.well-known/acme-challenge/x: Connection refused

  Domain: b.example.test
  Type:   unauthorized
  Detail: Invalid response from http://b.example.test/.well-known/acme-challenge/y: 404

Hint: The Certificate Authority failed to download the temporary challenge files created by Certbot.`;
    expect(parseCertbotProblems(out)).toEqual([
      { domain: 'a.example.test', type: 'connection', detail: '127.0.0.9: Fetching http://a.example.test/.well-known/acme-challenge/x: Connection refused' },
      { domain: 'b.example.test', type: 'unauthorized', detail: 'Invalid response from http://b.example.test/.well-known/acme-challenge/y: 404' },
    ]);
  });

  it('finds the ACME error in letsencrypt.log when certbot printed only a traceback', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'autossl-log-'));
    fs.writeFileSync(
      path.join(dir, 'letsencrypt.log'),
      `2026-11-26 10:00:00,000:DEBUG:certbot._internal.main:Root logging level set at 30
2026-11-26 10:00:01,000:DEBUG:acme.client:Received response:
HTTP 400
{
  "type": "urn:ietf:params:acme:error:old",
  "detail": "from an earlier run"
}
2026-11-26 11:00:00,000:DEBUG:certbot._internal.main:Root logging level set at 30
2026-11-26 11:00:01,000:DEBUG:acme.client:Received response:
HTTP 403
{
  "type": "urn:ietf:params:acme:error:accountDoesNotExist",
  "detail": "unable to find existing account for \\"key\\"",
  "status": 400
}
Traceback (most recent call last):
AttributeError: can't set attribute
`,
    );
    expect(parseCertbotProblems("An unexpected error occurred:\nAttributeError: can't set attribute")).toEqual([]);
    expect(problemsFromLog(dir)).toEqual([{ type: 'accountDoesNotExist', detail: 'unable to find existing account for "key"' }]);
  });

  it('takes the lineage certbot reports, and refuses one outside its live dir', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'autossl-lineage-'));
    fs.mkdirSync(path.join(dir, 'renewal'));
    fs.writeFileSync(
      path.join(dir, 'renewal', 'example.test-0001.conf'),
      ['cert', 'chain', 'fullchain', 'privkey'].map((k) => `${k} = ${dir}/live/example.test-0001/${k}.pem`).join('\n'),
    );
    const lineage = lineageFromOutput(
      dir,
      `Successfully received certificate.\nCertificate is saved at: ${dir}/live/example.test-0001/fullchain.pem\n`,
      'example.test',
    );
    expect(lineage.name).toBe('example.test-0001');
    expect(() => lineageFromOutput(dir, 'Certificate is saved at: /etc/passwd\n', 'example.test')).toThrow(
      expect.objectContaining({ code: 'CERTBOT_LINEAGE_UNKNOWN' }),
    );
  });

  it("reads certbot renew's summary per lineage", () => {
    const summary = parseRenewSummary(`The following certificates are not due for renewal yet:
  /etc/letsencrypt/live/c.test/fullchain.pem expires on 2027-02-01 (skipped)
The following renewals succeeded:
  /etc/letsencrypt/live/a.test/fullchain.pem (success)
The following renewals failed:
  /etc/letsencrypt/live/b.test/fullchain.pem (failure)
`);
    expect(Object.fromEntries(summary)).toEqual({ 'a.test': 'success', 'b.test': 'failure', 'c.test': 'skipped' });
  });

  /**
   * `certbot renew` of two lineages failing differently, as certbot prints it on stdout: certbot 2.1 and 4.0 name
   * each problem's identifier "Domain:", certbot 5 "Identifier:" (the rest is the same).
   */
  const RULE = '- '.repeat(39) + '-';
  const renewOutput = (label: 'Domain' | 'Identifier') => `
${RULE}
Processing /etc/letsencrypt/renewal/a.cap.test.conf
${RULE}
Renewing an existing certificate for a.cap.test

Certbot failed to authenticate some domains (authenticator: webroot). The Certificate Authority reported these problems:
  ${label}: a.cap.test
  Type:   connection
  Detail: Get "http://a.cap.test:80/.well-known/acme-challenge/dEjQ": dial tcp 127.0.0.9:80: connect: connection refused

Hint: The Certificate Authority failed to download the temporary challenge files created by Certbot.


${RULE}
Processing /etc/letsencrypt/renewal/b.cap.test.conf
${RULE}
Renewing an existing certificate for b.cap.test

Certbot failed to authenticate some domains (authenticator: webroot). The Certificate Authority reported these problems:
  ${label}: b.cap.test
  Type:   unauthorized
  Detail: 127.0.0.1: Invalid response from http://b.cap.test/.well-known/acme-challenge/FJtJ: 404

Hint: The Certificate Authority failed to download the temporary challenge files created by Certbot.


${RULE}
${RULE}`;
  const renewStderr = `Saving debug log to /var/log/letsencrypt/letsencrypt.log
Failed to renew certificate a.cap.test with error: Some challenges have failed.
Failed to renew certificate b.cap.test with error: Some challenges have failed.
All renewals failed. The following certificates could not be renewed:
  /etc/letsencrypt/live/a.cap.test/fullchain.pem (failure)
  /etc/letsencrypt/live/b.cap.test/fullchain.pem (failure)
2 renew failure(s), 0 parse failure(s)`;

  for (const label of ['Domain', 'Identifier'] as const) {
    it(`renew of two lineages failing differently (certbot ${label === 'Domain' ? '2.1-4.x' : '5.x'} "${label}:"): each gets its own error`, () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'autossl-renewout-'));
      const run = { stdout: renewOutput(label), stderr: renewStderr };
      expect(parseCertbotProblems(run.stdout).map((p) => p.domain)).toEqual(['a.cap.test', 'b.cap.test']);
      expect(lineageProblems(run, dir, { name: 'a.cap.test', names: ['a.cap.test'] }, false)).toEqual([
        {
          domain: 'a.cap.test',
          type: 'connection',
          detail: 'Get "http://a.cap.test:80/.well-known/acme-challenge/dEjQ": dial tcp 127.0.0.9:80: connect: connection refused',
        },
      ]);
      expect(lineageProblems(run, dir, { name: 'b.cap.test', names: ['b.cap.test'] }, false)).toEqual([
        { domain: 'b.cap.test', type: 'unauthorized', detail: '127.0.0.1: Invalid response from http://b.cap.test/.well-known/acme-challenge/FJtJ: 404' },
      ]);
      fs.rmSync(dir, { recursive: true });
    });
  }

  it('a config directory long enough that certbot wraps "Processing <path>" onto two lines: sections still found', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'autossl-renewwrap-'));
    const long = `/tmp/autossl-run-AbCdEf/autossl-rig-ok8eLt/certbot/config`;
    const run = { stdout: renewOutput('Identifier').replaceAll('Processing /etc/letsencrypt/renewal/', `Processing\n${long}/renewal/`), stderr: renewStderr };
    expect(lineageProblems(run, dir, { name: 'a.cap.test', names: ['a.cap.test'] }, false).map((p) => p.domain)).toEqual(['a.cap.test']);
    expect(lineageProblems(run, dir, { name: 'b.cap.test', names: ['b.cap.test'] }, false).map((p) => p.type)).toEqual(['unauthorized']);
    fs.rmSync(dir, { recursive: true });
  });

  it("a lineage whose section names no problem takes its own part of the log, never another lineage's error", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'autossl-renewlog-'));
    // certbot printed a traceback for both: the ACME errors are only in the log, one section per lineage
    const stdout = `${RULE}\nProcessing /etc/letsencrypt/renewal/a.cap.test.conf\n${RULE}\nAn unexpected error occurred:\nTraceback (most recent call last):\n${RULE}\nProcessing /etc/letsencrypt/renewal/b.cap.test.conf\n${RULE}\nRenewing an existing certificate for b.cap.test\n`;
    fs.writeFileSync(
      path.join(dir, 'letsencrypt.log'),
      `2026-12-03 07:18:12,178:DEBUG:certbot._internal.log:Root logging level set at 30
2026-12-03 07:18:12,180:DEBUG:certbot._internal.display.obj:Notifying user: Processing /etc/letsencrypt/renewal/a.cap.test.conf
2026-12-03 07:18:13,000:DEBUG:acme.client:Received response:
{
  "type": "urn:ietf:params:acme:error:badNonce",
  "detail": "JWS has an invalid anti-replay nonce"
}
2026-12-03 07:18:13,449:ERROR:certbot._internal.renewal:Failed to renew certificate a.cap.test with error: JWS has an invalid anti-replay nonce
2026-12-03 07:18:13,453:DEBUG:certbot._internal.display.obj:Notifying user: Processing /etc/letsencrypt/renewal/b.cap.test.conf
2026-12-03 07:18:14,546:ERROR:certbot._internal.renewal:Failed to renew certificate b.cap.test with error: Connection reset by peer
`,
    );
    const run = { stdout, stderr: '' };
    expect(lineageProblems(run, dir, { name: 'a.cap.test', names: ['a.cap.test'] }, false)).toEqual([
      { type: 'badNonce', detail: 'JWS has an invalid anti-replay nonce' },
    ]);
    const b = lineageProblems(run, dir, { name: 'b.cap.test', names: ['b.cap.test'] }, false);
    expect(b.map((p) => p.detail).join()).toContain('Connection reset by peer');
    expect(JSON.stringify(b)).not.toContain('nonce');
    // the post hook reads only the log
    expect(
      lineageProblems({ stdout: '', stderr: '' }, dir, { name: 'b.cap.test', names: ['b.cap.test'] }, false)
        .map((p) => p.detail)
        .join(),
    ).not.toContain('nonce');
    fs.rmSync(dir, { recursive: true });
  });

  it('with no sections anywhere, a problem without a name is charged to no lineage of several, only to a lineage renewed alone', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'autossl-renewnone-'));
    const run = { stdout: '', stderr: 'An unexpected error occurred:\nConnection refused by the ACME server\n' };
    expect(lineageProblems(run, dir, { name: 'a.cap.test', names: ['a.cap.test'] }, false)).toEqual([]);
    expect(lineageProblems(run, dir, { name: 'a.cap.test', names: ['a.cap.test'] }, true)).toEqual([{ detail: 'Connection refused by the ACME server' }]);
    fs.rmSync(dir, { recursive: true });
  });
});
