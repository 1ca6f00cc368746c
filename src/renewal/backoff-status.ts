/**
 * `status` and the back-off (backoff.ts): a certificate with a name backing off (or paused by the CA) is
 * `backing-off` with the last error and when the next order may go (or the unpause URL), unless something more
 * urgent holds; a name backing off with no certificate yet (its first order failed) gets a row of its own.
 */
import type { AutoSslConfig } from '../config/schema.js';
import type { Store } from '../store/store.js';
import { activeBackoffs, describeBackoff } from './backoff.js';
import { URGENCY, type StatusRow } from './status.js';

export async function markBackingOff(config: Readonly<AutoSslConfig>, store: Store, rows: StatusRow[], now = Date.now()): Promise<StatusRow[]> {
  let backoffs;
  try {
    backoffs = await activeBackoffs(config, store, now);
  } catch {
    return rows; // a store without the table (read-only, older): nothing known
  }
  if (!backoffs.size) return rows;
  const seen = new Set<string>();
  for (const row of rows) {
    const name = row.names.find((n) => backoffs.has(n));
    if (!name) continue;
    seen.add(name);
    const r = backoffs.get(name)!;
    // a more urgent state stands, unless nothing was issued yet (a name with no certificate is not served, of course)
    if (URGENCY[row.state] < URGENCY['backing-off'] && row.notAfter !== null) continue;
    row.state = 'backing-off';
    row.lastError = { code: r.unpauseUrl ? 'ACME_PAUSED' : 'BACKING_OFF', message: describeBackoff(name, r), at: new Date(r.lastAt).toISOString() };
    row.consecutiveFailures = Math.max(row.consecutiveFailures, r.failures);
  }
  const added: StatusRow[] = [];
  for (const [name, r] of backoffs) {
    if (seen.has(name)) continue;
    added.push({
      lineage: '',
      domain: name,
      names: [name],
      state: 'backing-off',
      notAfter: null,
      daysLeft: null,
      renewFrom: null,
      lastError: { code: r.unpauseUrl ? 'ACME_PAUSED' : 'BACKING_OFF', message: describeBackoff(name, r), at: new Date(r.lastAt).toISOString() },
      consecutiveFailures: r.failures,
      vhosts: [],
      serial: null,
    });
  }
  return [...rows, ...added].sort(
    (a, b) => URGENCY[a.state] - URGENCY[b.state] || (a.daysLeft ?? -1e9) - (b.daysLeft ?? -1e9) || a.domain.localeCompare(b.domain),
  );
}
