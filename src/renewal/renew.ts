/**
 * `autossl renew` with an issuer that renews its due lineages in a run of its own (Issuer.renewDue: certbot's
 * `certbot renew`, whose deploy hook installs each renewed lineage): the beforeRenew/afterRenew hooks around it,
 * revoked lineages and open ARI windows renewed first (Issuer.renew, forced), each lineage's outcome recorded and
 * notified. What is certbot's (its arguments, its summary and log) is the certbot issuer's (src/issuer/certbot-renew.ts).
 */
import crypto from 'node:crypto';
import { activeBackoffs, recordRenewalBackoff } from './backoff.js';
import { syncRenewalHolds } from './backoff-hold.js';
import type { AcmeProblem, Issuer, RenewalOutcome } from '../issuer/issuer.js';
import type { EngineCore } from '../engine.js';
import { AutoSslError, toAutoSslError } from '../errors.js';
import { ownerStamp } from '../lock.js';
import type { RenewEvent } from '../pipeline/context.js';
import type { CertificateRow, Store } from '../store/store.js';
import { scanLineages } from './scan.js';
import { revocationOf } from './revocation.js';
import { ariPass } from './ari-pass.js';
import { withLocked } from '../store/locker.js';
import { renewalWindowStart, statusRows } from './status.js';
import { deliverOutbox, enqueue, enqueueDue, notification, type DeliveryReport } from './outbox.js';

export interface RenewOutcome extends RenewalOutcome {
  /** Why autossl renewed it though certbot would not have: the CA revoked it, or its ARI window says so. */
  reason?: 'revoked' | 'ari';
}

export interface RenewReport {
  results: RenewOutcome[];
  notifications: DeliveryReport;
  /** Errors of beforeRenew/afterRenew taps (the renewal went on). */
  hookErrors: string[];
}

export async function renewEvent(
  core: EngineCore,
  store: Store,
  phase: RenewEvent['phase'],
  base: Omit<RenewEvent, 'phase' | 'lineages'>,
  scanned?: readonly CertificateRow[],
): Promise<RenewEvent> {
  const certs = scanned ?? (await scanLineages(core.config.certbot.configDir, store));
  const now = Date.now();
  const lineages = certs.map((c) => ({
    name: c.lineage,
    names: c.names,
    due: base.forced
      ? !base.certName || base.certName === c.lineage
      : c.notAfter === null || c.notBefore === null || now >= renewalWindowStart(c.notBefore, c.notAfter, core.config.renewal.windowFraction),
  }));
  return { ...base, phase, lineages: base.certName ? lineages.filter((l) => l.name === base.certName) : lineages };
}

export async function runRenewHook(core: EngineCore, event: RenewEvent, errors: string[]): Promise<void> {
  try {
    await core.hooks[event.phase === 'before' ? 'beforeRenew' : 'afterRenew'].promise(event);
  } catch (error) {
    const e = toAutoSslError(error);
    errors.push(e.message);
    core.emit({ domain: '*', stage: event.phase === 'before' ? 'beforeRenew' : 'afterRenew', status: 'error', message: e.message });
  }
}

/** A --cert-name certbot knows (a hostile one is refused by the issuer's name check: certbot's readLineage). */
export function checkCertName(core: Pick<EngineCore, 'config' | 'services'>, certName: string | undefined): void {
  const { config } = core;
  // another issuer's lineages are asked for by renewThroughIssuer (they are the issuer's, not certbot's)
  if (config.issuer !== 'certbot') return;
  if (certName !== undefined && !core.services.issuer.files?.(certName)) {
    throw new AutoSslError('CONFIG_INVALID', `certbot has no certificate named ${JSON.stringify(certName)} in ${config.certbot.configDir}.`, {
      hint: 'autossl status lists the certificate names.',
    });
  }
}

export interface RenewOptions {
  certName?: string;
  force?: boolean;
  /**
   * autossl's own pass only (back-off holds; revoked certificates and ARI windows renewed), not certbot's run of
   * all: certbot.service runs it before its own `certbot renew` (autossl setup's drop-in).
   */
  passOnly?: boolean;
}

