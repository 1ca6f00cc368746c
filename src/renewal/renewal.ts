/**
 * Renewal and everything around certbot's own processes: `status`, `renew`, the deploy hook (a pipeline run from
 * `issue` on, so every plugin's vhost/validate/reload/verify/finally taps run on every renewal), the pre/post hooks
 * (the beforeRenew/afterRenew hooks), the DNS-01 manual hooks, and the notification outbox.
 *
 * Notifications are queued once per event (a key per event in the state store) and delivered from the commands
 * that change things (renew, the deploy hook, certbot's post hook, the timer), marked per notify tap after it
 * returned, retried later when a tap fails: `status` only reads.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import { firstInSmallFiles } from '../fsutil.js';
import path from 'node:path';
import { execCertbot, lastLoggedRun, lineageProblems, lineageSections, summarizeProblems, type AcmeProblem } from '../certbot/certbot.js';
import { insideAutosslCertonly, writeHookScript } from '../certbot/hooks.js';
import { readCertificate, readLineage, type Lineage } from '../certbot/lineage.js';
import { uploadDirOf } from '../certbot/custom.js';
import { servedCertificatePath } from '../nginx/edit.js';
import { covers } from '../nginx/names.js';
import { siteOfName } from '../config/schema.js';
import { normalizeDomain } from '../domain.js';
import type { EngineCore } from '../engine.js';
import { AutoSslError, toAutoSslError } from '../errors.js';
import { ownerStamp, parentPid, processStartTime } from '../lock.js';
import type { DnsRecord, DnsSolver, Notification, RenewEvent } from '../pipeline/context.js';
import type { Hooks } from '../pipeline/hooks.js';
import type { DomainResult } from '../pipeline/pipeline.js';
import type { CertificateRow, DnsPhase, Store } from '../store/store.js';
import type { UndoService } from '../undo.js';
import { waitForTxt } from '../preflight/dns.js';
import { certbotSettings } from '../stages/issue-certbot.js';
import { issuedLineageRows, scanLineages, vhostCertificateRefs } from './scan.js';
import { revocationOf } from './revocation.js';
import { needsAttention, renewalWindowStart, statusRows, URGENCY, type StatusRow } from './status.js';
import { markUnservedLineages, servedRows } from './served.js';
import { lostCover, servedCover } from '../nginx/block-cover.js';
import { markUnloaded } from './loaded.js';
import { uploadRows } from './uploads.js';
import type { NginxTree } from '../nginx/tree.js';

// ------------------------------------------------------------------------------------------------ status

export interface StatusReport {
  certificates: StatusRow[];
  /** True when a certificate needs attention (the CLI exits 1). */
  attention: boolean;
  /** Notifications queued but not yet delivered. */
  pendingNotifications: number;
}

export async function status(core: EngineCore, store: Store, now = Date.now(), probe = false): Promise<StatusReport> {
  const { config } = core;
  const { issuer } = core.services;
  // certbot's lineages are scanned in place (cached per file: 10,000 in well under 2 s); another issuer lists its own
  const certbot = config.issuer === 'certbot';
  let refs: ReturnType<typeof vhostCertificateRefs> = [];
  let tree: NginxTree | null = null;
  try {
    tree = core.services.loadTree();
    refs = vhostCertificateRefs(tree, config.certbot.configDir, certbot ? undefined : (f) => issuer.lineageOfPath?.(f));
  } catch {
    refs = []; // no nginx config here: certificates are still tracked
  }
  const certs = certbot ? await scanLineages(config.certbot.configDir, store, refs) : await issuedLineageRows(await issuer.list(), store, refs);
  // uploads a vhost serves are listed too (statusRows knows the issuer's lineages only)
  let rows = [...statusRows(certs, refs, now, config.renewal.windowFraction), ...uploadRows(config, refs, now)];
  await markRevoked(core, store, rows);
  if (tree) {
    // what is served, per configured name: a mismatch is more urgent than anything but an expired certificate
    const served = await servedRows(config, tree, now, probe);
    markUnservedLineages(config, tree, rows);
    for (const r of rows) {
      const p = r.names.map((n) => served.probes.get(n)).find((x) => x !== undefined);
      if (p) r.probe = p;
    }
    // every lineage a vhost serves, config or not: renewed on disk (certbot renew alone) but not loaded by nginx
    const unloaded = await markUnloaded(config, tree, rows, new Set(served.mismatches.map((m) => m.domain)));
    rows = [...rows, ...served.mismatches, ...unloaded].sort((a, b) => URGENCY[a.state] - URGENCY[b.state] || (a.daysLeft ?? -1e9) - (b.daysLeft ?? -1e9) || a.domain.localeCompare(b.domain));
  }
  let pendingNotifications = 0;
  try {
    // with no notify plugin nothing will ever deliver them: not "queued" (they wait for a plugin to be configured)
    pendingNotifications = core.hooks.notify.taps.length ? (await store.outbox.list()).filter((o) => o.deliveredAt === null).length : 0;
  } catch {
    pendingNotifications = 0;
  }
  return { certificates: rows, attention: needsAttention(rows), pendingNotifications };
}

