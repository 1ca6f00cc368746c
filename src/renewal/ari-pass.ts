/**
 * The ARI half of a scheduler pass (`autossl renew`, run by the renewal timer) and what status shows of it.
 *
 *   pass:   fetch the windows that are stale (ari.ts), then name the lineages autossl renews now: at once those
 *           whose window is in the past (the CA moved it there: a revocation, an incident), whatever certbot does;
 *           and, with a certbot that does not do ARI itself (< 4.1), those whose window is open and whose picked
 *           moment has come (or comes before the next pass). certbot >= 4.1 renews inside an open window itself,
 *           but after each of its ARI checks it keeps the CA's Retry-After (ari_retry_after in the renewal config,
 *           hours) and asks nothing until then: a window the CA moves into the past meanwhile would wait for it.
 *   status: each row gets its window; an open or past window makes an `ok` row `due`; a window over for more than
 *           an hour with the same certificate still in place is a warning (certbot, or autossl's timer, did not
 *           renew it in time).
 */
import type { EngineCore } from '../engine.js';
import { certbotSettings } from '../issuer/certbot.js';
import { certbotDoesAri, certbotVersion, type CertbotVersion } from '../issuer/certbot-version.js';
import type { AriWindowRecord, CertificateRow, Store } from '../store/store.js';
import { DEFAULT_PASS_INTERVAL_MS, MISSED_GRACE_MS, refreshAriWindows, renewsNow, sameSerial, windowState } from './ari.js';
import type { StatusRow } from './status.js';

export interface AriPassResult {
  windows: Map<string, AriWindowRecord>;
  /** Lineages autossl renews in this pass (certbot renew --cert-name X --force-renewal). */
  renewNow: string[];
  certbot: CertbotVersion | null;
  /** certbot renews inside the windows itself (>= 4.1). */
  certbotDoesAri: boolean;
}

export async function ariPass(
  core: EngineCore,
  store: Store,
  certs: readonly CertificateRow[],
  options: { now?: number; passIntervalMs?: number } = {},
): Promise<AriPassResult> {
  const now = options.now ?? Date.now();
  const { config } = core;
  // another issuer's lineages are renewed by autossl through the issuer seam (issuer-renew.ts), not here
  if (config.issuer !== 'certbot') return { windows: new Map(), renewNow: [], certbot: null, certbotDoesAri: false };
  const settings = certbotSettings(config);
  const version = await certbotVersion({ binary: settings.binary, env: settings.env });
  const windows = await refreshAriWindows(config, store, certs, (id) => core.services.issuer.find(id), now);
  const own = certbotDoesAri(version);
  const nextPassAt = now + (options.passIntervalMs ?? DEFAULT_PASS_INTERVAL_MS);
  const renewNow = [...windows].filter(([, w]) => (own ? windowState(w, now) === 'past' : renewsNow(w, now, nextPassAt))).map(([lineage]) => lineage);
  return { windows, renewNow, certbot: version, certbotDoesAri: own };
}

/** What `status` and the agent show of a lineage's ARI window (ISO times). */
export interface AriStatus {
  state: 'none' | 'future' | 'open' | 'past';
  start: string | null;
  end: string | null;
  /** The moment picked inside the window (autossl renews then when certbot does not do ARI itself). */
  renewAt: string | null;
  explanationUrl: string | null;
  fetchedAt: string;
  nextFetchAt: string;
  /** Why there is no window (the CA has no ARI, its answer failed). */
  error: string | null;
  /** The window is over and the certificate it was for is still the lineage's. */
  warning: string | null;
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

export function ariStatus(w: AriWindowRecord, serial: string | null, now: number): AriStatus {
  const state = windowState(w, now);
  const current = serial !== null && sameSerial(serial, w.serial);
  const missed = current && w.end !== null && now > w.end + MISSED_GRACE_MS;
  return {
    state,
    start: iso(w.start),
    end: iso(w.end),
    renewAt: iso(w.renewAt),
    explanationUrl: w.explanationUrl,
    fetchedAt: new Date(w.fetchedAt).toISOString(),
    nextFetchAt: new Date(w.nextFetchAt).toISOString(),
    error: w.error,
    warning: missed
      ? `the CA's ARI window ended ${iso(w.end)} and certificate ${w.serial} was not renewed: certbot >= 4.1 renews inside the window itself, with an older certbot autossl renew (its timer) does; see autossl renew's output`
      : null,
  };
}

/** Decorates status rows with their lineage's window (only rows of the current certificate it was asked for). */
export function applyAriToRows(rows: StatusRow[], records: ReadonlyArray<AriWindowRecord & { lineage: string }>, now: number): void {
  const byLineage = new Map(records.map((r) => [r.lineage, r]));
  for (const row of rows) {
    const w = row.lineage ? byLineage.get(row.lineage) : undefined;
    if (!w || !row.serial || !sameSerial(row.serial, w.serial)) continue;
    row.ari = ariStatus(w, row.serial, now);
    // the CA says renew now: due, whatever the lifetime fraction says
    if (row.state === 'ok' && (row.ari.state === 'open' || row.ari.state === 'past')) row.state = 'due';
  }
}
