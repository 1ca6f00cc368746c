/**
 * ARI (RFC 9773) below the scheduler: Retry-After honoured within 6 hours..1 day, the window kept per lineage
 * (a renewed certificate asked at once), the random moment inside it, and when a pass renews. A small HTTP CA
 * stands in for pebble here (the e2e test, test/e2e/ari.test.ts, runs pebble 2.10 itself).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import * as x509 from '@peculiar/x509';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AutoSslConfig } from '../../src/config/schema.js';
import { readLineageFiles } from '../../src/issuer/issuer.js';
import { certbotLineage } from '../../src/issuer/certbot.js';
import { readLineage } from '../../src/certbot/lineage.js';
import {
  ARI_MAX_POLL_MS,
  ARI_MIN_POLL_MS,
  parseRenewalInfo,
  pickRenewAt,
  pollDelayMs,
  printable,
  refreshAriWindows,
  renewsNow,
  retryAfterMs,
  windowState,
} from '../../src/renewal/ari.js';
import { scanLineages } from '../../src/renewal/scan.js';
import { applyAriToRows, ariPass, ariStatus } from '../../src/renewal/ari-pass.js';
import { parseCertbotVersion } from '../../src/issuer/certbot-version.js';
import type { EngineCore } from '../../src/engine.js';
import type { StatusRow } from '../../src/renewal/status.js';
import { SqliteStore } from '../../src/store/sqlite/index.js';
import { writeLineage } from '../helpers/certs.js';

x509.cryptoProvider.set(crypto.webcrypto as unknown as Crypto);
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

describe('Retry-After and the polling interval', () => {
  it('reads delay-seconds and HTTP dates; keeps the interval between 6 hours and a day', () => {
    const now = Date.parse('2026-12-03T12:00:00Z');
    expect(retryAfterMs('3600', now)).toBe(HOUR);
    expect(retryAfterMs('Thu, 03 Dec 2026 22:00:00 GMT', now)).toBe(10 * HOUR);
    expect(retryAfterMs('soon', now)).toBeNull();
    expect(retryAfterMs(undefined, now)).toBeNull();
    expect(pollDelayMs(null)).toBe(ARI_MIN_POLL_MS);
    expect(pollDelayMs(60_000)).toBe(6 * HOUR); // never more often than every 6 hours
    expect(pollDelayMs(10 * HOUR)).toBe(10 * HOUR); // the CA's own interval in between
    expect(pollDelayMs(5 * DAY)).toBe(ARI_MAX_POLL_MS); // at least daily
  });
});

describe('the suggested window', () => {
  it('accepts RFC 3339 start < end, refuses the rest', () => {
    expect(
      parseRenewalInfo('{"suggestedWindow":{"start":"2026-12-01T00:00:00Z","end":"2026-12-02T00:00:00Z"},"explanationURL":"https://ca.test/why"}'),
    ).toEqual({ start: Date.parse('2026-12-01T00:00:00Z'), end: Date.parse('2026-12-02T00:00:00Z'), explanationUrl: 'https://ca.test/why' });
    expect(() => parseRenewalInfo('{"suggestedWindow":{"start":"2026-12-02T00:00:00Z","end":"2026-12-01T00:00:00Z"}}')).toThrow(/ends before/);
    expect(() => parseRenewalInfo('{"suggestedWindow":{"start":"x","end":"y"}}')).toThrow(/RFC 3339/);
    expect(() => parseRenewalInfo('<html>')).toThrow(/not JSON/);
    expect(
      parseRenewalInfo('{"suggestedWindow":{"start":"2026-12-01T00:00:00Z","end":"2026-12-02T00:00:00Z"},"explanationURL":"javascript:alert(1)"}')
        .explanationUrl,
    ).toBeNull();
    // status prints what the CA says: no terminal escapes, no bidi overrides, no line breaks
    expect(
      parseRenewalInfo(
        JSON.stringify({ suggestedWindow: { start: '2026-12-01T00:00:00Z', end: '2026-12-02T00:00:00Z' }, explanationURL: 'https://ca.test/\u202egnp.exe' }),
      ).explanationUrl,
    ).toBeNull();
    expect(
      parseRenewalInfo(
        JSON.stringify({ suggestedWindow: { start: '2026-12-01T00:00:00Z', end: '2026-12-02T00:00:00Z' }, explanationURL: 'https://ca.test/x\n\u001b[2J' }),
      ).explanationUrl,
    ).toBeNull();
    expect(printable('HTTP 500: \u001b[31mred\u2066x')).toBe('HTTP 500: ?[31mred?x');
  });

  it('picks a moment inside the window', () => {
    const w = { start: 1000, end: 2000 };
    expect(pickRenewAt(w, () => 0)).toBe(1000);
    expect(pickRenewAt(w, () => 0.999999)).toBe(1999);
    for (let i = 0; i < 100; i++) {
      const at = pickRenewAt(w);
      expect(at >= 1000 && at < 2000).toBe(true);
    }
  });

  it('a pass renews at the picked moment (or when it comes before the next pass), at once for a past window, never before the window', () => {
    const w = { start: 10 * HOUR, end: 58 * HOUR, renewAt: 40 * HOUR };
    expect(renewsNow(w, 5 * HOUR, 17 * HOUR)).toBe(false); // before the window
    expect(renewsNow({ ...w, renewAt: 10 * HOUR }, 9 * HOUR, 21 * HOUR)).toBe(false); // not even when the moment is near
    expect(renewsNow(w, 20 * HOUR, 32 * HOUR)).toBe(false); // open, the moment is after the next pass
    expect(renewsNow(w, 30 * HOUR, 42 * HOUR)).toBe(true); // the moment comes before the next pass
    expect(renewsNow(w, 41 * HOUR, 53 * HOUR)).toBe(true); // the moment is reached
    expect(renewsNow(w, 60 * HOUR, 72 * HOUR)).toBe(true); // the window is over (moved into the past: revoked)
    expect(renewsNow({ start: null, end: null, renewAt: null }, 60 * HOUR, 72 * HOUR)).toBe(false);
    expect(windowState(w, 5 * HOUR)).toBe('future');
    expect(windowState(w, 20 * HOUR)).toBe('open');
    expect(windowState(w, 60 * HOUR)).toBe('past');
    expect(windowState(null, 0)).toBe('none');
  });
});

/** A certificate with an Authority Key Identifier (what ARI ids are made of), written over a lineage's cert.pem. */
async function certWithAki(name: string, notBefore: Date, notAfter: Date): Promise<string> {
  const keys = (await crypto.webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: `01${crypto.randomBytes(8).toString('hex')}`,
    name: `CN=${name}`,
    notBefore,
    notAfter,
    keys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: name }]), new x509.AuthorityKeyIdentifierExtension('6988'.padEnd(40, 'a'))],
  });
  return cert.toString('pem') + '\n';
}

