/**
 * Renewal: `autossl status`, `autossl renew`, `autossl deploy-hook` (certbot's deploy hook) and
 * `autossl install-hooks`. certbot (its timer, or `autossl renew`) renews; the deploy hook re-points the vhosts
 * and reloads nginx; every outcome lands in the state store, and failures and certificates entering their
 * renewal window are announced on the `notify` hook.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execCertbot, summarizeProblems, type AcmeProblem } from '../certbot/certbot.js';
import { normalizeSerial, readCertificate, readLineage } from '../certbot/lineage.js';
import { normalizeDomain } from '../domain.js';
import type { AutoSsl } from '../engine.js';
import { AutoSslError } from '../errors.js';
import { newVhostEdit, planHttpsEdit } from '../nginx/edit.js';
import { addHttpsDirectives } from '../stages/vhost-https.js';
import { EditTransaction } from '../nginx/transaction.js';
import type { Notification } from '../pipeline/context.js';
import { servedSerial } from '../stages/verify-tls.js';
import { scanLineages, vhostCertificateRefs } from './scan.js';
import { statusRows, type StatusRow } from './status.js';

// ------------------------------------------------------------------------------------------------ status

export async function collectStatus(engine: AutoSsl, now = Date.now()): Promise<StatusRow[]> {
  const { config } = engine;
  let refs: ReturnType<typeof vhostCertificateRefs> = [];
  try {
    refs = vhostCertificateRefs(engine.loadTree(), config.certbot.configDir);
  } catch {
    refs = []; // no nginx config here: certificates are still tracked
  }
  const store = engine.state();
  const certs = scanLineages(config.certbot.configDir, store, refs);
  const rows = statusRows(certs, refs, now, config.renewal.windowFraction);
  // A certificate entering its renewal window (or expiring) without a renewal is announced once per expiry date.
  const fresh = store.db.transaction(() => rows.filter((row) => (row.state === 'due' || row.state === 'expired') && row.lineage && store.markNotified(row.lineage, row.state, row.notAfter ?? ''))).immediate();
  for (const row of fresh) await engine.hooks.notify.promise(notification(row.state === 'due' ? 'renewal-due' : 'expired', row));
  return rows;
}

const HOST = os.hostname();

function notification(kind: Notification['kind'], row: Pick<StatusRow, 'lineage' | 'names' | 'notAfter' | 'daysLeft'>, error?: Notification['error']): Notification {
  return { kind, lineage: row.lineage, names: row.names, notAfter: row.notAfter, daysLeft: row.daysLeft, error, at: new Date().toISOString(), host: HOST };
}

// ------------------------------------------------------------------------------------------------- renew

export interface RenewOutcome {
  lineage: string;
  names: string[];
  outcome: 'renewed' | 'not-due' | 'failed';
  problems: AcmeProblem[];
  message?: string;
}

/** certbot's end-of-run summary: "  /etc/letsencrypt/live/x/fullchain.pem (success|failure|skipped)". */
export function parseRenewSummary(output: string): Map<string, 'success' | 'failure' | 'skipped'> {
  const out = new Map<string, 'success' | 'failure' | 'skipped'>();
  const re = /\/live\/([^/\s]+)\/fullchain\.pem\b.*\((success|failure|skipped)\)\s*$/gm;
  for (let m = re.exec(output); m; m = re.exec(output)) out.set(m[1]!, m[2] as 'success' | 'failure' | 'skipped');
  return out;
}

export async function renew(engine: AutoSsl, options: { certName?: string; force?: boolean } = {}): Promise<RenewOutcome[]> {
  const { config } = engine;
  const store = engine.state();
  if (options.certName !== undefined && !readLineage(config.certbot.configDir, options.certName)) {
    throw new AutoSslError('CONFIG_INVALID', `certbot has no certificate named ${JSON.stringify(options.certName)} in ${config.certbot.configDir}.`, { hint: 'autossl status lists the certificate names.' });
  }
  const before = scanLineages(config.certbot.configDir, store);
  const args = ['renew', '--no-random-sleep-on-renew'];
  if (options.certName) args.push('--cert-name', options.certName);
  if (options.force) args.push('--force-renewal');
  const run = await execCertbot(config.certbot, args);
  const summary = parseRenewSummary(`${run.stdout}\n${run.stderr}`);
  const after = scanLineages(config.certbot.configDir, store);
  const outcomes: RenewOutcome[] = [];
  for (const cert of after) {
    if (options.certName && cert.lineage !== options.certName) continue;
    const prior = before.find((c) => c.lineage === cert.lineage);
    const said = summary.get(cert.lineage);
    const changed = prior?.serial !== cert.serial;
    // certbot's summary says it; a changed serial confirms it even when certbot's output was cut short
    const outcome: RenewOutcome['outcome'] = said === 'failure' ? 'failed' : said === 'success' || changed ? 'renewed' : said === 'skipped' ? 'not-due' : run.exitCode === 0 ? 'not-due' : 'failed';
    const failedLine = new RegExp(`Failed to renew certificate ${cert.lineage.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} with error: (.+)`).exec(`${run.stdout}\n${run.stderr}`)?.[1];
    const problems = outcome === 'failed' ? run.problems.filter((p) => !p.domain || cert.names.includes(p.domain)) : [];
    const message = outcome === 'failed' ? summarizeProblems(problems) || failedLine || run.stderr.trim().split('\n').pop() || 'certbot renew failed' : undefined;
    outcomes.push({ lineage: cert.lineage, names: cert.names, outcome, problems, message });
  }
  for (const o of outcomes) {
    if (o.outcome === 'not-due') continue;
    store.recordAttempt({ kind: 'renew', domain: o.names[0] ?? o.lineage, lineage: o.lineage, ok: o.outcome === 'renewed', code: o.outcome === 'failed' ? 'CERTBOT_FAILED' : undefined, message: o.message });
  }
  const rows = statusRows(store.certificates(), [], Date.now(), config.renewal.windowFraction);
  for (const o of outcomes.filter((x) => x.outcome === 'failed')) {
    const row = rows.find((r) => r.lineage === o.lineage);
    await engine.hooks.notify.promise(notification('renewal-failed', { lineage: o.lineage, names: o.names, notAfter: row?.notAfter ?? null, daysLeft: row?.daysLeft ?? null }, { code: 'CERTBOT_FAILED', message: o.message ?? null }));
  }
  return outcomes;
}

