/**
 * Upload checks on PEM as people paste and export it: indented or trailing-space lines, openssl's pkcs12 attribute
 * lines, an `EC PARAMETERS` block before an SEC1 key, CRLF; and what stays refused (a config line, a foreign key).
 */
import crypto from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { checkUpload } from '../../src/issuer/upload.js';
import { makeSignedCertificate } from '../helpers/certs.js';

const DAY = 86_400_000;

describe('upload checks', () => {
  it('takes pasted and exported PEM as it comes', async () => {
    const c = await makeSignedCertificate(['paste.test'], new Date(Date.now() - DAY), new Date(Date.now() + 30 * DAY));
    const sec1 = crypto.createPrivateKey(c.key).export({ type: 'sec1', format: 'pem' }) as string;
    const ecparam = `-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n${sec1}`;
    const indented = c.chain
      .split('\n')
      .map((l) => (l ? `    ${l}  ` : l))
      .join('\r\n');
    const exported = `Bag Attributes\n    localKeyID: 01 02 03\n    friendlyName: paste\nsubject=CN = paste.test\nissuer=CN = autossl test upload CA\n${c.chain}`;
    for (const [certificate, privateKey] of [
      [indented, ecparam],
      [exported, `Key Attributes: <No Attributes>\n${c.key}`],
    ] as const) {
      const checked = checkUpload('paste.test', { certificate, privateKey });
      expect(checked.info.names).toEqual(['paste.test']);
      expect(checked.certificates).toHaveLength(2);
      expect(checked.key).toMatch(/^-----BEGIN (EC )?PRIVATE KEY-----\n/);
    }
  });

  it('still refuses anything else around the blocks, and a key of another certificate', async () => {
    const c = await makeSignedCertificate(['paste.test'], new Date(Date.now() - DAY), new Date(Date.now() + 30 * DAY));
    const other = await makeSignedCertificate(['paste.test'], new Date(Date.now() - DAY), new Date(Date.now() + 30 * DAY));
    expect(() => checkUpload('paste.test', { certificate: `${c.chain}\nserver { listen 80; }`, privateKey: c.key })).toThrow(
      expect.objectContaining({ code: 'UPLOAD_INVALID', message: expect.stringContaining('besides certificates') }),
    );
    expect(() => checkUpload('paste.test', { certificate: c.chain, privateKey: other.key })).toThrow(
      expect.objectContaining({ code: 'UPLOAD_INVALID', message: expect.stringContaining('does not belong') }),
    );
    expect(() => checkUpload('other.test', { certificate: c.chain, privateKey: c.key })).toThrow(
      expect.objectContaining({ code: 'UPLOAD_INVALID', message: expect.stringContaining('does not cover other.test') }),
    );
  });
});
