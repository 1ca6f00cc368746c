/**
 * The certbot issuer's renewals: `certbot renew` of every due lineage (its deploy hook installs each renewed one)
 * with each lineage's outcome read from certbot's summary, its output and its log (Issuer.renewDue); one lineage
 * renewed with `--cert-name` (Issuer.renew); and what certbot's last run, started outside autossl, failed to renew,
 * read from its log for the post hook (Issuer.lastRunFailures). autossl's renewal (src/renewal) keeps the rest: the
 * hooks around, the records, the notifications, the back-off.
 */
import { execCertbot, lastLoggedRun, lineageProblems, lineageSections, summarizeProblems, type CertbotSettings } from '../certbot/certbot.js';
import { AutoSslError } from '../errors.js';
import type { Lineage, RenewalOutcome, RenewDueRequest, UnrenewedLineage } from './issuer.js';

/** Every `certbot renew` autossl runs: certbot runs the installed pre/post hooks, which see this and leave beforeRenew/afterRenew to autossl. */
function renewEnv(): Record<string, string> {
  return { AUTOSSL_RENEW_PARENT: String(process.pid) };
}

/** certbot's end-of-run summary: "  /etc/letsencrypt/live/x/fullchain.pem (success|failure|skipped)". */
export function parseRenewSummary(output: string): Map<string, 'success' | 'failure' | 'skipped'> {
  const out = new Map<string, 'success' | 'failure' | 'skipped'>();
  const re = /\/live\/([^/\s]+)\/fullchain\.pem\b.*\((success|failure|skipped)\)\s*$/gm;
  for (let m = re.exec(output); m; m = re.exec(output)) out.set(m[1]!, m[2] as 'success' | 'failure' | 'skipped');
  return out;
}

/** `certbot renew` of the due lineages (or `certName`; all with `force`), each lineage's outcome from its summary and the serials before and after. */
export async function renewDueWithCertbot(settings: CertbotSettings, request: RenewDueRequest): Promise<RenewalOutcome[]> {
  const args = ['renew', '--no-random-sleep-on-renew'];
  if (request.certName) args.push('--cert-name', request.certName);
  if (request.force) args.push('--force-renewal');
  const run = await execCertbot(settings, args, renewEnv());
  const after = await request.current();
  const output = `${run.stdout}\n${run.stderr}`;
  const summary = parseRenewSummary(output);
  const outcomes: RenewalOutcome[] = [];
  for (const cert of after) {
    if (request.certName && cert.lineage !== request.certName) continue;
    const prior = request.before.find((c) => c.lineage === cert.lineage);
    const said = summary.get(cert.lineage);
    const changed = prior?.serial !== cert.serial;
    // certbot's summary says it; a changed serial confirms it even when certbot's output was cut short
    const outcome: RenewalOutcome['outcome'] =
      said === 'failure' ? 'failed' : said === 'success' || changed ? 'renewed' : said === 'skipped' ? 'not-due' : run.exitCode === 0 ? 'not-due' : 'failed';
    const failedLine = new RegExp(`Failed to renew certificate ${cert.lineage.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} with error: (.+)`).exec(output)?.[1];
    const problems =
      outcome === 'failed'
        ? lineageProblems(run, settings.logsDir, { name: cert.lineage, names: cert.names }, request.certName !== undefined || after.length === 1)
        : [];
    const message =
      outcome === 'failed' ? summarizeProblems(problems) || failedLine || run.stderr.trim().split('\n').pop() || 'certbot renew failed' : undefined;
    outcomes.push({ lineage: cert.lineage, names: cert.names, outcome, problems, message });
  }
  return outcomes;
}

/**
 * `certbot renew --cert-name` of one lineage. certbot's refusal (a non-zero exit, no readable certificate after, or
 * with `force` the same certificate still) throws CERTBOT_FAILED with the CA's problems and the reason; certbot that
 * could not run at all (TIMEOUT, CERTBOT_NOT_FOUND, killed) throws execCertbot's own error.
 */
export async function renewWithCertbot(
  settings: CertbotSettings,
  lineage: Lineage,
  force: boolean,
  find: (id: string) => Promise<Lineage | null>,
): Promise<Lineage> {
  const run = await execCertbot(
    settings,
    ['renew', '--no-random-sleep-on-renew', '--cert-name', lineage.id, ...(force ? ['--force-renewal'] : [])],
    renewEnv(),
  );
  const after = await find(lineage.id);
  if (run.exitCode !== 0 || !after || (force && after.serial === lineage.serial)) {
    const problems = lineageProblems(run, settings.logsDir, { name: lineage.id, names: lineage.names }, true);
    const reason = summarizeProblems(problems) || run.stderr.trim().split('\n').pop() || 'certbot renew failed';
    throw new AutoSslError('CERTBOT_FAILED', `certbot could not renew ${lineage.id}: ${reason}`, { details: { problems, reason } });
  }
  return after;
}

/**
 * The lineages of `unrenewed` that certbot's last run (by its timer, cron or by hand: its post hook asks) tried and
 * failed, from its log: a lineage its log has no "Failed to renew" for was not tried (not due), unless the log has
 * no lineage sections at all and it was due.
 */
export function lastRunFailuresOfCertbot(logsDir: string, unrenewed: readonly UnrenewedLineage[], tried: number): RenewalOutcome[] {
  const sections = lineageSections(lastLoggedRun(logsDir));
  const out: RenewalOutcome[] = [];
  for (const l of unrenewed) {
    const failedHere = /Failed to renew certificate /.test(sections.get(l.lineage) ?? '');
    if (!failedHere && (sections.size > 0 || l.due === false)) continue; // not tried (not due)
    // certbot's log of this run, the part about this lineage (its output is not ours to read)
    const problems = lineageProblems({ stdout: '', stderr: '' }, logsDir, { name: l.lineage, names: l.names }, tried === 1);
    out.push({
      lineage: l.lineage,
      names: l.names,
      outcome: 'failed',
      problems,
      message: summarizeProblems(problems) || "certbot did not renew it (see certbot's log)",
    });
  }
  return out;
}
