/**
 * Never a paused hostname. Let's Encrypt pauses an (account, hostname) pair after a long run of consecutive failed
 * authorizations, and only its self-service portal lifts the pause. autossl counts consecutive failed
 * authorizations per name and account (its own orders, and what certbot's renewals report), and from
 * `preflight.backoffAfter` failures on places no order for the name before an exponentially growing delay: 1 hour,
 * 2, 4, ... up to `preflight.backoffMaxHours` (a week by default), far below the CA's pause. A success clears it.
 *
 * The CA's pause itself is recognised in its error ("Your account is temporarily prevented from requesting
 * certificates for NAMES and possibly others. Please visit: URL", Boulder's wfe): the names are recorded with the
 * unpause URL, shown by `status` and in the notification, and asked again once a day at most (waiting lifts nothing).
 */
import os from 'node:os';
import type { AutoSslConfig } from '../config/schema.js';
import type { Notification } from '../pipeline/context.js';
import type { BackoffRecord, Store } from '../store/store.js';

const HOUR = 3_600_000;
/** A paused name: nothing lifts it but the portal; asked again once a day (a refused order costs no authorization). */
export const PAUSED_RETRY_MS = 24 * HOUR;

/** The account a back-off is kept for: one certbot account per CA directory. */
export function backoffAccount(config: Readonly<AutoSslConfig>): string {
  return config.certbot.server ?? 'letsencrypt';
}

/** How long no order is placed after `failures` consecutive failures: 0 below the threshold, then 1 h doubling. */
export function backoffDelayMs(failures: number, options: { after: number; maxHours: number }): number {
  if (failures < options.after) return 0;
  const hours = 2 ** Math.min(failures - options.after, 30);
  return Math.min(hours, options.maxHours) * HOUR;
}

export interface PausedError {
  /** The names the CA says it paused (lower-case). */
  names: string[];
  /** The CA's page that lifts the pause. */
  url: string;
}

/**
 * The CA's "paused" refusal in any text (certbot's output, an ACME problem's detail), whatever the problem type
 * (Let's Encrypt sends it as urn:ietf:params:acme:error:rateLimited); null for anything else.
 */
