/**
 * Status classification on generated certificates, each judged by its own lifetime (renewal window: the last
 * third by default), and the scan that feeds it (unchanged files are not parsed again).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/store/sqlite/index.js';
import { scanLineages } from '../../src/renewal/scan.js';
import { classify, statusRows } from '../../src/renewal/status.js';
import { writeLineage } from '../helpers/certs.js';

const CASES: Array<[string, number, number, string]> = [
  ['expired.status.test', 90, -1, 'expired'],
  ['five-of-90.status.test', 90, 5, 'due'],
  ['twenty-of-90.status.test', 90, 20, 'due'],
  // under 10 days of lifetime the window is the last half: a 6-day certificate is due with 3 days left
  ['six-day-3.5-left.status.test', 6, 3.5, 'ok'],
  ['six-day-2.5-left.status.test', 6, 2.5, 'due'],
  ['forty-five-day-20-left.status.test', 45, 20, 'ok'],
  ['fresh.status.test', 90, 80, 'ok'],
  ['six-day-1-left.status.test', 6, 1, 'due'],
];

function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'autossl-status-'));
}

describe('status classification', () => {
  it('classifies generated certificates by their own lifetimes', async () => {
    const dir = tempDir();
    for (const [name, lifetime, left] of CASES) await writeLineage(path.join(dir, 'le'), name, lifetime, left);
    const store = new SqliteStore(path.join(dir, 'state'));
    const rows = statusRows(await scanLineages(path.join(dir, 'le'), store), [], Date.now(), 1 / 3);
    for (const [name, , , state] of CASES) expect(rows.find((r) => r.lineage === name)?.state, name).toBe(state);
    // most urgent first: expired, then due by days left, then ok
    expect(rows.map((r) => r.lineage).slice(0, 5)).toEqual([
      'expired.status.test',
      'six-day-1-left.status.test',
      'six-day-2.5-left.status.test',
      'five-of-90.status.test',
      'twenty-of-90.status.test',
    ]);
    await store.close();
  });

  it('a failed renewal makes a certificate failing until a renewal succeeds', () => {
    const now = Date.now();
    const cert = { notBefore: now - 80 * 86_400_000, notAfter: now + 10 * 86_400_000, lastOutcome: 'failed', consecutiveFailures: 1 };
    expect(classify(cert, now, 1 / 3)).toBe('failing');
    expect(classify({ ...cert, lastOutcome: 'ok', consecutiveFailures: 0 }, now, 1 / 3)).toBe('due');
  });

  it('the window is configurable', () => {
    const now = Date.now();
    const cert = { notBefore: now - 50 * 86_400_000, notAfter: now + 40 * 86_400_000, lastOutcome: null, consecutiveFailures: 0 };
    expect(classify(cert, now, 1 / 3)).toBe('ok');
    expect(classify(cert, now, 0.5)).toBe('due');
  });

  it('does not parse unchanged certificates again, and notices a renewed one', async () => {
    const dir = tempDir();
    const le = path.join(dir, 'le');
    await writeLineage(le, 'a.status.test', 90, 50);
    const store = new SqliteStore(path.join(dir, 'state'));
    const first = (await scanLineages(le, store))[0]!;
    store.db.prepare('UPDATE certificates SET serial = ? WHERE lineage = ?').run('sentinel', 'a.status.test');
    expect((await scanLineages(le, store))[0]!.serial).toBe('sentinel'); // unchanged file: the row is trusted as is
    await writeLineage(le, 'a.status.test', 90, 89); // renewed: new archive file behind the same symlink
    const renewed = (await scanLineages(le, store))[0]!;
    expect(renewed.serial).not.toBe('sentinel');
    expect(renewed.notAfter).toBeGreaterThan(first.notAfter!);
    await store.close();
  });
});

describe('status: what the vhosts point at', () => {
  it('a vhost pointing at a missing or an expired certificate file is reported', async () => {
    const { makeTree } = await import('../helpers/nginx-fixture.js');
    const { makeCertificatePem } = await import('../helpers/certs.js');
    const { NginxTree } = await import('../../src/nginx/tree.js');
    const { sslCertificateLines } = await import('../../src/nginx/locate.js');
    const { vhostCertificateRefs } = await import('../../src/renewal/scan.js');
    const t = await makeTree(
      'server {\n    listen 127.0.0.1:443 ssl;\n    server_name gone.status.test;\n    ssl_certificate {{DIR}}/old/fullchain.pem;\n    ssl_certificate_key {{DIR}}/old/privkey.pem;\n}\n\nserver {\n    listen 127.0.0.1:443 ssl;\n    server_name stale.status.test;\n    ssl_certificate {{DIR}}/stale.pem;\n    ssl_certificate_key {{DIR}}/old/privkey.pem;\n}\n',
    );
    fs.writeFileSync(
      path.join(t.dir, 'stale.pem'),
      await makeCertificatePem(['stale.status.test'], new Date(Date.now() - 100 * 86_400_000), new Date(Date.now() - 10 * 86_400_000)),
    );
    fs.rmSync(path.join(t.dir, 'old', 'fullchain.pem'));
    const refs = vhostCertificateRefs(sslCertificateLines(NginxTree.load(t.main)), path.join(t.dir, 'le'));
    const rows = statusRows([], refs, Date.now(), 1 / 3);
    expect(rows.map((r) => [r.domain, r.state, r.lastError?.code])).toEqual([
      [`${t.site}:11`, 'expired', 'CERT_FILE_EXPIRED'], // the ssl_certificate line
      [`${t.site}:4`, 'missing', 'CERT_FILE_MISSING'],
    ]);
  });
});

describe('a lineage whose certificate cannot be read', () => {
  it('shows as missing with the reason, every time (it is not cached as read)', async () => {
    const dir = tempDir();
    const le = path.join(dir, 'le');
    await writeLineage(le, 'broken.status.test', 90, 60);
    fs.writeFileSync(
      fs.realpathSync(path.join(le, 'live', 'broken.status.test', 'cert.pem')),
      '-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n',
    );
    const store = new SqliteStore(path.join(dir, 'state'));
    for (let i = 0; i < 2; i++) {
      const [row] = statusRows(await scanLineages(le, store), [], Date.now(), 1 / 3);
      expect(row!.state).toBe('missing');
      expect(row!.lastError).toMatchObject({ code: 'CERT_UNREADABLE', message: expect.stringContaining('cannot be read as a certificate') });
    }
    await store.close();
  });
});
