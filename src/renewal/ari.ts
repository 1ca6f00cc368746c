/**
 * ACME Renewal Information (RFC 9773): the CA says when each certificate should be renewed. Let's Encrypt moves a
 * window into the past to have a certificate replaced at once (a revocation, an incident), and renewals inside the
 * window are exempt from its rate limits.
 *
 * What autossl does with it, once per scheduler pass (`autossl renew`, which the renewal timer runs):
 *   - reads `renewalInfo` from the directory of the CA that issued the lineage (its renewal config's `server`);
 *   - asks GET <renewalInfo>/<certificate id> for each lineage whose answer is stale, honouring Retry-After but
 *     never more often than every 6 hours nor less often than daily (a renewed certificate is asked at once);
 *   - keeps the window in the store (status and the agent show it) with one random moment inside it;
 *   - with a certbot that does ARI itself (>= 4.1) leaves the renewal to it and only checks that it happened by the
 *     window's end; with an older certbot, renews the lineage (certbot renew --cert-name X --force-renewal) when the
 *     picked moment is reached or falls before the next pass, and at once when the window is in the past.
 */
import fs from 'node:fs';
import { acmeGet } from '../acme-get.js';
import type { AutoSslConfig } from '../config/schema.js';
import type { Lineage } from '../issuer/issuer.js';
import type { AriWindowRecord, CertificateRow, Store } from '../store/store.js';

const HOUR = 3_600_000;
/** Never asked more often than this (a Retry-After below it is raised to it). */
export const ARI_MIN_POLL_MS = 6 * HOUR;
/** Asked at least this often (a Retry-After above it is lowered to it). */
export const ARI_MAX_POLL_MS = 24 * HOUR;
/** The timer runs `autossl renew` twice a day: a moment before the next pass is renewed in this one. */
export const DEFAULT_PASS_INTERVAL_MS = 12 * HOUR;
/** certbot's default server. */
export const LETS_ENCRYPT_DIRECTORY = 'https://acme-v02.api.letsencrypt.org/directory';
/** certbot >= 4.1 is left this long past the window's end before status says it did not renew. */
export const MISSED_GRACE_MS = HOUR;

export interface SuggestedWindow {
  start: number;
  end: number;
  explanationUrl: string | null;
}

/** What a CA's text may not bring into a terminal (status prints it): control characters and bidi overrides. */
// eslint-disable-next-line no-control-regex
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
export const printable = (text: string): string => text.replace(UNSAFE, '?');

/** Retry-After (RFC 9110: delay-seconds or an HTTP date) in ms from now; null when absent or unreadable. */
export function retryAfterMs(header: string | undefined, now = Date.now()): number | null {
  if (header === undefined) return null;
  const text = header.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  return Number.isFinite(at) && /[a-z]/i.test(text) ? Math.max(0, at - now) : null;
}

/** When to ask again: the server's Retry-After, kept between 6 hours and a day; 6 hours without one. */
export function pollDelayMs(retryAfter: number | null): number {
  if (retryAfter === null) return ARI_MIN_POLL_MS;
  return Math.min(ARI_MAX_POLL_MS, Math.max(ARI_MIN_POLL_MS, retryAfter));
}

/** A renewalInfo answer's window; throws (with the reason) on anything RFC 9773 calls invalid. */
export function parseRenewalInfo(body: string): SuggestedWindow {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    throw new Error('the renewalInfo answer is not JSON');
  }
  const w = (json as { suggestedWindow?: { start?: unknown; end?: unknown } } | null)?.suggestedWindow;
  const start = typeof w?.start === 'string' ? Date.parse(w.start) : NaN;
  const end = typeof w?.end === 'string' ? Date.parse(w.end) : NaN;
  if (!Number.isFinite(start) || !Number.isFinite(end)) throw new Error('the renewalInfo answer has no suggestedWindow with RFC 3339 start and end');
  // "a window whose end is not after its start is invalid" (RFC 9773 section 4.2)
  if (end <= start) throw new Error('the renewalInfo window ends before it starts');
  const explanation = (json as { explanationURL?: unknown }).explanationURL;
  return {
    start,
    end,
    explanationUrl:
      typeof explanation === 'string' && /^https?:\/\/\S+$/.test(explanation) && printable(explanation) === explanation ? explanation.slice(0, 2000) : null,
  };
}