export async function renew(core: EngineCore, options: RenewOptions = {}): Promise<RenewReport> {
  const { config } = core;
  const store = core.services.state();
  const { issuer } = core.services;
  checkCertName(core, options.certName);
  if (!issuer.renewDue)
    throw new AutoSslError('INTERNAL', `The issuer ${issuer.name} renews no lineages of its own: autossl renews them (renewThroughIssuer).`);
  const before = await scanLineages(config.certbot.configDir, store);
  // back-offs that ended are released before certbot reads its renewal configs, those in force held (backoff-hold.ts)
  await syncRenewalHolds(core, store);
  // certbot renews by date only (or by its CA's ARI, certbot >= 4.1): what autossl renews itself, with
  // --force-renewal, lineage by lineage, before the run of all
  const reasons = options.force ? new Map<string, 'revoked' | 'ari'>() : await forcedReasons(core, store, before, options.certName);
  const hookErrors: string[] = [];
  if (options.passOnly && reasons.size === 0) {
    await enqueueDue(core, store);
    return { results: [], notifications: await deliverOutbox(core), hookErrors };
  }
  const base = { runId: crypto.randomUUID(), forced: options.force === true, certName: options.certName, startedBy: 'autossl' as const, owner: ownerStamp() };
  await runRenewHook(core, await renewEvent(core, store, 'before', base), hookErrors);
  const signal = (): AbortSignal => AbortSignal.timeout(config.certbot.timeoutMs * 3);
  let outcomes: RenewOutcome[] | undefined;
  const forcedFailures = new Map<string, RenewOutcome>();
  try {
    // a name backing off (failed authorizations) gets no order of autossl's own, ARI or revoked, until it ends
    const backingOff = reasons.size ? await activeBackoffs(config, store).catch(() => new Map()) : new Map();
    for (const [name, reason] of reasons) {
      if ((before.find((c) => c.lineage === name)?.names ?? []).some((n) => backingOff.has(n))) continue;
      const failure = await forcedRenewal(core, store, issuer, before, name, signal());
      if (failure === undefined) continue;
      const cert = (await scanLineages(config.certbot.configDir, store)).find((c) => c.lineage === name);
      if (!cert || cert.serial !== before.find((c) => c.lineage === name)?.serial) continue;
      const why = reason === 'revoked' ? 'the CA revoked it' : "the CA's ARI window for it is open";
      forcedFailures.set(name, {
        lineage: name,
        names: cert.names,
        outcome: 'failed',
        problems: failure.problems,
        message: `${why}; renewing it failed: ${failure.reason}`,
        reason,
      });
    }
    // the run of all: the issuer renews what is due by its rules (certbot: by date, or by its CA's ARI from 4.1),
    // and certbot's deploy hook installs each; certbot runs the installed pre/post hooks too, which leave
    // beforeRenew/afterRenew to us
    if (issuer.renewDue && !options.passOnly) {
      const current = () => scanLineages(config.certbot.configDir, store);
      outcomes = (await issuer.renewDue({ certName: options.certName, force: options.force === true, before, current }, signal())).map((o) => {
        const reason = o.outcome === 'renewed' ? reasons.get(o.lineage) : undefined;
        return { ...o, ...(reason ? { reason } : {}) };
      });
    }
  } finally {
    await runRenewHook(core, await renewEvent(core, store, 'after', base), hookErrors);
    await core.services.undo.finishRun(base.runId, true);
  }
  const ran = outcomes !== undefined;
  outcomes ??= [];
  const after = ran ? [] : await scanLineages(config.certbot.configDir, store);
  for (const name of ran ? [] : reasons.keys()) {
    const cert = after.find((c) => c.lineage === name);
    if (!cert) continue;
    const renewed = cert.serial !== before.find((c) => c.lineage === name)?.serial;
    outcomes.push(
      forcedFailures.get(name) ?? {
        lineage: name,
        names: cert.names,
        outcome: renewed ? 'renewed' : 'not-due',
        problems: [],
        ...(renewed ? { reason: reasons.get(name)! } : {}),
      },
    );
  }
  for (const [i, o] of outcomes.entries()) outcomes[i] = forcedFailures.get(o.lineage) ?? o;
  await recordRenewals(core, store, outcomes);
  await enqueueDue(core, store);
  const notifications = await deliverOutbox(core);
  return { results: outcomes, notifications, hookErrors };
}

/**
 * One lineage renewed by autossl though the issuer would not renew it yet (revoked, or its ARI window open), with
 * `--force-renewal` (Issuer.renew, forced). Two passes at once (the timer and an admin) must not both replace the
 * certificate: the second, once it holds the lineage's lock, finds the serial changed and leaves it. Returns
 * undefined when it did not renew (left to the other pass) or the issuer renewed it, else the issuer's refusal.
 */
