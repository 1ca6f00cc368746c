/**
 * `autossl status`: the certificates (certbot's lineages scanned in place, or another issuer's list), the uploads a
 * vhost serves, what nginx serves per configured name, revocations, and the notifications still queued.
 */
import { installedTimers, timerWarnings as timerWarnings_ } from '../setup/timer-check.js';
import { markBackingOff } from './backoff-status.js';
import type { EngineCore } from '../engine.js';
import type { Store } from '../store/store.js';
import { issuedLineageRows, scanLineages, vhostCertificateRefs } from './scan.js';
import { revocationOf } from './revocation.js';
import { needsAttention, statusRows, URGENCY, type StatusRow } from './status.js';
import { markUnservedLineages, servedRows } from './served.js';
import { markUnloaded } from './loaded.js';
import { uploadRows } from './uploads.js';
import { applyAriToRows } from './ari-pass.js';
import type { StaplingWarning } from '../installer/installer.js';

export interface StatusReport {
  certificates: StatusRow[];
  /** True when a certificate needs attention (the CLI exits 1). */
  attention: boolean;
  /** Notifications queued but not yet delivered. */
  pendingNotifications: number;
  /** Configuration nginx warns about on every reload (ssl_stapling for certificates without an OCSP URL). */
  warnings: StaplingWarning[];
  /** The installed renewal timer cannot meet a certificate's window (src/setup/timer-check.ts). */
  timerWarnings: string[];
}

export async function status(core: EngineCore, store: Store, now = Date.now(), probe = false): Promise<StatusReport> {
  const { config } = core;
  const { issuer, installer } = core.services;
  // certbot's lineages are scanned in place (cached per file: 10,000 in well under 2 s); another issuer lists its own
  const certbot = config.issuer === 'certbot';
  let refs: ReturnType<typeof vhostCertificateRefs> = [];
  let tree: unknown = null;
  try {
    tree = installer.load();
    refs = vhostCertificateRefs(installer.certificatePaths(tree), config.certbot.configDir, certbot ? undefined : (f) => issuer.lineageOfPath?.(f));
  } catch {
    refs = []; // no nginx config here: certificates are still tracked
  }
  const certs = certbot ? await scanLineages(config.certbot.configDir, store, refs) : await issuedLineageRows(await issuer.list(), store, refs);
  // uploads a vhost serves are listed too (statusRows knows the issuer's lineages only)
  let rows = [...statusRows(certs, refs, now, config.renewal.windowFraction), ...uploadRows(config, refs, now)];
  // the CA's ARI windows, as the last pass asked them (status only reads: `autossl renew` asks)
  try {
    applyAriToRows(rows, await store.ariWindows.list(), now);
  } catch {
    // a store that cannot answer (read-only copy of an older schema): no windows shown
  }
  await markRevoked(core, store, rows);
  let warnings: StaplingWarning[] = [];
  try {
    warnings = tree ? installer.configWarnings(tree) : [];
  } catch {
    warnings = []; // a tree that cannot be walked for it: the certificates still report
  }
  if (tree) {
    // what is served, per configured name: a mismatch is more urgent than anything but an expired certificate
    const served = await servedRows(config, installer, tree, now, probe);
    markUnservedLineages(config, installer, tree, rows);
    for (const r of rows) {
      const p = r.names.map((n) => served.probes.get(n)).find((x) => x !== undefined);
      if (p) r.probe = p;
    }
    // every lineage a vhost serves, config or not: renewed on disk (certbot renew alone) but not loaded by nginx
    const unloaded = await markUnloaded(config, installer, tree, rows, new Set(served.mismatches.map((m) => m.domain)));
    rows = [...rows, ...served.mismatches, ...unloaded].sort(
      (a, b) => URGENCY[a.state] - URGENCY[b.state] || (a.daysLeft ?? -1e9) - (b.daysLeft ?? -1e9) || a.domain.localeCompare(b.domain),
    );
  }
  rows = await markBackingOff(config, store, rows, now);
  let pendingNotifications = 0;
  try {
    // with no notify plugin nothing will ever deliver them: not "queued" (they wait for a plugin to be configured)
    pendingNotifications = core.hooks.notify.taps.length ? (await store.outbox.list()).filter((o) => o.deliveredAt === null).length : 0;
  } catch {
    pendingNotifications = 0;
  }
  const timerWarnings = installedTimers().flatMap((t) => timerWarnings_(t, rows));
  return { certificates: rows, attention: needsAttention(rows), pendingNotifications, warnings, timerWarnings };
}

/** Rows whose certificate the CA revoked become `revoked` (asked a few at a time; answers are kept in the store). */
async function markRevoked(core: EngineCore, store: Store, rows: StatusRow[]): Promise<void> {
  const candidates = rows.filter((r) => r.lineage && r.serial && r.state !== 'expired' && r.state !== 'missing');
  for (let i = 0; i < candidates.length; i += 16) {
    await Promise.all(
      candidates.slice(i, i + 16).map(async (r) => {
        if (core.config.issuer !== 'certbot') {
          // another issuer says itself whether the CA revoked its certificate (asked now; none: never known)
          const issued = core.services.issuer.revoked ? await core.services.issuer.find(r.lineage).catch(() => null) : null;
          if (!issued || !(await core.services.issuer.revoked!(issued).catch(() => false))) return;
          r.state = 'revoked';
          r.lastError = { code: 'CERT_REVOKED', message: `The CA revoked certificate ${r.serial}; autossl issue or renew orders a new one.`, at: null };
          return;
        }
        const lineage = core.services.issuer.files?.(r.lineage) ?? null;
        if (!lineage || (await revocationOf(core.config, store, lineage, r.serial!)) !== 'revoked') return;
        r.state = 'revoked';
        r.lastError = { code: 'CERT_REVOKED', message: `The CA revoked certificate ${r.serial}; autossl issue or renew orders a new one.`, at: null };
      }),
    );
  }
  rows.sort((a, b) => URGENCY[a.state] - URGENCY[b.state] || (a.daysLeft ?? -1e9) - (b.daysLeft ?? -1e9) || a.domain.localeCompare(b.domain));
}