describe('the window per lineage, from the CA', () => {
  let server: http.Server;
  let base = '';
  const asked: string[] = [];
  let retryAfter: string | undefined = '60';
  let window = { start: '2027-01-20T00:00:00Z', end: '2027-01-22T00:00:00Z' };
  let dir = '';
  let config: AutoSslConfig;
  let store: SqliteStore;
  // the certbot issuer's Lineage value (what core.services.issuer.find answers)
  const find = async (id: string) => {
    const files = readLineage(config.certbot.configDir, id);
    return files ? certbotLineage(files) : null;
  };

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      if (req.url === '/dir') return res.end(JSON.stringify({ newNonce: `${base}/nonce`, renewalInfo: `${base}/renewal-info/` }));
      if (req.url?.startsWith('/renewal-info/')) {
        asked.push(req.url.slice('/renewal-info/'.length));
        if (retryAfter !== undefined) res.setHeader('retry-after', retryAfter);
        return res.end(JSON.stringify({ suggestedWindow: window }));
      }
      res.statusCode = 404;
      res.end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'autossl-ari-'));
    const le = path.join(dir, 'le');
    await writeLineage(le, 'a.ari.test', 90, 80);
    await writeLineage(le, 'no-aki.ari.test', 90, 80);
    const notBefore = new Date(Date.now() - 10 * DAY);
    fs.writeFileSync(
      fs.realpathSync(path.join(le, 'live', 'a.ari.test', 'cert.pem')),
      await certWithAki('a.ari.test', notBefore, new Date(notBefore.getTime() + 90 * DAY)),
    );
    // certbot keeps the lineage's CA in its renewal config: that directory is asked, not the configured one
    fs.appendFileSync(path.join(le, 'renewal', 'a.ari.test.conf'), `server = ${base}/dir\n`);
    config = { certbot: { configDir: le, env: {}, server: 'https://wrong.ca.test/dir' }, preflight: { timeoutMs: 2000 } } as unknown as AutoSslConfig;
    store = new SqliteStore(path.join(dir, 'state'));
  });

  afterAll(async () => {
    server?.close();
    await store?.close();
  });

  it('asks once per certificate, again after Retry-After kept within 6 h..1 day, and at once for a renewed certificate', async () => {
    const certs = await scanLineages(config.certbot.configDir, store);
    const id = readLineageFiles({
      id: 'a',
      certPath: path.join(config.certbot.configDir, 'live', 'a.ari.test', 'cert.pem'),
      chainPath: '',
      fullchainPath: '',
      keyPath: '',
    }).ariCertId!;
    const t0 = Date.now();
    const first = await refreshAriWindows(config, store, certs, find, t0, () => 0.5);
    expect(asked).toEqual([id]); // the certificate without AKI has no ARI id: never asked
    expect(first.get('a.ari.test')).toMatchObject({
      certId: id,
      start: Date.parse(window.start),
      end: Date.parse(window.end),
      renewAt: Date.parse('2027-01-21T00:00:00Z'),
      nextFetchAt: t0 + 6 * HOUR,
      error: null,
    });
    expect(first.has('no-aki.ari.test')).toBe(false);
    expect(await store.ariWindows.get('a.ari.test')).toEqual(first.get('a.ari.test'));

    // Retry-After: 60 s is raised to 6 hours: passes before that ask nothing
    await refreshAriWindows(config, store, certs, find, t0 + HOUR);
    await refreshAriWindows(config, store, certs, find, t0 + 6 * HOUR - 1);
    expect(asked).toHaveLength(1);
    // the CA's own longer interval (10 h) is kept; the same window keeps its picked moment
    retryAfter = '36000';
    const second = await refreshAriWindows(config, store, certs, find, t0 + 6 * HOUR, () => 0.9);
    expect(asked).toHaveLength(2);
    expect(second.get('a.ari.test')).toMatchObject({ nextFetchAt: t0 + 16 * HOUR, renewAt: Date.parse('2027-01-21T00:00:00Z') });
    await refreshAriWindows(config, store, certs, find, t0 + 16 * HOUR - 1);
    expect(asked).toHaveLength(2);
    // a Retry-After of 5 days is lowered to a day; a moved window gets a new moment
    retryAfter = String(5 * 86_400);
    window = { start: '2026-11-01T00:00:00Z', end: '2026-11-01T01:00:00Z' };
    const third = await refreshAriWindows(config, store, certs, find, t0 + 16 * HOUR, () => 0);
    expect(asked).toHaveLength(3);
    expect(third.get('a.ari.test')).toMatchObject({
      start: Date.parse('2026-11-01T00:00:00Z'),
      renewAt: Date.parse('2026-11-01T00:00:00Z'),
      nextFetchAt: t0 + 40 * HOUR,
    });
    // no Retry-After at all: 6 hours
    retryAfter = undefined;
    await refreshAriWindows(config, store, certs, find, t0 + 40 * HOUR);
    expect((await store.ariWindows.get('a.ari.test'))!.nextFetchAt).toBe(t0 + 46 * HOUR);
    expect(asked).toHaveLength(4);

    // a renewed certificate (another serial) is asked at once, whatever the interval
    const cert = fs.realpathSync(path.join(config.certbot.configDir, 'live', 'a.ari.test', 'cert.pem'));
    fs.writeFileSync(cert, await certWithAki('a.ari.test', new Date(), new Date(Date.now() + 90 * DAY)));
    const renewed = await scanLineages(config.certbot.configDir, store);
    await refreshAriWindows(config, store, renewed, find, t0 + 41 * HOUR);
    expect(asked).toHaveLength(5);
    expect(asked[4]).not.toBe(id);
  });

  it('a past window: renewed at once by autossl whatever the certbot (>= 4.1 waits out its Retry-After); an open one left to certbot >= 4.1; status warns once it is over with the certificate in place', async () => {
    const certs = await scanLineages(config.certbot.configDir, store);
    await store.ariWindows.delete('a.ari.test');
    window = { start: new Date(Date.now() - 2 * HOUR).toISOString(), end: new Date(Date.now() - 90 * 60_000).toISOString() };
    const fakeCertbot = (version: string) => {
      const bin = path.join(dir, `certbot-${version}`);
      fs.writeFileSync(bin, `#!/bin/sh\necho "certbot ${version}"\n`, { mode: 0o755 });
      return {
        services: { issuer: { find } },
        config: {
          ...config,
          issuer: 'certbot',
          stateDir: dir,
          certbot: { ...config.certbot, binary: bin, workDir: dir, logsDir: dir, keyType: 'ecdsa', extraArgs: [], timeoutMs: 10_000 },
        },
      } as unknown as EngineCore;
    };
    expect(parseCertbotVersion('certbot 2.1.0')).toMatchObject({ major: 2, minor: 1 });
    const old = await ariPass(fakeCertbot('2.1.0'), store, certs);
    expect(old).toMatchObject({ certbotDoesAri: false, renewNow: ['a.ari.test'] });
    // certbot >= 4.1 asks ARI itself, but only after the Retry-After it kept from its last ask (hours)
    const own = await ariPass(fakeCertbot('4.1.0'), store, certs);
    expect(own).toMatchObject({ certbotDoesAri: true, renewNow: ['a.ari.test'] });
    expect((await ariPass(fakeCertbot('5.0.0'), store, certs)).renewNow).toEqual(['a.ari.test']);
    // an open window (its picked moment come): certbot >= 4.1 renews inside it itself, autossl does not
    await store.ariWindows.delete('a.ari.test');
    window = { start: new Date(Date.now() - 2 * HOUR).toISOString(), end: new Date(Date.now() + HOUR).toISOString() };
    expect((await ariPass(fakeCertbot('2.1.0'), store, certs)).renewNow).toEqual(['a.ari.test']);
    expect((await ariPass(fakeCertbot('5.0.0'), store, certs)).renewNow).toEqual([]);
    await store.ariWindows.delete('a.ari.test');
    window = { start: new Date(Date.now() - 2 * HOUR).toISOString(), end: new Date(Date.now() - 90 * 60_000).toISOString() };
    await ariPass(fakeCertbot('2.1.0'), store, certs);

    // status: an ok certificate whose window is over is due, with a warning naming the window's end
    const w = (await store.ariWindows.get('a.ari.test'))!;
    const row = { lineage: 'a.ari.test', serial: w.serial, state: 'ok' } as unknown as StatusRow;
    applyAriToRows([row], [{ lineage: 'a.ari.test', ...w }], Date.now());
    expect(row.state).toBe('due');
    expect(row.ari).toMatchObject({ state: 'past', warning: expect.stringContaining('was not renewed') });
    // a renewed certificate (another serial) is not judged by the old one's window
    const renewedRow = { lineage: 'a.ari.test', serial: 'ABCDEF', state: 'ok' } as unknown as StatusRow;
    applyAriToRows([renewedRow], [{ lineage: 'a.ari.test', ...w }], Date.now());
    expect(renewedRow).toMatchObject({ state: 'ok' });
    expect(renewedRow.ari).toBeUndefined();
    // an open window that has not ended: due, no warning
    expect(ariStatus({ ...w, end: Date.now() + HOUR }, w.serial, Date.now())).toMatchObject({ state: 'open', warning: null });
  });

  it('a CA without renewalInfo, or an answer that is not a window, is kept as an error (asked again later), never a window', async () => {
    const certs = await scanLineages(config.certbot.configDir, store);
    await store.ariWindows.delete('a.ari.test');
    window = { start: '2027-01-22T00:00:00Z', end: '2027-01-20T00:00:00Z' };
    const bad = (await refreshAriWindows(config, store, certs, find, Date.now())).get('a.ari.test')!;
    expect(bad).toMatchObject({ start: null, end: null, renewAt: null, error: expect.stringMatching(/ends before/) });
    expect(renewsNow(bad, Date.now(), Date.now() + 12 * HOUR)).toBe(false);
  });
});