/** Rows whose certificate the CA revoked become `revoked` (asked a few at a time; answers are kept in the store). */
async function markRevoked(core: EngineCore, store: Store, rows: StatusRow[]): Promise<void> {
  const candidates = rows.filter((r) => r.lineage && r.serial && r.state !== 'expired' && r.state !== 'missing');
  for (let i = 0; i < candidates.length; i += 16) {
    await Promise.all(candidates.slice(i, i + 16).map(async (r) => {
      if (core.config.issuer !== 'certbot') {
        // another issuer says itself whether the CA revoked its certificate (asked now; none: never known)
        const issued = core.services.issuer.revoked ? await core.services.issuer.find(r.lineage).catch(() => null) : null;
        if (!issued || !(await core.services.issuer.revoked!(issued).catch(() => false))) return;
        r.state = 'revoked';
        r.lastError = { code: 'CERT_REVOKED', message: `The CA revoked certificate ${r.serial}; autossl issue or renew orders a new one.`, at: null };
        return;
      }
      const lineage = readLineage(core.config.certbot.configDir, r.lineage);
      if (!lineage || (await revocationOf(core.config, store, lineage, r.serial!)) !== 'revoked') return;
      r.state = 'revoked';
      r.lastError = { code: 'CERT_REVOKED', message: `The CA revoked certificate ${r.serial}; autossl issue or renew orders a new one.`, at: null };
    }));
  }
  rows.sort((a, b) => URGENCY[a.state] - URGENCY[b.state] || (a.daysLeft ?? -1e9) - (b.daysLeft ?? -1e9) || a.domain.localeCompare(b.domain));
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

// -------------------------------------------------------------------------------------------- notifications

export function notification(core: EngineCore, kind: Notification['kind'], key: string, row: Pick<StatusRow, 'lineage' | 'names' | 'notAfter' | 'daysLeft'>, error?: Notification['error']): Notification {
  return { key, kind, lineage: row.lineage, names: row.names, notAfter: row.notAfter, daysLeft: row.daysLeft, error, at: new Date().toISOString(), host: core.host };
}

export async function enqueue(store: Store, n: Notification): Promise<void> {
  await store.outbox.enqueue(n.key, n.kind, JSON.stringify(n));
}

/** Certificates that entered their renewal window, or expired, without a renewal: queued once per expiry date. */
export async function enqueueDue(core: EngineCore, store: Store, now = Date.now()): Promise<void> {
  const rows = statusRows(await store.certificates.list(), [], now, core.config.renewal.windowFraction);
  for (const row of rows) {
    if ((row.state === 'due' || row.state === 'expired') && row.lineage) {
      const kind = row.state === 'due' ? 'renewal-due' : 'expired';
      await enqueue(store, notification(core, kind, `${kind}:${row.lineage}:${row.notAfter ?? ''}`, row));
    }
  }
}

/** Which notify taps took a notification in this delivery attempt, and which failed. */
const deliveries = new WeakMap<Notification, { deliveredTo: Set<string>; delivered: string[]; failed: Array<{ plugin: string; message: string }> }>();

/**
 * Makes every notify tap take each notification at most once: a tap that already took it is skipped on a retry,
 * and a failing tap does not keep the others from theirs.
 */
export function trackNotifyDeliveries(hooks: Hooks): void {
  hooks.notify.intercept({
    register(tapInfo) {
      const original = tapInfo.fn as (n: Notification) => unknown;
      const plugin = tapInfo.name;
      if (tapInfo.type !== 'promise' && tapInfo.type !== 'sync') return tapInfo;
      tapInfo.type = 'promise';
      tapInfo.fn = async (n: Notification) => {
        const track = deliveries.get(n);
        if (track?.deliveredTo.has(plugin)) return;
        try {
          await original(n);
          track?.delivered.push(plugin);
        } catch (error) {
          if (!track) throw error;
          track.failed.push({ plugin, message: toAutoSslError(error).message });
        }
      };
      return tapInfo;
    },
  });
}

export interface DeliveryReport {
  delivered: number;
  failed: Array<{ key: string; plugin: string; message: string }>;
  /** Still queued (failed now, retried later). */
  pending: number;
}

const RETRY_MAX_MS = 6 * 3_600_000;

/** Delivers the queued notifications that are due, each to every notify tap that has not taken it yet. */
export async function deliverOutbox(core: EngineCore, now = Date.now()): Promise<DeliveryReport> {
  const report: DeliveryReport = { delivered: 0, failed: [], pending: 0 };
  const store = core.services.state();
  if (!core.hooks.notify.taps.length) return report;
  for (const row of await store.outbox.claim(now)) {
    const n = JSON.parse(row.payload) as Notification;
    const track = { deliveredTo: new Set(row.deliveredTo), delivered: [] as string[], failed: [] as Array<{ plugin: string; message: string }> };
    deliveries.set(n, track);
    try {
      await core.hooks.notify.promise(n);
    } catch (error) {
      track.failed.push({ plugin: '?', message: toAutoSslError(error).message });
    }
    for (const plugin of track.delivered) await store.outbox.markDeliveredTo(row.id, plugin);
    if (track.failed.length === 0) {
      await store.outbox.settle(row.id, { delivered: true });
      report.delivered++;
    } else {
      const retryAt = Date.now() + Math.min(core.config.notify.retryBaseMs * 2 ** row.attempts, RETRY_MAX_MS);
      await store.outbox.settle(row.id, { delivered: false, error: track.failed.map((f) => `${f.plugin}: ${f.message}`).join('; '), retryAt });
      for (const f of track.failed) report.failed.push({ key: row.key, ...f });
      report.pending++;
    }
  }
  return report;
}

// ------------------------------------------------------------------------------------------------- renew

export interface RenewOutcome {
  lineage: string;
  names: string[];
  outcome: 'renewed' | 'not-due' | 'failed';
  problems: AcmeProblem[];
  message?: string;
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

async function renewEvent(core: EngineCore, store: Store, phase: RenewEvent['phase'], base: Omit<RenewEvent, 'phase' | 'lineages'>, scanned?: readonly CertificateRow[]): Promise<RenewEvent> {
  const certs = scanned ?? (await scanLineages(core.config.certbot.configDir, store));
  const now = Date.now();
  const lineages = certs.map((c) => ({
    name: c.lineage,
    names: c.names,
    due: base.forced ? !base.certName || base.certName === c.lineage : c.notAfter === null || c.notBefore === null || now >= renewalWindowStart(c.notBefore, c.notAfter, core.config.renewal.windowFraction),
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
    throw new AutoSslError('CONFIG_INVALID', `certbot has no certificate named ${JSON.stringify(certName)} in ${config.certbot.configDir}.`, { hint: 'autossl status lists the certificate names.' });
  }
}

export async function renew(core: EngineCore, options: { certName?: string; force?: boolean } = {}): Promise<RenewReport> {
  const { config } = core;
  const store = core.services.state();
  checkCertName(config, options.certName);
  const before = await scanLineages(config.certbot.configDir, store);
  const hookErrors: string[] = [];
  const base = { runId: crypto.randomUUID(), forced: options.force === true, certName: options.certName, startedBy: 'autossl' as const, owner: ownerStamp() };
  await runRenewHook(core, await renewEvent(core, store, 'before', base), hookErrors);
  const args = ['renew', '--no-random-sleep-on-renew'];
  if (options.certName) args.push('--cert-name', options.certName);
  if (options.force) args.push('--force-renewal');
  // certbot runs the installed pre/post hooks too: they see this and leave beforeRenew/afterRenew to us
  let run;
  // certbot renews by date only (or by its CA's ARI, certbot 5): a revoked certificate not yet due is renewed
  // here with --force-renewal, lineage by lineage, before the run of all
  const forcedFailures = new Map<string, RenewOutcome>();
  try {
    const revoked = options.force ? [] : (await revokedLineages(core, store, before)).filter((l) => !options.certName || l === options.certName);
    for (const name of revoked) {
      const forced = await execCertbot(certbotSettings(config), ['renew', '--no-random-sleep-on-renew', '--cert-name', name, '--force-renewal'], { AUTOSSL_RENEW_PARENT: String(process.pid) });
      const cert = (await scanLineages(config.certbot.configDir, store)).find((c) => c.lineage === name);
      if (!cert || cert.serial !== before.find((c) => c.lineage === name)?.serial) continue;
      const problems = lineageProblems(forced, config.certbot.logsDir, { name, names: cert.names }, true);
      forcedFailures.set(name, { lineage: name, names: cert.names, outcome: 'failed', problems, message: `the CA revoked it; renewing it failed: ${summarizeProblems(problems) || forced.stderr.trim().split('\n').pop() || 'certbot renew failed'}` });
    }
    run = await execCertbot(certbotSettings(config), args, { AUTOSSL_RENEW_PARENT: String(process.pid) });
  } finally {
    await runRenewHook(core, await renewEvent(core, store, 'after', base), hookErrors);
    await core.services.undo.finishRun(base.runId, true);
  }
  const summary = parseRenewSummary(`${run.stdout}\n${run.stderr}`);
  const after = await scanLineages(config.certbot.configDir, store);
  const outcomes: RenewOutcome[] = [];
  for (const cert of after) {
    if (options.certName && cert.lineage !== options.certName) continue;
    const prior = before.find((c) => c.lineage === cert.lineage);
    const said = summary.get(cert.lineage);
    const changed = prior?.serial !== cert.serial;
    // certbot's summary says it; a changed serial confirms it even when certbot's output was cut short
    const outcome: RenewOutcome['outcome'] = said === 'failure' ? 'failed' : said === 'success' || changed ? 'renewed' : said === 'skipped' ? 'not-due' : run.exitCode === 0 ? 'not-due' : 'failed';
    const failedLine = new RegExp(`Failed to renew certificate ${cert.lineage.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} with error: (.+)`).exec(`${run.stdout}\n${run.stderr}`)?.[1];
    const problems = outcome === 'failed' ? lineageProblems(run, config.certbot.logsDir, { name: cert.lineage, names: cert.names }, options.certName !== undefined || after.length === 1) : [];
    const message = outcome === 'failed' ? summarizeProblems(problems) || failedLine || run.stderr.trim().split('\n').pop() || 'certbot renew failed' : undefined;
    outcomes.push(forcedFailures.get(cert.lineage) ?? { lineage: cert.lineage, names: cert.names, outcome, problems, message });
  }
  await recordRenewals(core, store, outcomes);
  await enqueueDue(core, store);
  const notifications = await deliverOutbox(core);
  return { results: outcomes, notifications, hookErrors };
}

/** Records each lineage's renewal outcome and queues a notification for each failure (once a day per certificate). */
export async function recordRenewals(core: EngineCore, store: Store, outcomes: readonly RenewOutcome[]): Promise<void> {
  const rows = statusRows(await store.certificates.list(), [], Date.now(), core.config.renewal.windowFraction);
  const day = new Date().toISOString().slice(0, 10);
  for (const o of outcomes) {
    if (o.outcome === 'not-due') continue;
    await store.attempts.record({ kind: 'renew', domain: o.names[0] ?? o.lineage, lineage: o.lineage, ok: o.outcome === 'renewed', code: o.outcome === 'failed' ? 'CERTBOT_FAILED' : undefined, message: o.message });
    if (o.outcome !== 'failed') continue;
    const row = rows.find((r) => r.lineage === o.lineage);
    await enqueue(store, notification(core, 'renewal-failed', `renewal-failed:${o.lineage}:${row?.serial ?? ''}:${day}`, { lineage: o.lineage, names: o.names, notAfter: row?.notAfter ?? null, daysLeft: row?.daysLeft ?? null }, { code: 'CERTBOT_FAILED', message: o.message ?? null }));
  }
}

// ----------------------------------------------------------------------------------- certbot's pre/post hooks

function cmdline(pid: number): string[] {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\u0000');
  } catch {
    return [];
  }
}

/**
 * The certbot process that runs this hook: certbot starts hooks through a shell, so it is the nearest ancestor
 * whose command line is certbot's (falling back to the parent).
 */
function certbotProcess(): { pid: number; args: string[] } {
  for (let pid = process.ppid, hops = 0; pid > 1 && hops < 6; pid = parentPid(pid), hops++) {
    const args = cmdline(pid);
    if (args.some((a, i) => i < 3 && /(^|\/)certbot$/.test(a))) return { pid, args };
  }
  return { pid: process.ppid, args: cmdline(process.ppid) };
}

/** certbot's renewal, as seen from one of its hook processes: one run id and owner for the pre and post hooks. */
function certbotRun(): { runId: string; owner: string; forced: boolean; certName?: string } {
  const { pid: ppid, args } = certbotProcess();
  const start = processStartTime(ppid) ?? '-';
  const i = args.indexOf('--cert-name');
  const certName = i >= 0 ? args[i + 1] : args.find((a) => a.startsWith('--cert-name='))?.slice('--cert-name='.length);
  return { runId: `certbot-${ppid}-${start}`, owner: `${ppid} ${start}`, forced: args.includes('--force-renewal') || args.includes('--renew-by-default'), certName: certName && /^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(certName) ? certName : undefined };
}

export async function renewHook(core: EngineCore, phase: 'pre' | 'post', env: NodeJS.ProcessEnv): Promise<void> {
  // autossl renew started this certbot and runs beforeRenew/afterRenew itself; an autossl issue is no renewal
  if (env.AUTOSSL_RENEW_PARENT || insideAutosslCertonly(env)) return;
  await core.recoverFirst();
  const store = core.services.state();
  const run = certbotRun();
  const base = { runId: run.runId, forced: run.forced, certName: run.certName, startedBy: 'certbot' as const, owner: run.owner };
  const errors: string[] = [];
  if (phase === 'pre') {
    const certs = await scanLineages(core.config.certbot.configDir, store);
    const event = await renewEvent(core, store, 'before', base, certs);
    // the post hook (another process) compares serials with these to tell which renewals failed; every lineage,
    // not only those due by autossl's window: certbot 5 also renews what its CA's ARI asks for (a revoked one)
    await store.renewRuns.put(run.runId, event.lineages.map((l) => ({ name: l.name, due: l.due, serial: certs.find((c) => c.lineage === l.name)?.serial ?? null })));
    await runRenewHook(core, event, errors);
  } else {
    await runRenewHook(core, await renewEvent(core, store, 'after', base), errors);
    await core.services.undo.finishRun(run.runId, true);
    const attempted = await store.renewRuns.take(run.runId);
    const now = await scanLineages(core.config.certbot.configDir, store);
    // what certbot's log of this run says it tried and failed, whatever made it try
    const sections = lineageSections(lastLoggedRun(core.config.certbot.logsDir));
    const outcomes: RenewOutcome[] = [];
    for (const a of attempted) {
      const cert = now.find((c) => c.lineage === a.name);
      if (!cert) continue;
      const renewed = cert.serial !== a.serial;
      const failedHere = /Failed to renew certificate /.test(sections.get(a.name) ?? '');
      if (!renewed && !failedHere && (sections.size > 0 || a.due === false)) continue; // not tried (not due)
      // certbot's log of this run, the part about this lineage (its output is not ours to read)
      const own = renewed ? [] : lineageProblems({ stdout: '', stderr: '' }, core.config.certbot.logsDir, { name: cert.lineage, names: cert.names }, attempted.length === 1);
      outcomes.push({ lineage: a.name, names: cert.names, outcome: renewed ? 'renewed' : 'failed', problems: renewed ? [] : own, message: renewed ? undefined : summarizeProblems(own) || 'certbot did not renew it (see certbot\'s log)' });
    }
    // a renewed lineage is recorded by its deploy hook; only failures are new here
    await recordRenewals(core, store, outcomes.filter((o) => o.outcome === 'failed'));
    await enqueueDue(core, store);
    await deliverOutbox(core);
  }
  if (errors.length) throw new AutoSslError('PLUGIN_ERROR', errors.join('; '));
}

// ------------------------------------------------------------------------------------------- deploy hook

export interface DeployResult {
  lineage: string;
  domains: string[];
  ok: boolean;
  /** Run inside autossl's own certonly (an issue): nothing done, the issue installs the certificate itself. */
  skipped?: boolean;
  error?: AutoSslError;
  changedFiles: string[];
  serial: string;
  served: Array<{ host: string; port: number; servername: string }>;
  /** The pipeline run (absent when no vhost serves the lineage's names over TLS). */
  run?: DomainResult;
}

function isInside(child: string, parent: string): boolean {
  const rel = path.relative(parent, child);
  return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
}

/** Validates certbot's RENEWED_LINEAGE / RENEWED_DOMAINS before anything is touched. */
export function validateDeployEnv(configDir: string, env: NodeJS.ProcessEnv): { name: string; domains: string[] } {
  const lineage = env.RENEWED_LINEAGE;
  const domainsRaw = env.RENEWED_DOMAINS;
  const refuse = (why: string): never => {
    throw new AutoSslError('HOOK_INPUT_INVALID', `Refusing the deploy hook: ${why}. Nothing was touched.`, { hint: 'autossl deploy-hook is meant to be run by certbot after a renewal (see autossl install-hooks).' });
  };
  if (!lineage) refuse('RENEWED_LINEAGE is not set');
  if (domainsRaw === undefined || domainsRaw.trim() === '') refuse('RENEWED_DOMAINS is not set');
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(lineage!)) refuse('RENEWED_LINEAGE contains control characters');
  if (lineage!.length > 4096 || domainsRaw!.length > 100_000) refuse('RENEWED_LINEAGE or RENEWED_DOMAINS is far too long');
  if (!path.isAbsolute(lineage!) || lineage!.split('/').includes('..') || lineage!.split('/').includes('.')) refuse(`RENEWED_LINEAGE ${JSON.stringify(lineage)} is not a plain absolute path`);
  const live = path.resolve(configDir, 'live');
  if (path.dirname(path.resolve(lineage!)) !== live) refuse(`RENEWED_LINEAGE ${JSON.stringify(lineage)} is not a lineage directory inside ${live}`);
  const name = path.basename(lineage!);
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) refuse(`the lineage name ${JSON.stringify(name)} is not a certbot certificate name`);
  let realLive: string;
  let realLineage: string;
  let realConfig: string;
  try {
    realConfig = fs.realpathSync(configDir);
    realLive = fs.realpathSync(live);
    realLineage = fs.realpathSync(lineage!);
  } catch {
    return refuse(`RENEWED_LINEAGE ${JSON.stringify(lineage)} does not exist`);
  }
  if (path.dirname(realLineage) !== realLive) refuse(`RENEWED_LINEAGE ${JSON.stringify(lineage)} is a symlink leading outside ${live}`);
  for (const f of ['cert.pem', 'chain.pem', 'fullchain.pem', 'privkey.pem']) {
    let real: string;
    try {
      real = fs.realpathSync(path.join(lineage!, f));
    } catch {
      return refuse(`${path.join(lineage!, f)} does not exist`);
    }
    if (!isInside(real, realConfig)) refuse(`${path.join(lineage!, f)} leads outside ${configDir} (to ${real})`);
    if (!fs.statSync(real).isFile()) refuse(`${path.join(lineage!, f)} is not a regular file`);
  }
  const domains: string[] = [];
  for (const d of domainsRaw!.split(/[ ]+/).filter(Boolean)) {
    try {
      domains.push(normalizeDomain(d, { allowWildcard: true }));
    } catch (error) {
      refuse(`RENEWED_DOMAINS holds an invalid domain: ${(error as Error).message}`);
    }
  }
  return { name, domains };
}

/**
 * Whether the name's TLS block serves a certificate other than this lineage that covers it: an upload (kept out of
 * renewal) or another lineage (a wildcard spread over subdomain blocks). A renewal never takes a block from it.
 */
function servedByAnother(config: EngineCore['config'], tree: NginxTree, name: string, lineage: string): boolean {
  const block = tree.findServers(name).https[0];
  const p = block ? servedCertificatePath(tree, block) : null;
  if (!p) return false;
  const full = path.resolve(p);
  if (uploadDirOf(config, full)) return true;
  const live = path.resolve(config.certbot.configDir, 'live') + path.sep;
  if (!full.startsWith(live) || full.slice(live.length).split(path.sep)[0] === lineage) return false;
  try {
    return covers(readCertificate(full).names, name);
  } catch {
    return false;
  }
}

/** Re-pointing the block serving `name` at a certificate for `certNames` would take another name (or wildcard) it serves covered off HTTPS. */
function uncoversOthers(config: EngineCore['config'], tree: NginxTree, name: string, certNames: readonly string[]): boolean {
  const block = tree.findServers(name).https[0];
  if (!block) return false;
  const lost = lostCover(servedCover(tree, block, config.sites.flatMap((s) => [s.domain, ...s.aliases])), certNames);
  return lost.names.length + lost.patterns.length > 0;
}

/**
 * A renewed lineage into nginx: the names nginx already serves over TLS go through the pipeline from `issue` on
 * (vhost re-pointed, nginx -t, reload, TLS check, plugins); with none, nginx reloads to load the new files.
 */
export async function deployLineage(core: EngineCore, lineage: Lineage, certNames: readonly string[], domains: readonly string[], serial: string): Promise<DeployResult> {
  const { config } = core;
  const name = lineage.name;
  const store = core.services.state();
  // Only names nginx already serves over TLS are re-pointed; a name without a TLS server is left alone.
  const tree = core.services.loadTree();
  const tlsNames = domains.filter((d) => tree.findServers(d).https.length === 1 && !servedByAnother(config, tree, d, name) && !uncoversOthers(config, tree, d, certNames));
  const result: DeployResult = { lineage: name, domains: [...domains], ok: true, changedFiles: [], serial, served: [] };
  if (!tlsNames.length) {
    // nothing to re-point; nginx may still serve these files by a path of its own: reload to load them
    try {
      await core.services.nginx.test();
      await core.services.nginx.reload();
      await store.attempts.record({ kind: 'deploy', domain: domains[0] ?? name, lineage: name, ok: true });
    } catch (error) {
      result.ok = false;
      result.error = toAutoSslError(error);
      await store.attempts.record({ kind: 'deploy', domain: domains[0] ?? name, lineage: name, ok: false, code: result.error.code, message: result.error.message });
    }
  } else {
    const site = tlsNames.map((n) => siteOfName(config, n)).find((s) => s !== undefined);
    const { ctx, abort } = core.context(tlsNames[0]!, 'deploy', {
      lineage,
      // a lineage autossl does not manage keeps its vhost as it is: no redirect or HSTS it was not asked for
      plan: { names: tlsNames, certName: name, redirect: site ? site.redirect ?? config.defaults.redirect : false, hsts: site ? site.hsts ?? config.defaults.hsts : false },
    });
    ctx.needsReload = true; // the certificate files behind the vhost's paths changed
    const run = await core.run(ctx, abort);
    result.run = run;
    result.ok = run.ok;
    result.error = run.error;
    result.changedFiles = run.files.map((f) => f.file);
    result.served = run.ok ? ctx.tlsEndpoints : [];
  }
  return result;
}

export async function deploy(core: EngineCore, env: NodeJS.ProcessEnv): Promise<DeployResult> {
  const { config } = core;
  const { name, domains } = validateDeployEnv(config.certbot.configDir, env);
  // certbot 5 runs the deploy hook inside autossl's own certonly: the issue run installs it (once), and an issue
  // is no renewal to notify about
  if (insideAutosslCertonly(env)) return { lineage: name, domains, ok: true, skipped: true, changedFiles: [], serial: '', served: [] };
  await core.recoverFirst();
  const lineage = readLineage(config.certbot.configDir, name);
  if (!lineage) throw new AutoSslError('CERTBOT_LINEAGE_UNKNOWN', `certbot has no renewal config for ${name}.`);
  const store = core.services.state();
  const info = readCertificate(lineage.cert);
  const result = await deployLineage(core, lineage, info.names, domains, info.serial);
  const refs = vhostCertificateRefs(core.services.loadTree(), config.certbot.configDir);
  const rows = statusRows(await scanLineages(config.certbot.configDir, store, refs), refs, Date.now(), config.renewal.windowFraction);
  const row = rows.find((r) => r.lineage === name) ?? { lineage: name, names: info.names, notAfter: info.notAfter.toISOString(), daysLeft: null };
  const kind = result.ok ? 'renewed' : 'deploy-failed';
  await enqueue(store, notification(core, kind, `${kind}:${name}:${info.serial}`, row, result.error ? { code: result.error.code, message: result.error.message } : undefined));
  await deliverOutbox(core);
  return result;
}

// ---------------------------------------------------------------------------------------- DNS-01 manual hooks

const VALIDATION = /^[A-Za-z0-9_-]{1,256}$/;

/** Validates certbot's CERTBOT_DOMAIN / CERTBOT_VALIDATION before anything runs. */
export function validateDnsEnv(env: NodeJS.ProcessEnv): { domain: string; value: string } {
  const refuse = (why: string): never => {
    throw new AutoSslError('HOOK_INPUT_INVALID', `Refusing the DNS hook: ${why}. Nothing was touched.`);
  };
  const raw = env.CERTBOT_DOMAIN;
  const value = env.CERTBOT_VALIDATION;
  if (!raw) refuse('CERTBOT_DOMAIN is not set');
  if (!value) refuse('CERTBOT_VALIDATION is not set');
  if (!VALIDATION.test(value!)) refuse(`CERTBOT_VALIDATION ${JSON.stringify(value!.slice(0, 80))} is not a base64url key authorization digest`);
  let domain: string;
  try {
    domain = normalizeDomain(raw);
  } catch (error) {
    return refuse(`CERTBOT_DOMAIN is not a domain: ${(error as Error).message}`);
  }
  return { domain, value: value! };
}

/** The DNS-01 solver the site of `domain` uses: its plan and challenge hooks, run as for an issue. */
async function solverFor(core: EngineCore, domain: string): Promise<DnsSolver> {
  const site = siteOfName(core.config, domain) ?? siteOfName(core.config, `*.${domain}`);
  if (!site) throw new AutoSslError('HOOK_INPUT_INVALID', `No site in the config has the name ${domain} (or *.${domain}); certbot asked for its DNS record.`, { hint: 'Add the site back to the config, or delete the lineage (certbot delete --cert-name ...).' });
  const { ctx, abort } = core.context(site.domain, 'dns-hook');
  const run = await core.run(ctx, abort);
  if (!run.ok) throw run.error ?? new AutoSslError('INTERNAL', 'The challenge stage failed.');
  if (ctx.challenge?.type !== 'dns-01' || !ctx.challenge.solver) throw new AutoSslError('DNS_PROVIDER_MISSING', `${site.domain} has no DNS provider: no plugin answered its dns-01 challenge.`);
  return ctx.challenge.solver;
}

/** Waits until the configured resolvers answer the TXT value (a bounded wait; certbot asks the CA right after). */
async function waitForPropagation(core: EngineCore, record: DnsRecord): Promise<void> {
  const { dns01, preflight } = core.config;
  const servers = dns01.resolvers.length ? dns01.resolvers : preflight.resolvers;
  const { visible, seen } = await waitForTxt(record.fqdn, record.value, { servers, queryTimeoutMs: preflight.timeoutMs, timeoutMs: dns01.propagationTimeoutMs });
  if (visible) return;
  throw new AutoSslError('DNS_PROPAGATION_TIMEOUT', `The TXT record ${record.fqdn} = ${JSON.stringify(record.value)} was not visible ${servers.length ? `at ${servers.join(', ')}` : 'to the system resolver'} within ${Math.round(dns01.propagationTimeoutMs / 1000)} s${seen.length ? ` (it answers ${seen.map((v) => JSON.stringify(v)).join(', ')})` : ''}.`);
}

const DNS_UNDO = { plugin: 'dns-01', kind: 'txt' };

export type { DnsPhase };

/** Where certbot's DNS hooks are (they run in processes of their own): for the agent's wildcard progress. */
async function progress(store: Store, domain: string, phase: DnsPhase, message: string): Promise<void> {
  try {
    await store.dnsProgress.set(domain, { phase, message, at: Date.now() });
  } catch {
    // a report only
  }
}

/** The last phase certbot's DNS hooks reported for a name (without "*."), if any. */
export async function dnsProgress(store: Store, domain: string): Promise<{ phase: DnsPhase; message: string; at: number } | null> {
  try {
    return await store.dnsProgress.get(domain);
  } catch {
    return null;
  }
}

/** Registers the undo step that removes a TXT record left behind by a certbot run that died before its cleanup hook. */
export function applyDnsUndo(undo: UndoService, core: () => EngineCore): void {
  undo.handle(DNS_UNDO.plugin, DNS_UNDO.kind, async (payload) => {
    const record = payload as unknown as DnsRecord;
    const solver = await solverFor(core(), record.domain);
    await solver.cleanup(record);
  });
}

export async function dnsHook(core: EngineCore, phase: 'auth' | 'cleanup', env: NodeJS.ProcessEnv): Promise<void> {
  const { domain, value } = validateDnsEnv(env);
  const record: DnsRecord = { domain, fqdn: `_acme-challenge.${domain}`, value };
  const solver = await solverFor(core, domain);
  const run = certbotRun();
  const store = core.services.state();
  if (phase === 'auth') {
    // if certbot dies before its cleanup hook, recovery removes the record
    await core.services.undo.record(DNS_UNDO.plugin, run.runId, DNS_UNDO.kind, { ...record }, 'always', run.owner);
    await progress(store, domain, 'dns_challenge', `Creating the TXT record ${record.fqdn} (${solver.name})`);
    await solver.present(record);
    const started = Date.now();
    await progress(store, domain, 'dns_propagation', `Waiting for ${record.fqdn} to be visible`);
    try {
      await waitForPropagation(core, record);
    } catch (error) {
      await progress(store, domain, 'dns_propagation', toAutoSslError(error).message);
      throw error;
    }
    const message = `TXT ${record.fqdn} visible after ${Date.now() - started} ms`;
    await progress(store, domain, 'le_verify', `${message}; the CA checks it now`);
    core.emit({ domain, stage: 'dns-01', plugin: solver.name, status: 'info', message });
    return;
  }
  await solver.cleanup(record);
  for (const step of await store.undo.list({ runId: run.runId, state: 'pending' })) {
    const p = JSON.parse(step.payload) as DnsRecord;
    if (step.plugin === DNS_UNDO.plugin && p.fqdn === record.fqdn && p.value === record.value) await store.undo.finish(step.id);
  }
}

// ----------------------------------------------------------------------------------------- install-hooks

const DEPLOY_HOOK_COMMENT = 'Installed by "autossl install-hooks": after every certbot renewal, the renewed lineage goes through autossl\'s\npipeline (vhost re-pointed, nginx -t, reload, TLS check, plugins). certbot sets RENEWED_LINEAGE and RENEWED_DOMAINS.';

/** autossl's deploy-hook command in a script or a renewal config: the word as hookCommand writes it (shell-quoted) or bare. */
const DEPLOY_HOOK_WORD = /(?:^|[\s'"])deploy-hook(?=['"\s]|$)/m;

/** autossl's deploy hook among certbot's (renewal-hooks/deploy/), if one is there. */
export function installedDeployHook(configDir: string): string | null {
  // certbot runs only executable files there
  return firstInSmallFiles(path.join(configDir, 'renewal-hooks', 'deploy'), 64 * 1024, (file, text, st) => (st.mode & 0o111 && DEPLOY_HOOK_WORD.test(text) ? file : null));
}

/** Whether a lineage's renewal config names autossl's deploy hook (certbot stores --deploy-hook as renew_hook). */
function lineageNamesDeployHook(configDir: string, lineage: string): boolean {
  try {
    const line = /^\s*renew_hook\s*=(.*)$/m.exec(fs.readFileSync(path.join(configDir, 'renewal', `${lineage}.conf`), 'utf8'));
    return line !== null && DEPLOY_HOOK_WORD.test(line[1]!);
  } catch {
    return false;
  }
}

/**
 * After a run that created lineages: makes sure certbot's renewals of them reach nginx (without the deploy hook,
 * `certbot renew` writes a new certificate nginx never loads, and nothing says so). Installs the deploy hook when
 * neither it nor the lineages' renewal configs have it; says what it did (null: it was in place).
 */
export function ensureDeployHook(core: EngineCore, lineages: readonly string[]): { message: string; warning: boolean } | null {
  const { configDir } = core.config.certbot;
  if (!lineages.length || installedDeployHook(configDir) || lineages.every((l) => lineageNamesDeployHook(configDir, l))) return null;
  const file = path.join(configDir, 'renewal-hooks', 'deploy', 'autossl');
  const config = core.config.filepath;
  if (!config && !core.config.zeroConfig) {
    // an engine made from a config object: no command line could find that config again
    return { warning: true, message: `certbot renew would write renewed certificates of ${lineages.join(', ')} that nginx never loads: there is no deploy hook in ${path.dirname(file)}, and this config has no file for one to use ("autossl setup --config FILE" installs it)` };
  }
  try {
    writeHookScript(file, ['deploy-hook'], config, DEPLOY_HOOK_COMMENT);
  } catch (error) {
    return { warning: true, message: `certbot renew would write renewed certificates of ${lineages.join(', ')} that nginx never loads: installing the deploy hook ${file} failed (${toAutoSslError(error).message}); run "autossl setup"` };
  }
  return { warning: false, message: `installed certbot's deploy hook ${file}${config ? ` (with ${config})` : ' (no config file: it discovers this server as this run did)'}: every certbot renew, by its timer, cron or by hand, now installs the renewed certificate and reloads nginx ("autossl setup" adds the pre/post hooks and a timer)` };
}

/**
 * Puts autossl's executables into certbot's renewal-hooks directories: every renewal, whoever starts it (certbot's
 * timer, autossl renew, certbot by hand), runs the deploy hook per renewed lineage and the pre/post hooks around
 * the run.
 */
export function installHooks(core: EngineCore): string[] {
  const base = path.join(core.config.certbot.configDir, 'renewal-hooks');
  const config = core.config.filepath;
  return [
    writeHookScript(path.join(base, 'deploy', 'autossl'), ['deploy-hook'], config, DEPLOY_HOOK_COMMENT),
    writeHookScript(path.join(base, 'pre', 'autossl'), ['renew-hook', 'pre'], config, 'Installed by "autossl install-hooks": runs the beforeRenew hook before certbot renews anything.'),
    writeHookScript(path.join(base, 'post', 'autossl'), ['renew-hook', 'post'], config, 'Installed by "autossl install-hooks": runs the afterRenew hook after certbot\'s renewal attempts, records\nfailed renewals and delivers notifications.'),
  ];
}
