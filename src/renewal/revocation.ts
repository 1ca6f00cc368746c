/**
 * Whether the CA revoked a lineage's certificate. A revoked certificate still parses, is in date and is served, so
 * nothing else in autossl notices: `status` shows it `revoked`, `issue` does not reuse it, `renew` renews it.
 * Where the answer comes from:
 *   - `certbot.revocationStatusUrl` when set (a URL with `{serial}`, hex): a CA's own status API. Pebble has one on
 *     its management port (`/cert-status-by-serial/<serial>`, JSON with "Status": "Revoked"); the sandbox sets it.
 *   - otherwise the CRL at the certificate's CRL distribution point (what Let's Encrypt publishes), its signature
 *     checked against the lineage's chain.pem.
 * An answer that cannot be had (no URL, no CRL point, network down) is "unknown": never taken for revoked.
 * Answers are kept in the state store: "revoked" for good (per serial), "good" for `GOOD_FOR_MS`.
 */
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { X509Certificate, X509Crl } from '@peculiar/x509';
import type { AutoSslConfig } from '../config/schema.js';
import { normalizeSerial, x509 } from '../issuer/certificate.js';
import { firstPemCertificate } from '../issuer/der.js';
import type { LineageFiles as Lineage } from '../issuer/issuer.js';
import type { RevocationRecord, Store } from '../store/store.js';

export type Revocation = 'revoked' | 'good' | 'unknown';

/** What checkRevocation finds out: also that a certificate has nothing to ask (no URL configured, no CRL point). */
type Answer = Revocation | 'none';

/** How long a "good" answer is believed (a CRL is published about daily; status runs often). */
export const GOOD_FOR_MS = 3 * 3_600_000;

function get(url: string, ca: Buffer | undefined, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const client = url.startsWith('https:') ? https : http;
    const req = client.get(url, { timeout: timeoutMs, ...(ca && url.startsWith('https:') ? { ca } : {}) }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > 64 * 1024 * 1024) req.destroy(new Error('answer too large'));
        else chunks.push(c);
      });
      res.on('end', () => (res.statusCode && res.statusCode < 400 ? resolve(Buffer.concat(chunks)) : reject(new Error(`HTTP ${res.statusCode}`))));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

/** CRLs fetched in this process, per URL (thousands of lineages share a few CRLs). */
const crls = new Map<string, Promise<X509Crl | null>>();

async function crlAt(url: string, issuer: X509Certificate | null, timeoutMs: number): Promise<X509Crl | null> {
  let pending = crls.get(url);
  if (!pending) {
    pending = (async () => {
      const body = await get(url, undefined, timeoutMs);
      const crl = new (x509().X509Crl)(body.toString('latin1').includes('-----BEGIN') ? body.toString('latin1') : new Uint8Array(body));
      // a CRL that its issuer did not sign says nothing
      if (issuer && !(await crl.verify({ publicKey: issuer.publicKey }))) return null;
      return crl;
    })().catch(() => null);
    crls.set(url, pending);
    setTimeout(() => crls.delete(url), GOOD_FOR_MS).unref();
  }
  return pending;
}

/** The DER of the cRLDistributionPoints extension's id (2.5.29.31): an OBJECT IDENTIFIER of 3 bytes. */
const CRL_POINTS_OID = Buffer.from([0x06, 0x03, 0x55, 0x1d, 0x1f]);

/** Asks the CA (uncached); 'none' when there is no one to ask. */
export async function checkRevocation(config: Readonly<AutoSslConfig>, lineage: Pick<Lineage, 'cert' | 'chain'>): Promise<Answer> {
  const timeoutMs = config.preflight.timeoutMs;
  try {
    const pem = fs.readFileSync(lineage.cert, 'latin1');
    // no CRL point: nothing to ask, known without parsing the certificate (status of 10,000 lineages opens a
    // read-only store, where this answer cannot be kept: a full parse each was 13 s of its 17)
    const der = config.certbot.revocationStatusUrl ? null : firstPemCertificate(pem);
    if (der && !der.includes(CRL_POINTS_OID)) return 'none';
    const cert = new (x509().X509Certificate)(pem);
    const serial = normalizeSerial(cert.serialNumber);
    if (config.certbot.revocationStatusUrl) {
      const bundle = config.certbot.env.REQUESTS_CA_BUNDLE;
      const body = await get(config.certbot.revocationStatusUrl.replace('{serial}', serial), bundle ? fs.readFileSync(bundle) : undefined, timeoutMs);
      const status = String((JSON.parse(body.toString('utf8')) as { Status?: unknown; status?: unknown }).Status ?? '');
      return /^revoked$/i.test(status) ? 'revoked' : /^(valid|good)$/i.test(status) ? 'good' : 'unknown';
    }
    const points = cert.getExtension(x509().CRLDistributionPointsExtension);
    const urls = (points?.distributionPoints ?? [])
      .flatMap((p) => (p.distributionPoint?.fullName ?? []).map((n) => n.uniformResourceIdentifier))
      .filter((u): u is string => typeof u === 'string' && /^https?:\/\//.test(u));
    if (!urls.length) return 'none';
    let issuer: X509Certificate | null = null;
    try {
      issuer = new (x509().X509Certificate)(fs.readFileSync(lineage.chain, 'latin1'));
    } catch {
      issuer = null;
    }
    for (const url of urls) {
      const crl = await crlAt(url, issuer, timeoutMs);
      if (!crl) continue;
      return crl.entries.some((e) => normalizeSerial(e.serialNumber) === serial) ? 'revoked' : 'good';
    }
    return 'unknown';
  } catch {
    return 'unknown';
  }
}

/**
 * The revocation state of a lineage's current certificate, from the store when known (a revoked serial stays
 * revoked; "good" is asked again after GOOD_FOR_MS), else from the CA. `fresh` asks the CA unless it is known revoked.
 */
export async function revocationOf(
  config: Readonly<AutoSslConfig>,
  store: Store,
  lineage: Pick<Lineage, 'name' | 'cert' | 'chain'>,
  serial: string,
  options: { fresh?: boolean } = {},
): Promise<Revocation> {
  let known: RevocationRecord | null;
  try {
    known = await store.certificates.revocation(lineage.name);
  } catch {
    known = null;
  }
  const source = config.certbot.revocationStatusUrl ?? 'crl';
  if (known && known.serial === serial) {
    if (known.state === 'revoked') return 'revoked';
    if (known.state === 'good' && !options.fresh && Date.now() - known.at < GOOD_FOR_MS) return 'good';
    // a certificate's extensions never change: one without a CRL point is not parsed again (status of thousands)
    if (known.state === 'none' && (known.source ?? 'crl') === source) return 'unknown';
  }
  const answer = await checkRevocation(config, lineage);
  const state: Revocation = answer === 'none' ? 'unknown' : answer;
  if (answer !== 'unknown') {
    try {
      await store.certificates.setRevocation(lineage.name, { serial, state: answer, at: Date.now(), source });
    } catch {
      // a read-only store (status of another user): the answer is still right for this run
    }
  }
  return state;
}