async function forcedRenewal(
  core: EngineCore,
  store: Store,
  issuer: Issuer,
  before: readonly CertificateRow[],
  name: string,
  signal: AbortSignal,
): Promise<{ problems: AcmeProblem[]; reason: string } | undefined> {
  const { config } = core;
  return withLocked(store.locker, `forced-renew-${name}`, config.certbot.timeoutMs * 2, `The forced renewal of ${name}`, async () => {
    const now = (await scanLineages(config.certbot.configDir, store)).find((c) => c.lineage === name);
    if (!now || now.serial !== before.find((c) => c.lineage === name)?.serial) return undefined;
    const lineage = await issuer.find(name);
    if (!lineage) return undefined;
    try {
      const log = (message: string): void => core.emit({ domain: lineage.names[0] ?? name, stage: 'renew', plugin: issuer.name, status: 'info', message });
      await issuer.renew(lineage, { force: true, log }, signal);
      return undefined;
    } catch (error) {
      // the issuer's refusal carries the CA's problems and why; any other error (it could not run at all) stops the pass
      const details = error instanceof AutoSslError ? error.details : {};
      if (typeof details.reason !== 'string') throw error;
      return { problems: Array.isArray(details.problems) ? (details.problems as AcmeProblem[]) : [], reason: details.reason };
    }
  });
}

/** Records each lineage's renewal outcome and queues a notification for each failure (once a day per certificate). */
export async function recordRenewals(core: EngineCore, store: Store, outcomes: readonly RenewOutcome[]): Promise<void> {
  const rows = statusRows(await store.certificates.list(), [], Date.now(), core.config.renewal.windowFraction);
  const day = new Date().toISOString().slice(0, 10);
  for (const o of outcomes) {
    if (o.outcome === 'not-due') continue;
    await store.attempts.record({
      kind: 'renew',
      domain: o.names[0] ?? o.lineage,
      lineage: o.lineage,
      ok: o.outcome === 'renewed',
      code: o.outcome === 'failed' ? 'CERTBOT_FAILED' : undefined,
      message: o.message,
    });
    if (o.outcome !== 'failed') continue;
    const row = rows.find((r) => r.lineage === o.lineage);
    await enqueue(
      store,
      notification(
        core,
        'renewal-failed',
        `renewal-failed:${o.lineage}:${row?.serial ?? ''}:${day}`,
        { lineage: o.lineage, names: o.names, notAfter: row?.notAfter ?? null, daysLeft: row?.daysLeft ?? null },
        { code: 'CERTBOT_FAILED', message: o.message ?? null },
      ),
    );
  }
  // consecutive failed authorizations per name: the back-off before the CA's pause (backoff.ts)
  await recordRenewalBackoff(core.config, store, outcomes);
  // certbot's own timer must not try a lineage whose names now back off (backoff-hold.ts)
  const tried = outcomes.filter((o) => o.outcome !== 'not-due').map((o) => o.lineage);
  if (tried.length) await syncRenewalHolds(core, store, { only: tried });
}

/** The lineages autossl renews itself in this pass, and why: the CA revoked them, or their ARI window says so. */
async function forcedReasons(
  core: EngineCore,
  store: Store,
  certs: readonly CertificateRow[],
  certName: string | undefined,
): Promise<Map<string, 'revoked' | 'ari'>> {
  const reasons = new Map<string, 'revoked' | 'ari'>();
  for (const name of await revokedLineages(core, store, certs)) if (!certName || name === certName) reasons.set(name, 'revoked');
  // the ARI half of the pass: windows asked, those open (or moved into the past) renewed when certbot does not do it
  for (const name of await ariLineages(core, store, certs)) if (!reasons.has(name) && (!certName || name === certName)) reasons.set(name, 'ari');
  return reasons;
}

/**
 * Lineages the CA's ARI windows say autossl renews in this pass (ari-pass.ts); a failure to ask is a warning of the
 * run, never a failed renewal (certbot's own date-based renewal goes on).
 */
async function ariLineages(core: EngineCore, store: Store, certs: readonly CertificateRow[]): Promise<string[]> {
  try {
    return (await ariPass(core, store, certs)).renewNow;
  } catch (error) {
    core.emit({ domain: '*', stage: 'ari', status: 'warning', message: `ACME Renewal Information was not asked: ${toAutoSslError(error).message}` });
    return [];
  }
}

/** Lineages whose current certificate the CA revoked (asked now): renewed even when not due. */
async function revokedLineages(core: EngineCore, store: Store, certs: readonly CertificateRow[]): Promise<string[]> {
  const out: string[] = [];
  for (const c of certs) {
    const lineage = c.serial && c.notAfter !== null && Date.now() < c.notAfter ? (core.services.issuer.files?.(c.lineage) ?? null) : null;
    if (lineage && (await revocationOf(core.config, store, lineage, c.serial!, { fresh: true })) === 'revoked') out.push(c.lineage);
  }
  return out;
}