export function parsePaused(text: string): PausedError | null {
  const m = /temporarily prevented from requesting certificates for ([^\n]*?) and possibly others\.?\s*Please visit:?\s*(https:\/\/[^\s"'<>]+)/i.exec(text);
  if (!m) return null;
  const url = m[2]!.replace(/[.,;)]+$/, '');
  const names = m[1]!
    .split(/,\s*/)
    .map((n) => n.trim().toLowerCase())
    .filter((n) => /^[a-z0-9*._-]+$/.test(n));
  return { names, url };
}

export interface BackoffChange {
  name: string;
  record: BackoffRecord;
  /** This failure started (or prolonged into) a back-off: the admin is told once per back-off step. */
  backingOff: boolean;
}

/** One more failed authorization of `name` (or the CA's pause of it): the record as kept. */
export async function recordFailure(
  config: Readonly<AutoSslConfig>,
  store: Store,
  name: string,
  error: string,
  options: { unpauseUrl?: string; now?: number } = {},
): Promise<BackoffChange> {
  const now = options.now ?? Date.now();
  const account = backoffAccount(config);
  const before = await store.backoff.get(account, name);
  const failures = (before?.failures ?? 0) + (options.unpauseUrl ? 0 : 1);
  const delay = options.unpauseUrl
    ? PAUSED_RETRY_MS
    : backoffDelayMs(failures, { after: config.preflight.backoffAfter, maxHours: config.preflight.backoffMaxHours });
  const record: BackoffRecord = {
    failures: Math.max(failures, before?.failures ?? 0),
    lastError: error.slice(0, 2000),
    lastAt: now,
    until: delay ? now + delay : null,
    unpauseUrl: options.unpauseUrl ?? before?.unpauseUrl ?? null,
  };
  await store.backoff.set(account, name, record);
  return { name, record, backingOff: delay > 0 };
}

/** A validated name (a certificate was issued or renewed for it): its count starts again. */
export async function recordSuccess(config: Readonly<AutoSslConfig>, store: Store, names: readonly string[]): Promise<void> {
  const account = backoffAccount(config);
  for (const name of names) if (await store.backoff.get(account, name)) await store.backoff.clear(account, name);
}

/** The back-off in force for `name` now, if any. */
export async function activeBackoff(config: Readonly<AutoSslConfig>, store: Store, name: string, now = Date.now()): Promise<BackoffRecord | null> {
  const r = await store.backoff.get(backoffAccount(config), name);
  return r && r.until !== null && r.until > now ? r : null;
}

/** Every name backing off now (status), by name. */
export async function activeBackoffs(config: Readonly<AutoSslConfig>, store: Store, now = Date.now()): Promise<Map<string, BackoffRecord>> {
  const account = backoffAccount(config);
  const out = new Map<string, BackoffRecord>();
  for (const r of await store.backoff.list()) if (r.account === account && r.until !== null && r.until > now) out.set(r.name, r);
  return out;
}

/** What the admin reads about a back-off: how many failures, until when, the last error, the unpause URL. */
export function describeBackoff(name: string, r: BackoffRecord): string {
  const until = r.until ? new Date(r.until).toISOString() : 'now';
  if (r.unpauseUrl)
    return `${name}: the CA paused this account for the name; lift it at ${r.unpauseUrl} (asked again after ${until}). Last error: ${r.lastError}`;
  return `${name}: ${r.failures} failed authorizations in a row; no order before ${until} (the back-off keeps the CA from pausing the name). Last error: ${r.lastError}`;
}

/** A notification for each name that entered (or stepped up) its back-off; one per name and back-off end. */
export async function notifyBackoff(store: Store, lineage: string, changes: readonly BackoffChange[]): Promise<void> {
  for (const c of changes) {
    if (!c.backingOff) continue;
    const n: Notification = {
      key: `backing-off:${lineage}:${c.name}:${c.record.until ?? ''}`,
      kind: 'backing-off',
      lineage,
      names: [c.name],
      notAfter: null,
      daysLeft: null,
      error: { code: c.record.unpauseUrl ? 'ACME_PAUSED' : 'BACKING_OFF', message: describeBackoff(c.name, c.record) },
      at: new Date().toISOString(),
      host: os.hostname(),
    };
    await store.outbox.enqueue(n.key, n.kind, JSON.stringify(n));
  }
}

/** The CA's validation verdicts (what counts towards its failed-authorization limits), not transport or server errors. */
const VALIDATION_TYPES = new Set(['unauthorized', 'connection', 'dns', 'caa', 'incorrectResponse', 'tls', 'rejectedIdentifier']);

/** The names ACME problems blame (validation verdicts only), with what the CA said; every name when none is named. */
export function failedAuthorizations(
  names: readonly string[],
  problems: ReadonlyArray<{ domain?: string; type?: string; detail: string }>,
): Array<{ name: string; error: string }> {
  const verdicts = problems.filter((p) => !p.type || VALIDATION_TYPES.has(p.type));
  const named = verdicts.filter((p) => p.domain && names.includes(p.domain));
  if (named.length) return named.map((p) => ({ name: p.domain!, error: `${p.type ?? 'error'}: ${p.detail}` }));
  if (verdicts.length) return names.map((name) => ({ name, error: verdicts.map((p) => p.detail).join('; ') }));
  return [];
}

/**
 * What certbot's renewals report (autossl renew, or certbot's own timer through the post hook): a renewed lineage
 * clears its names, a failed one counts its failed authorizations (and a pause) and may start a back-off.
 */
export async function recordRenewalBackoff(
  config: Readonly<AutoSslConfig>,
  store: Store,
  outcomes: ReadonlyArray<{
    lineage: string;
    names: string[];
    outcome: string;
    problems: ReadonlyArray<{ domain?: string; type?: string; detail: string }>;
    message?: string;
  }>,
): Promise<void> {
  for (const o of outcomes) {
    if (o.outcome === 'renewed') await recordSuccess(config, store, o.names);
    if (o.outcome !== 'failed') continue;
    const paused = parsePaused(`${o.problems.map((p) => p.detail).join('\n')}\n${o.message ?? ''}`);
    const changes: BackoffChange[] = [];
    if (paused) {
      const names = paused.names.filter((n) => o.names.includes(n));
      for (const name of names.length ? names : o.names)
        changes.push(await recordFailure(config, store, name, o.message ?? 'paused by the CA', { unpauseUrl: paused.url }));
    } else {
      for (const f of failedAuthorizations(o.names, o.problems)) changes.push(await recordFailure(config, store, f.name, f.error));
    }
    await notifyBackoff(store, o.lineage, changes);
  }
}