// ------------------------------------------------------------------------------------------- deploy hook

export interface DeployResult {
  lineage: string;
  domains: string[];
  changedFiles: string[];
  serial: string;
  served: Array<{ host: string; port: number; servername: string; ok: boolean }>;
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
    throw new AutoSslError('CONFIG_INVALID', `Refusing the deploy hook: ${why}. Nothing was touched.`, { hint: 'autossl deploy-hook is meant to be run by certbot after a renewal (see autossl install-hooks).' });
  };
  if (!lineage) refuse('RENEWED_LINEAGE is not set');
  if (domainsRaw === undefined || domainsRaw.trim() === '') refuse('RENEWED_DOMAINS is not set');
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(lineage!)) refuse('RENEWED_LINEAGE contains control characters');
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

export async function deployHook(engine: AutoSsl, env: NodeJS.ProcessEnv = process.env): Promise<DeployResult> {
  const { config } = engine;
  const { name, domains } = validateDeployEnv(config.certbot.configDir, env);
  const lineage = readLineage(config.certbot.configDir, name);
  if (!lineage) throw new AutoSslError('CERTBOT_LINEAGE_UNKNOWN', `certbot has no renewal config for ${name}.`);
  const store = engine.state();
  const info = readCertificate(lineage.cert);
  // Only names nginx already serves over TLS are re-pointed; a name without a TLS server is left alone.
  const tree = engine.loadTree();
  const tlsNames = domains.filter((d) => !d.startsWith('*.') && tree.findServers(d).https.length === 1);
  const edit = addHttpsDirectives(newVhostEdit(tlsNames), lineage); // no listen: only re-point the certificate
  const plan = tlsNames.length ? planHttpsEdit(tree, edit, { nginxVersion: await engine.nginx.version(), httpsPort: config.nginx.httpsPort }) : { edits: [], tlsEndpoints: [] };
  const tx = new EditTransaction({ journalDir: path.join(config.stateDir, 'journal') });
  try {
    for (const e of plan.edits) await tx.write(e.file, e.before, e.after);
    await engine.nginx.test();
    await engine.nginx.reload(); // always: the certificate files changed even when no vhost did
  } catch (error) {
    await tx.rollback();
    if (plan.edits.length) {
      await engine.nginx.test().then(() => engine.nginx.reload()).catch(() => undefined);
    }
    const e = error instanceof AutoSslError ? error : new AutoSslError('INTERNAL', (error as Error).message, { cause: error });
    store.recordAttempt({ kind: 'deploy', domain: domains[0] ?? name, lineage: name, ok: false, code: e.code, message: e.message });
    throw e;
  }
  await tx.commit();
  const want = normalizeSerial(info.serial);
  const served: DeployResult['served'] = [];
  for (const ep of plan.tlsEndpoints) {
    const deadline = Date.now() + config.defaults.verifyTimeoutMs;
    let ok = false;
    while (!ok && Date.now() <= deadline) {
      ok = await servedSerial(ep.host, ep.port, ep.servername).then((s) => s === want, () => false);
      if (!ok) await new Promise((r) => setTimeout(r, 100));
    }
    served.push({ ...ep, ok });
  }
  const refs = vhostCertificateRefs(engine.loadTree(), config.certbot.configDir);
  scanLineages(config.certbot.configDir, store, refs);
  const notServed = served.filter((s) => !s.ok);
  store.recordAttempt({ kind: 'deploy', domain: domains[0] ?? name, lineage: name, ok: notServed.length === 0, code: notServed.length ? 'TLS_VERIFY_FAILED' : undefined, message: notServed.length ? `not served at ${notServed.map((s) => `${s.host}:${s.port}`).join(', ')}` : undefined });
  return { lineage: name, domains, changedFiles: plan.edits.map((e) => e.file), serial: want, served };
}

// ----------------------------------------------------------------------------------------- install-hooks

const shellQuote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/** Places an executable in <certbot config>/renewal-hooks/deploy/ so every certbot renewal runs the deploy hook. */
export function installHooks(engine: AutoSsl, configFile: string | undefined): string {
  const dir = path.join(engine.config.certbot.configDir, 'renewal-hooks', 'deploy');
  fs.mkdirSync(dir, { recursive: true });
  const cli = fileURLToPath(new URL('../cli.js', import.meta.url));
  const hook = path.join(dir, 'autossl');
  const configArgs = configFile ? ` --config ${shellQuote(path.resolve(configFile))}` : '';
  const script = `#!/bin/sh\n# Installed by "autossl install-hooks": after every certbot renewal, point the vhosts at the renewed\n# lineage, validate with nginx -t and reload nginx (certbot sets RENEWED_LINEAGE and RENEWED_DOMAINS).\nexec ${shellQuote(process.execPath)} ${shellQuote(cli)} deploy-hook${configArgs}\n`;
  const temp = `${hook}.tmp-${process.pid}`;
  fs.writeFileSync(temp, script, { mode: 0o755 });
  fs.renameSync(temp, hook);
  return hook;
}