/** A uniformly random moment inside the window (RFC 9773 section 4.2: spreads the CA's load). */
export function pickRenewAt(window: Pick<SuggestedWindow, 'start' | 'end'>, random = Math.random): number {
  return window.start + Math.floor(random() * (window.end - window.start));
}

/**
 * Whether autossl renews this lineage in the pass running at `now` (the next one at `nextPassAt`): not before the
 * window opens; at once when it is over (a window moved into the past); else when the picked moment is reached or
 * comes before the next pass (RFC 9773 section 4.2, step 4).
 */
export function renewsNow(w: Pick<AriWindowRecord, 'start' | 'end' | 'renewAt'>, now: number, nextPassAt: number): boolean {
  if (w.start === null || w.end === null || now < w.start) return false;
  return now >= w.end || (w.renewAt ?? w.start) <= nextPassAt;
}

/** The window's state for status: none yet, ahead, open, or over without the certificate it was for replaced. */
export function windowState(w: Pick<AriWindowRecord, 'start' | 'end'> | null, now: number): 'none' | 'future' | 'open' | 'past' {
  if (!w || w.start === null || w.end === null) return 'none';
  return now < w.start ? 'future' : now < w.end ? 'open' : 'past';
}

/** Directories read in this process (thousands of lineages share one CA). */
const directories = new Map<string, Promise<string | null>>();

/** The CA's renewalInfo URL from its directory; null when it has none (pebble < 2.5, a CA without ARI). */
export function renewalInfoUrl(directoryUrl: string, ca: Buffer | undefined, timeoutMs: number): Promise<string | null> {
  let pending = directories.get(directoryUrl);
  if (!pending) {
    pending = acmeGet(directoryUrl, ca, timeoutMs).then((a) => {
      if (a.status !== 200) throw new Error(`the ACME directory ${directoryUrl} answered HTTP ${a.status}`);
      const url = (JSON.parse(a.body) as { renewalInfo?: unknown }).renewalInfo;
      return typeof url === 'string' && /^https?:\/\//.test(url) ? url.replace(/\/+$/, '') : null;
    });
    directories.set(directoryUrl, pending);
    // a failed read is asked again by the next lineage's pass, a good one kept for the process (or an hour)
    pending.catch(() => directories.delete(directoryUrl));
    setTimeout(() => directories.delete(directoryUrl), HOUR).unref();
  }
  return pending;
}

/** The directory a certbot lineage was issued from (its renewal config's `server`), else the configured one. */
export function lineageServer(config: Readonly<AutoSslConfig>, renewalConf: string): string {
  try {
    const text = fs.readFileSync(renewalConf, 'utf8').slice(0, 64 * 1024);
    const server = /^server\s*=\s*(https?:\/\/\S+?)\s*$/m.exec(text)?.[1];
    if (server) return server;
  } catch {
    // no renewal config: the configured server
  }
  return config.certbot.server ?? LETS_ENCRYPT_DIRECTORY;
}

