/**
 * `autossl renew`: certbot renew run by autossl, with the beforeRenew/afterRenew hooks around it, revoked lineages
 * renewed first, each lineage's outcome read from certbot's summary and serials, recorded and notified.
 */
import crypto from 'node:crypto';
import { activeBackoffs, recordRenewalBackoff } from './backoff.js';
import { syncRenewalHolds } from './backoff-hold.js';
import { execCertbot, lineageProblems, summarizeProblems } from '../certbot/certbot.js';
import type { AcmeProblem } from '../issuer/issuer.js';
import { readLineage } from '../certbot/lineage.js';
import type { EngineCore } from '../engine.js';
import { AutoSslError, toAutoSslError } from '../errors.js';
import { ownerStamp } from '../lock.js';
import type { RenewEvent } from '../pipeline/context.js';
import type { CertificateRow, Store } from '../store/store.js';
import { certbotSettings } from '../stages/issue-certbot.js';
import { scanLineages } from './scan.js';
import { revocationOf } from './revocation.js';
import { ariPass } from './ari-pass.js';
import { withLocked } from '../store/locker.js';
import { renewalWindowStart, statusRows } from './status.js';
import { deliverOutbox, enqueue, enqueueDue, notification, type DeliveryReport } from './outbox.js';

export interface RenewOutcome {
  lineage: string;
  names: string[];
  outcome: 'renewed' | 'not-due' | 'failed';
  problems: AcmeProblem[];
  message?: string;
  /** Why autossl renewed it though certbot would not have: the CA revoked it, or its ARI window says so. */
  reason?: 'revoked' | 'ari';
}

export interface RenewReport {
  results: RenewOutcome[];
  notifications: DeliveryReport;
  /** Errors of beforeRenew/afterRenew taps (the renewal went on). */
  hookErrors: string[];
}

