/**
 * Running certbot: argument arrays through execa (never a shell), non-interactive, with the ACME error pulled out
 * of its output, or out of its log when certbot 2.1 prints only a Python traceback.
 *
 * certbot takes a non-blocking lock on its config/work/logs directories (certbot #8703): a second run on the
 * same directories exits at once. Runs sharing directories are therefore queued here, per directory set, so
 * many domains in one process never trip over the lock.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { withLock } from '../lock.js';
import { spawnOffLoop } from '../spawn.js';
import { AutoSslError } from '../errors.js';
import { readLineage, type Lineage } from './lineage.js';
import { CERTONLY_PARENT_ENV } from './hooks.js';
import { profileArgs, type Profile } from '../issuer/profile.js';
import { parsePaused } from '../renewal/backoff.js';
import type { AcmeProblem } from '../issuer/issuer.js';

export interface CertbotSettings {
  binary: string;
  configDir: string;
  workDir: string;
  logsDir: string;
  /** ACME directory URL; certbot's default (Let's Encrypt production) when absent. */
  server?: string;
  /** Account email; none registers without one. */
  email?: string;
  keyType: 'ecdsa' | 'rsa';
  extraArgs: string[];
  /** Extra environment (REQUESTS_CA_BUNDLE for a private CA). */
  env?: Record<string, string>;
  timeoutMs: number;
  /**
   * Where the cross-process lock around certbot runs lives (autossl's state dir): two autossl processes (the CLI
   * and the agent, or two runs) wait for each other instead of tripping over certbot's own lock.
   */
  lockDir?: string;
  /** Where to write the certbot process's pid (private orders: a restart waits for an orphaned certbot). */
  pidFile?: string;
}

export type { AcmeProblem };

const queues = new Map<string, Promise<unknown>>();

function serialized<T>(key: string, fn: () => Promise<T>): Promise<T> {
  const previous = queues.get(key) ?? Promise.resolve();
  const next = previous.catch(() => undefined).then(fn);
  queues.set(key, next);
  void next
    .finally(() => {
      if (queues.get(key) === next) queues.delete(key);
    })
    .catch(() => undefined);
  return next;
}

/** autossl's cross-process lock for certbot runs on a directory set (under stateDir/locks). */
export function certbotLockFile(s: CertbotSettings): string {
  const key = `${s.configDir}\0${s.workDir}\0${s.logsDir}`;
  return path.join(s.lockDir ?? path.join(s.configDir, '.autossl-locks'), `certbot-${crypto.createHash('sha1').update(key).digest('hex').slice(0, 16)}.lock`);
}

export function commonArgs(s: CertbotSettings): string[] {
  const args = ['--non-interactive', '--config-dir', s.configDir, '--work-dir', s.workDir, '--logs-dir', s.logsDir];
  if (s.server) args.push('--server', s.server);
  return args;
}

/**
 * The ACME problems certbot reports ("Domain: / Type: / Detail:" up to certbot 4, "Identifier: / Type: / Detail:"
 * from certbot 5 on), or its one-line error.
 */