/** Asks the CA for one certificate's window; the record to keep (with the error when there is no window). */
export async function askWindow(
  server: string,
  certId: string,
  serial: string,
  options: { ca?: Buffer; timeoutMs: number; now?: number; random?: () => number },
): Promise<AriWindowRecord> {
  const now = options.now ?? Date.now();
  const record: AriWindowRecord = {
    certId,
    serial,
    start: null,
    end: null,
    explanationUrl: null,
    renewAt: null,
    fetchedAt: now,
    nextFetchAt: now + ARI_MIN_POLL_MS,
    error: null,
  };
  try {
    const base = await renewalInfoUrl(server, options.ca, options.timeoutMs);
    if (!base) return { ...record, nextFetchAt: now + ARI_MAX_POLL_MS, error: `the CA's directory ${server} has no renewalInfo (no ARI)` };
    const answer = await acmeGet(`${base}/${certId}`, options.ca, options.timeoutMs);
    record.nextFetchAt = now + pollDelayMs(retryAfterMs(answer.retryAfter, now));
    if (answer.status !== 200)
      return {
        ...record,
        error: `renewalInfo answered HTTP ${answer.status}${answer.body ? `: ${printable(answer.body.replace(/\s+/g, ' ')).slice(0, 200)}` : ''}`,
      };
    const w = parseRenewalInfo(answer.body);
    return { ...record, start: w.start, end: w.end, explanationUrl: w.explanationUrl, renewAt: pickRenewAt(w, options.random) };
  } catch (error) {
    return { ...record, error: printable((error as Error).message || String(error)).slice(0, 500) };
  }
}

/** The same serial, however it was written (case, leading zero bytes of an older row). */
export function sameSerial(a: string, b: string): boolean {
  const norm = (x: string) =>
    x
      .replace(/[^0-9a-fA-F]/g, '')
      .replace(/^0+/, '')
      .toUpperCase();
  return norm(a) === norm(b);
}

/**
 * The fetch half of a scheduler pass: every certbot lineage in date gets a fresh window when its stored one is
 * stale (asked again after nextFetchAt) or was for another certificate (renewed since). Windows of lineages that
 * are gone are dropped. Returns every lineage's current record.
 */
export async function refreshAriWindows(
  config: Readonly<AutoSslConfig>,
  store: Store,
  certs: readonly CertificateRow[],
  find: (lineage: string) => Promise<Lineage | null>,
  now = Date.now(),
  random = Math.random,
): Promise<Map<string, AriWindowRecord>> {
  const out = new Map<string, AriWindowRecord>();
  const bundle = config.certbot.env.REQUESTS_CA_BUNDLE;
  let ca: Buffer | undefined;
  try {
    ca = bundle ? fs.readFileSync(bundle) : undefined;
  } catch {
    ca = undefined;
  }
  const stored = new Map((await store.ariWindows.list()).map((r) => [r.lineage, r]));
  const live = certs.filter((c) => c.serial !== null && c.notAfter !== null && now < c.notAfter);
  for (const gone of stored.keys()) if (!certs.some((c) => c.lineage === gone)) await store.ariWindows.delete(gone);
  const stale = live.filter((c) => {
    const s = stored.get(c.lineage);
    if (s && sameSerial(s.serial, c.serial!) && now < s.nextFetchAt) {
      out.set(c.lineage, s);
      return false;
    }
    return true;
  });
  // a few at a time: the CA sees a pass of thousands as a trickle, and one slow answer does not hold the rest
  for (let i = 0; i < stale.length; i += 8) {
    await Promise.all(
      stale.slice(i, i + 8).map(async (c) => {
        // the issuer's Lineage value carries the ARI id; none without an Authority Key Identifier: no ARI for it
        const lineage = await find(c.lineage).catch(() => null);
        if (!lineage?.ariCertId) return;
        const record = await askWindow(
          lineage.renewalConf ? lineageServer(config, lineage.renewalConf) : (config.certbot.server ?? LETS_ENCRYPT_DIRECTORY),
          lineage.ariCertId,
          lineage.serial,
          { ca, timeoutMs: config.preflight.timeoutMs, now, random },
        );
        // the same window as before keeps its picked moment (a pass every 6 hours must not re-roll it each time)
        const before = stored.get(c.lineage);
        if (before && before.certId === record.certId && before.start === record.start && before.end === record.end && record.start !== null)
          record.renewAt = before.renewAt;
        out.set(c.lineage, record);
        await store.ariWindows.set(c.lineage, record);
      }),
    );
  }
  return out;
}
