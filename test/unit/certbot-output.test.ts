/** Pulling the ACME error out of certbot 2.1's output, or out of its log when it printed only a traceback. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { lineageFromOutput, parseCertbotProblems, problemsFromLog } from '../../src/certbot/certbot.js';
import { parseRenewSummary } from '../../src/renewal/renewal.js';

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
    fs.writeFileSync(path.join(dir, 'letsencrypt.log'), `2026-11-26 10:00:00,000:DEBUG:certbot._internal.main:Root logging level set at 30
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
`);
    expect(parseCertbotProblems('An unexpected error occurred:\nAttributeError: can\'t set attribute')).toEqual([]);
    expect(problemsFromLog(dir)).toEqual([{ type: 'accountDoesNotExist', detail: 'unable to find existing account for "key"' }]);
  });

  it('takes the lineage certbot reports, and refuses one outside its live dir', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'autossl-lineage-'));
    fs.mkdirSync(path.join(dir, 'renewal'));
    fs.writeFileSync(path.join(dir, 'renewal', 'example.test-0001.conf'), ['cert', 'chain', 'fullchain', 'privkey'].map((k) => `${k} = ${dir}/live/example.test-0001/${k}.pem`).join('\n'));
    const lineage = lineageFromOutput(dir, `Successfully received certificate.\nCertificate is saved at: ${dir}/live/example.test-0001/fullchain.pem\n`, 'example.test');
    expect(lineage.name).toBe('example.test-0001');
    expect(() => lineageFromOutput(dir, 'Certificate is saved at: /etc/passwd\n', 'example.test')).toThrow(expect.objectContaining({ code: 'CERTBOT_LINEAGE_UNKNOWN' }));
  });

  it('reads certbot renew\'s summary per lineage', () => {
    const summary = parseRenewSummary(`The following certificates are not due for renewal yet:
  /etc/letsencrypt/live/c.test/fullchain.pem expires on 2027-02-01 (skipped)
The following renewals succeeded:
  /etc/letsencrypt/live/a.test/fullchain.pem (success)
The following renewals failed:
  /etc/letsencrypt/live/b.test/fullchain.pem (failure)
`);
    expect(Object.fromEntries(summary)).toEqual({ 'a.test': 'success', 'b.test': 'failure', 'c.test': 'skipped' });
  });
});