export function parseCertbotProblems(output: string): AcmeProblem[] {
  const problems: AcmeProblem[] = [];
  const re = /(?:Domain|Identifier):\s*(\S+)\s*\n\s*Type:\s*(\S+)\s*\n\s*Detail:\s*(.+)/g;
  for (let m = re.exec(output); m; m = re.exec(output)) problems.push({ domain: m[1], type: m[2], detail: m[3]!.trim() });
  if (problems.length) return problems;
  const unexpected = /An unexpected error occurred:\s*\n(.+)/.exec(output);
  if (unexpected && !/Traceback|AttributeError: can't set attribute/.test(unexpected[1]!)) problems.push({ detail: unexpected[1]!.trim() });
  return problems;
}

/** The last run's part of certbot's letsencrypt.log (certbot starts each run's log with a "Root logging level" line). */
export function lastLoggedRun(logsDir: string): string {
  let log: string;
  try {
    log = fs.readFileSync(path.join(logsDir, 'letsencrypt.log'), 'utf8');
  } catch {
    return '';
  }
  return log.slice(Math.max(0, log.lastIndexOf('Root logging level')));
}

/** certbot 2.1 sometimes prints only a traceback; the ACME error document is in letsencrypt.log. */
export function problemsFromLog(logsDir: string): AcmeProblem[] {
  return problemsInLog(lastLoggedRun(logsDir));
}

/**
 * The text about each lineage of a `certbot renew`: it handles one lineage after another, each starting with
 * "Processing <config-dir>/renewal/<name>.conf" (in its output, and as "Notifying user: Processing ..." in its log).
 */
export function lineageSections(text: string): Map<string, string> {
  const sections = new Map<string, string>();
  // certbot wraps its messages at 80 columns (never inside a word): a long path goes on the next line
  const starts = [...text.matchAll(/^.*Processing\s+\S*\/renewal\/([^/\s]+)\.conf[ \t]*$/gm)];
  starts.forEach((m, i) => sections.set(m[1]!, text.slice(m.index, starts[i + 1]?.index ?? text.length)));
  return sections;
}

/**
 * The ACME problems of one lineage of a `certbot renew`: from its own section of certbot's output, else of the
 * log. A problem is never taken from another lineage's section (certbot 5's "Identifier:" once went unread and the
 * log's first error was charged to every lineage); only when certbot's text has no sections at all and it handled
 * this one lineage alone is the whole text its own.
 */
export function lineageProblems(
  run: { stdout: string; stderr: string },
  logsDir: string,
  lineage: { name: string; names: readonly string[] },
  alone: boolean,
): AcmeProblem[] {
  const log = lastLoggedRun(logsDir);
  const output = `${run.stdout}\n${run.stderr}`;
  // the sections are in what certbot prints on stdout; its stderr has the summary of all lineages
  const fromOutput = lineageSections(run.stdout);
  const fromLog = lineageSections(log);
  let problems: AcmeProblem[] = [];
  if (fromOutput.has(lineage.name)) problems = parseCertbotProblems(fromOutput.get(lineage.name)!);
  if (!problems.length && fromLog.has(lineage.name)) problems = problemsInLog(fromLog.get(lineage.name)!);
  if (!problems.length && alone && !fromOutput.size && !fromLog.size)
    problems = parseCertbotProblems(output).length ? parseCertbotProblems(output) : problemsInLog(log);
  return problems.filter((p) => !p.domain || lineage.names.includes(p.domain));
}

function problemsInLog(lastRun: string): AcmeProblem[] {
  const problems: AcmeProblem[] = [];
  const re = /"type":\s*"urn:ietf:params:acme:error:([^"]+)",\s*"detail":\s*"((?:[^"\\]|\\.)*)"/g;
  for (let m = re.exec(lastRun); m; m = re.exec(lastRun)) problems.push({ type: m[1], detail: JSON.parse(`"${m[2]}"`) as string });
  if (problems.length) return problems;
  const errorLine = /^.*(?:Error|error):.*$/m.exec(
    lastRun
      .split('\n')
      .filter((l) => /Error|error/.test(l) && !/DEBUG/.test(l))
      .pop() ?? '',
  );
  return errorLine ? [{ detail: errorLine[0].trim() }] : [];
}

export interface CertonlyRequest {
  certName: string;
  names: string[];
  force?: boolean;
  /** --preferred-profile / --required-profile (certbot 4.0 and newer; planning refused older ones). */
  profile?: Profile;
}

export interface CertbotRun {
  exitCode: number;
  stdout: string;
  stderr: string;
  problems: AcmeProblem[];
}

/** Runs certbot (queued per directory set) and returns its exit code, output and the ACME problems found. */
export async function execCertbot(s: CertbotSettings, args: string[], extraEnv: Record<string, string> = {}): Promise<CertbotRun> {
  const full = [...args, ...commonArgs(s), ...s.extraArgs];
  const key = `${s.configDir}\0${s.workDir}\0${s.logsDir}`;
  const run = async (): Promise<CertbotRun> => {
    // another certbot on these directories (certbot.timer, an admin) makes certbot exit at once: wait for it
    const deadline = Date.now() + s.timeoutMs;
    for (;;) {
      const result = await runOnce();
      if (result.exitCode === 0 || !/Another instance of Certbot is already running/.test(result.stderr) || Date.now() > deadline) return result;
      await new Promise((r) => setTimeout(r, 1000));
    }
  };
  const runOnce = async (): Promise<CertbotRun> => {
    // started off the event loop (see spawn.ts): one certbot per domain of a batch
    const child = spawnOffLoop(s.binary, full, { timeoutMs: s.timeoutMs, env: { ...process.env, ...s.env, ...extraEnv }, pidFile: s.pidFile });
    const result = await child.result;
    if (result.error && !result.timedOut) throw new AutoSslError('CERTBOT_NOT_FOUND', `Cannot run ${s.binary}: ${result.error}`);
    if (result.signal && !result.timedOut) {
      // certbot started and was killed (OOM killer, a supervisor, an admin): not a missing binary, and not the CA's
      // verdict either (no failed validation is counted for it)
      throw new AutoSslError('CERTBOT_FAILED', `certbot was killed by ${result.signal} before it finished; the order was not completed.`, {
        hint: "Something outside autossl killed certbot (the kernel's OOM killer, a supervisor's timeout, an admin): check the system log (journalctl -k), then run again.",
        details: { signal: result.signal, problems: [], log: path.join(s.logsDir, 'letsencrypt.log') },
      });
    }
    const stdout = String(result.stdout);
    const stderr = String(result.stderr);
    if (result.timedOut) {
      throw new AutoSslError('TIMEOUT', `certbot did not finish within ${s.timeoutMs / 1000} s.`, {
        hint: 'Check that the ACME server is reachable and that no other certbot holds its lock.',
        details: { stderr },
      });
    }
    let problems: AcmeProblem[] = [];
    if (result.exitCode !== 0) {
      problems = parseCertbotProblems(`${stdout}\n${stderr}`);
      if (problems.length === 0) problems = problemsFromLog(s.logsDir);
      if (problems.length === 0 && /Another instance of Certbot is already running/.test(stderr))
        problems.push({ detail: 'Another instance of Certbot is already running' });
    }
    return { exitCode: result.exitCode ?? 1, stdout, stderr, problems };
  };
  if (!s.lockDir) return serialized(key, run);
  return withLock(certbotLockFile(s), { timeoutMs: Math.max(s.timeoutMs * 5, 600_000), what: `certbot on ${s.configDir}` }, run);
}

export function summarizeProblems(problems: readonly AcmeProblem[]): string {
  return problems.map((p) => `${p.domain ? `${p.domain}: ` : ''}${p.type ? `${p.type}: ` : ''}${p.detail}`).join('; ');
}

/** Runs certbot; a non-zero exit becomes CERTBOT_FAILED carrying the ACME error itself. */
/**
 * An ACME rate-limit answer (HTTP 429, `urn:ietf:params:acme:error:rateLimited`, or certbot's "too many ..."):
 * until when, if it says, else an hour from now.
 */
export function rateLimitOf(
  run: { stdout: string; stderr: string; problems: readonly AcmeProblem[] },
  now = Date.now(),
): { until: number; message: string } | null {
  const text = `${run.problems.map((p) => `${p.type ?? ''} ${p.detail}`).join('\n')}\n${run.stdout}\n${run.stderr}`;
  const limited =
    run.problems.find((p) => p.type === 'rateLimited') ??
    (/\btoo many (certificates|failed authorizations|new orders|registrations|requests)\b|\brateLimited\b/i.test(text)
      ? { detail: /.*too many.*$/im.exec(text)?.[0]?.trim() ?? 'rate limited' }
      : null);
  if (!limited) return null;
  let until = now + 3_600_000;
  const after = /retry after (\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d)(?:\s*UTC|Z)?/i.exec(text);
  const seconds = /Retry-After:?\s*(\d+)/i.exec(text);
  if (after) until = Date.parse(`${after[1]!.replace(' ', 'T')}Z`);
  else if (seconds) until = now + Number(seconds[1]) * 1000;
  return { until: Number.isFinite(until) ? until : now + 3_600_000, message: limited.detail };
}

export async function runCertbot(s: CertbotSettings, args: string[], extraEnv: Record<string, string> = {}): Promise<{ stdout: string; stderr: string }> {
  const run = await execCertbot(s, args, extraEnv);
  if (run.exitCode !== 0) {
    // the CA paused the account for names (a rateLimited problem too): per name, not the whole account's limit
    const paused = parsePaused(`${run.problems.map((p) => p.detail).join('\n')}\n${run.stdout}\n${run.stderr}`);
    if (paused) {
      throw new AutoSslError(
        'ACME_PAUSED',
        `The CA paused this account for ${paused.names.join(', ') || 'these names'} after too many failed validations; lift the pause at ${paused.url}`,
        { details: { names: paused.names, unpauseUrl: paused.url, problems: run.problems, server: s.server ?? 'letsencrypt' } },
      );
    }
    const limit = rateLimitOf(run);
    if (limit) {
      throw new AutoSslError('RATE_LIMITED', `The CA refused the order: rate limited until ${new Date(limit.until).toISOString()} (${limit.message}).`, {
        details: { until: new Date(limit.until).toISOString(), problems: run.problems, server: s.server ?? 'letsencrypt' },
      });
    }
    const summary = run.problems.length ? summarizeProblems(run.problems) : (run.stderr.trim().split('\n').pop() ?? 'certbot failed');
    throw new AutoSslError('CERTBOT_FAILED', `certbot failed: ${summary}`, {
      details: { exitCode: run.exitCode, problems: run.problems, stderr: run.stderr.slice(-4000), log: path.join(s.logsDir, 'letsencrypt.log') },
    });
  }
  return { stdout: run.stdout, stderr: run.stderr };
}

/** What every `certbot certonly` of autossl asks: the lineage, its names (changed names update it), the account. */
function certonlyArgs(s: CertbotSettings, req: CertonlyRequest, authenticator: string[]): string[] {
  const args = ['certonly', ...authenticator, '--cert-name', req.certName, '-d', req.names.join(','), '--agree-tos', '--key-type', s.keyType];
  args.push(...(s.email ? ['-m', s.email] : ['--register-unsafely-without-email']));
  // --force-renewal also re-orders a lineage that is not due; names added to a lineage need a new order anyway
  args.push(req.force ? '--force-renewal' : '--keep-until-expiring');
  args.push(...profileArgs(req.profile));
  return args;
}

/** `certbot certonly --webroot`: returns the lineage certbot reports. */
export async function certonlyWebroot(s: CertbotSettings, req: CertonlyRequest & { webroot: string }): Promise<Lineage> {
  const { stdout, stderr } = await runCertbot(s, certonlyArgs(s, req, ['--webroot', '-w', req.webroot]), { [CERTONLY_PARENT_ENV]: String(process.pid) });
  return lineageFromOutput(s.configDir, `${stdout}\n${stderr}`, req.certName);
}

/**
 * `certbot certonly --manual --preferred-challenges dns` with autossl's manual hooks, which write and remove the
 * TXT records through the site's DNS provider plugin. certbot stores the hooks in the lineage's renewal config, so
 * its own renewals (certbot.timer) renew DNS-01 lineages too.
 */
export async function certonlyDns(s: CertbotSettings, req: CertonlyRequest & { authHook: string; cleanupHook: string }): Promise<Lineage> {
  const { stdout, stderr } = await runCertbot(
    s,
    certonlyArgs(s, req, ['--manual', '--preferred-challenges', 'dns', '--manual-auth-hook', req.authHook, '--manual-cleanup-hook', req.cleanupHook]),
    { [CERTONLY_PARENT_ENV]: String(process.pid) },
  );
  return lineageFromOutput(s.configDir, `${stdout}\n${stderr}`, req.certName);
}

/**
 * `certbot certonly --manual --preferred-challenges http` with autossl's fleet hooks (README "Several nodes"): the
 * auth hook returns once every live node serves the token. `env` reaches the hooks (the webroot of this node's vhost).
 */
export async function certonlyFleet(
  s: CertbotSettings,
  req: CertonlyRequest & { authHook: string; cleanupHook: string; env: Record<string, string> },
): Promise<Lineage> {
  const { stdout, stderr } = await runCertbot(
    s,
    certonlyArgs(s, req, ['--manual', '--preferred-challenges', 'http', '--manual-auth-hook', req.authHook, '--manual-cleanup-hook', req.cleanupHook]),
    { ...req.env, [CERTONLY_PARENT_ENV]: String(process.pid) },
  );
  return lineageFromOutput(s.configDir, `${stdout}\n${stderr}`, req.certName);
}

/** "Certificate is saved at: /etc/letsencrypt/live/x/fullchain.pem" names the lineage; else the --cert-name. */
export function lineageFromOutput(configDir: string, output: string, certName: string): Lineage {
  const saved = /Certificate is saved at:\s*(\S+)/.exec(output)?.[1];
  let name = certName;
  if (saved) {
    const live = path.resolve(configDir, 'live');
    const dir = path.dirname(path.resolve(saved));
    if (path.dirname(dir) !== live) throw new AutoSslError('CERTBOT_LINEAGE_UNKNOWN', `certbot saved the certificate at ${saved}, outside ${live}.`);
    name = path.basename(dir);
  }
  const lineage = readLineage(configDir, name);
  if (!lineage)
    throw new AutoSslError('CERTBOT_LINEAGE_UNKNOWN', `certbot reported success but ${path.join(configDir, 'renewal', `${name}.conf`)} does not exist.`);
  return lineage;
}