/** certbot's end-of-run summary: "  /etc/letsencrypt/live/x/fullchain.pem (success|failure|skipped)". */
export function parseRenewSummary(output: string): Map<string, 'success' | 'failure' | 'skipped'> {
  const out = new Map<string, 'success' | 'failure' | 'skipped'>();
  const re = /\/live\/([^/\s]+)\/fullchain\.pem\b.*\((success|failure|skipped)\)\s*$/gm;
  for (let m = re.exec(output); m; m = re.exec(output)) out.set(m[1]!, m[2] as 'success' | 'failure' | 'skipped');
  return out;
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

/** A --cert-name certbot knows (a hostile one is refused by readLineage's name check). */
export function checkCertName(config: EngineCore['config'], certName: string | undefined): void {
  // another issuer's lineages are asked for by renewThroughIssuer (they are the issuer's, not certbot's)
  if (config.issuer !== 'certbot') return;
  if (certName !== undefined && !readLineage(config.certbot.configDir, certName)) {
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
  checkCertName(config, options.certName);
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
  const args = ['renew', '--no-random-sleep-on-renew'];
  if (options.certName) args.push('--cert-name', options.certName);
  if (options.force) args.push('--force-renewal');
  // certbot runs the installed pre/post hooks too: they see this and leave beforeRenew/afterRenew to us
  let run: Awaited<ReturnType<typeof execCertbot>> | undefined;
  const forcedFailures = new Map<string, RenewOutcome>();
  try {
    // a name backing off (failed authorizations) gets no order of autossl's own, ARI or revoked, until it ends
    const backingOff = reasons.size ? await activeBackoffs(config, store).catch(() => new Map()) : new Map();
    for (const [name, reason] of reasons) {
      if ((before.find((c) => c.lineage === name)?.names ?? []).some((n) => backingOff.has(n))) continue;
      // two passes at once (the timer and an admin) must not both replace the certificate: the second, once it
      // holds the lineage's lock, finds the serial changed and leaves it
      const forced = await withLocked(store.locker, `forced-renew-${name}`, config.certbot.timeoutMs * 2, `The forced renewal of ${name}`, async () => {
        const now = (await scanLineages(config.certbot.configDir, store)).find((c) => c.lineage === name);
        if (!now || now.serial !== before.find((c) => c.lineage === name)?.serial) return null;
        return execCertbot(certbotSettings(config), ['renew', '--no-random-sleep-on-renew', '--cert-name', name, '--force-renewal'], {
          AUTOSSL_RENEW_PARENT: String(process.pid),
        });
      });
      if (!forced) continue;
      const cert = (await scanLineages(config.certbot.configDir, store)).find((c) => c.lineage === name);
      if (!cert || cert.serial !== before.find((c) => c.lineage === name)?.serial) continue;
      const problems = lineageProblems(forced, config.certbot.logsDir, { name, names: cert.names }, true);
      const why = reason === 'revoked' ? 'the CA revoked it' : "the CA's ARI window for it is open";
      forcedFailures.set(name, {
        lineage: name,
        names: cert.names,
        outcome: 'failed',
        problems,
        message: `${why}; renewing it failed: ${summarizeProblems(problems) || forced.stderr.trim().split('\n').pop() || 'certbot renew failed'}`,
        reason,
      });
    }
    if (!options.passOnly) run = await execCertbot(certbotSettings(config), args, { AUTOSSL_RENEW_PARENT: String(process.pid) });
  } finally {
    await runRenewHook(core, await renewEvent(core, store, 'after', base), hookErrors);
    await core.services.undo.finishRun(base.runId, true);
  }
  const outcomes = run ? outcomesOfRun(core, run, before, await scanLineages(config.certbot.configDir, store), options.certName, reasons) : [];
  const after = run ? [] : await scanLineages(config.certbot.configDir, store);
  for (const name of run ? [] : reasons.keys()) {
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

/** Each lineage's outcome of certbot's run of all, from its summary and the serials before and after. */
function outcomesOfRun(
  core: EngineCore,
  run: Awaited<ReturnType<typeof execCertbot>>,
  before: readonly CertificateRow[],
  after: readonly CertificateRow[],
  certName: string | undefined,
  reasons: ReadonlyMap<string, 'revoked' | 'ari'>,
): RenewOutcome[] {
  const summary = parseRenewSummary(`${run.stdout}\n${run.stderr}`);
  const outcomes: RenewOutcome[] = [];
  for (const cert of after) {
    if (certName && cert.lineage !== certName) continue;
    const prior = before.find((c) => c.lineage === cert.lineage);
    const said = summary.get(cert.lineage);
    const changed = prior?.serial !== cert.serial;
    // certbot's summary says it; a changed serial confirms it even when certbot's output was cut short
    const outcome: RenewOutcome['outcome'] =
      said === 'failure' ? 'failed' : said === 'success' || changed ? 'renewed' : said === 'skipped' ? 'not-due' : run.exitCode === 0 ? 'not-due' : 'failed';
    const failedLine = new RegExp(`Failed to renew certificate ${cert.lineage.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} with error: (.+)`).exec(
      `${run.stdout}\n${run.stderr}`,
    )?.[1];
    const problems =
      outcome === 'failed'
        ? lineageProblems(run, core.config.certbot.logsDir, { name: cert.lineage, names: cert.names }, certName !== undefined || after.length === 1)
        : [];
    const message =
      outcome === 'failed' ? summarizeProblems(problems) || failedLine || run.stderr.trim().split('\n').pop() || 'certbot renew failed' : undefined;
    const reason = outcome === 'renewed' ? reasons.get(cert.lineage) : undefined;
    outcomes.push({ lineage: cert.lineage, names: cert.names, outcome, problems, message, ...(reason ? { reason } : {}) });
  }
  return outcomes;
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
    const lineage = c.serial && c.notAfter !== null && Date.now() < c.notAfter ? readLineage(core.config.certbot.configDir, c.lineage) : null;
    if (lineage && (await revocationOf(core.config, store, lineage, c.serial!, { fresh: true })) === 'revoked') out.push(c.lineage);
  }
  return out;
}
