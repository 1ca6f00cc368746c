/** The renewal commands: `status`, `renew`, and the hooks certbot runs (`deploy-hook`, `renew-hook`, `dns-hook`). */
import { isCertName } from '../config/schema.js';
import { AutoSslError } from '../errors.js';
import type { AriStatus } from '../renewal/ari-pass.js';
import { engineFor, type Values } from './config.js';
import { err, humanEvent, out } from './output.js';

/** A row's ARI window in one line: when, where autossl renews in it, or why there is none. */
function ariLine(a: AriStatus): string {
  if (a.state === 'none') return `ARI: no window (${a.error ?? 'not asked yet'}); asked again ${a.nextFetchAt.slice(0, 16)}`;
  const when = `ARI window ${a.start!.slice(0, 16)} .. ${a.end!.slice(0, 16)} (${a.state === 'past' ? 'in the past: renew now' : a.state}), renewal picked ${a.renewAt?.slice(0, 16) ?? '-'}`;
  return a.warning ? `${when}; warning: ${a.warning}` : when;
}

export async function cmdStatus(values: Values): Promise<number> {
  const engine = await engineFor(values);
  const report = await engine.status({ probe: values.probe === true });
  const pending = await engine.pendingRecovery().catch(() => null);
  const { fleetReport, formatFleetStatus } = await import('../fleet/cli.js');
  const fleet = await fleetReport(engine).finally(() => engine.close());
  if (values.json === true) {
    out(
      JSON.stringify(
        {
          attention: report.attention || !!fleet?.mismatches,
          certificates: report.certificates,
          pendingNotifications: report.pendingNotifications,
          warnings: report.warnings,
          timerWarnings: report.timerWarnings,
          pendingRecovery: pending ? { restorable: pending.journals.restorable, conflicts: pending.journals.conflicts, undoSteps: pending.undo } : null,
          ...(fleet ? { fleet } : {}),
        },
        null,
        2,
      ),
    );
  } else {
    if (fleet) for (const line of formatFleetStatus(fleet)) out(line);
    if (report.certificates.length === 0) out('no certificates');
    else {
      out(`${'DOMAIN'.padEnd(32)} ${'EXPIRES'.padEnd(20)} ${'DAYS'.padStart(6)}  ${'STATE'.padEnd(8)} LAST ERROR`);
      for (const r of report.certificates) {
        const e = r.lastError ? `${r.lastError.code ?? ''}: ${r.lastError.message ?? ''}`.slice(0, 160) : '';
        out(
          `${r.domain.padEnd(32)} ${(r.notAfter ?? '-').slice(0, 19).padEnd(20)} ${(r.daysLeft === null ? '-' : r.daysLeft.toFixed(1)).padStart(6)}  ${r.state.padEnd(8)} ${e}`,
        );
        if (r.ari) out(`${''.padEnd(32)} ${ariLine(r.ari)}`);
        if (r.probe)
          out(
            `${''.padEnd(32)} probe ${r.probe.address}: ${r.probe.serial ? `serves serial ${r.probe.serial}` : r.probe.error}${r.probe.ok ? '' : ' (NOT the expected certificate)'}`,
          );
      }
    }
    for (const w of report.warnings) out(`warning ${w.code}: ${w.file}:${w.line} (${w.serverNames[0] ?? '_'}): ${w.message}`);
    for (const w of report.timerWarnings) out(`warning TIMER_TOO_SELDOM: ${w}`);
    if (report.pendingNotifications) out(`${report.pendingNotifications} notification(s) queued; the next autossl renew (or the renew timer) delivers them`);
    if (pending && (pending.journals.restorable.length || pending.journals.conflicts.length || pending.undo))
      out(
        `a killed run left work behind: run autossl recover (${[...pending.journals.restorable, ...pending.journals.conflicts.map((c) => c.file)].join(', ') || `${pending.undo} undo step(s)`})`,
      );
  }
  return report.attention || fleet?.mismatches ? 1 : 0;
}

export async function cmdRenew(values: Values): Promise<number> {
  const certName = values['cert-name'] as string | undefined;
  // before the engine: a hostile name must not even start recovery or create the state database
  if (certName !== undefined && !isCertName(certName)) {
    throw new AutoSslError(
      'USAGE_INVALID',
      `--cert-name ${JSON.stringify(certName).slice(0, 120)} is not a certbot certificate name (letters, digits, ".", "-", "_"; no "..").`,
      { hint: 'autossl status lists the certificate names.' },
    );
  }
  if (values['pass-only'] === true && values.force === true)
    throw new AutoSslError('USAGE_INVALID', '--pass-only and --force cannot go together.', {
      hint: "--pass-only is autossl's own pass (back-off holds, revoked and ARI renewals) before certbot's run; --force renews through certbot renew --force-renewal: run one of them.",
    });
  const json = values.json === true;
  const engine = await engineFor(values, json ? undefined : humanEvent);
  const report = await engine.renew({ certName, force: values.force === true, passOnly: values['pass-only'] === true });
  await engine.close();
  const failed = report.results.some((o) => o.outcome === 'failed');
  if (json) out(JSON.stringify({ ok: !failed, results: report.results, notifications: report.notifications, hookErrors: report.hookErrors }, null, 2));
  else {
    if (report.results.length === 0) out(values['pass-only'] === true ? 'nothing for autossl to renew before certbot' : 'no certificates to renew');
    for (const o of report.results) out(`${o.outcome.padEnd(8)} ${o.lineage}${o.message ? `: ${o.message}` : ''}`);
    for (const f of report.notifications.failed) out(`notification ${f.key} not delivered (${f.plugin}: ${f.message}); retried later`);
    for (const h of report.hookErrors) out(`hook error: ${h}`);
  }
  return failed ? 1 : 0;
}

export async function cmdDeployHook(values: Values): Promise<number> {
  const engine = await engineFor(values);
  const result = await engine.deploy(process.env);
  await engine.close();
  if (values.json === true) out(JSON.stringify({ ...result, error: result.error?.toJSON(), run: undefined }, null, 2));
  else if (result.skipped) out(`${result.lineage}: run inside autossl's own certbot call; the issue installs it, nothing to do`);
  else if (result.ok)
    out(
      `deployed ${result.lineage} (serial ${result.serial}) for ${result.domains.join(', ')}${result.changedFiles.length ? `; updated ${result.changedFiles.join(', ')}` : ''}; nginx reloaded`,
    );
  else err(`deploy of ${result.lineage} failed: ${result.error?.code}: ${result.error?.message}\n  hint: ${result.error?.hint}`);
  return result.ok ? 0 : 1;
}

export async function cmdHook(command: string, positionals: string[], values: Values): Promise<number> {
  const [phase] = positionals;
  const engine = await engineFor(values, (e) => {
    if (e.status === 'error' || e.status === 'warning') err(`${e.domain} ${e.stage}${e.plugin ? ` (${e.plugin})` : ''}: ${e.message ?? e.status}`);
  });
  try {
    if (command === 'renew-hook') {
      if (phase !== 'pre' && phase !== 'post') throw new AutoSslError('HOOK_INPUT_INVALID', 'Usage: autossl renew-hook pre|post (run by certbot)');
      await engine.renewHook(phase, process.env);
    } else {
      if (phase !== 'auth' && phase !== 'cleanup') throw new AutoSslError('HOOK_INPUT_INVALID', 'Usage: autossl dns-hook auth|cleanup (run by certbot)');
      await engine.dnsHook(phase, process.env);
    }
  } finally {
    await engine.close();
  }
  out(`${command} ${phase}: done`);
  return 0;
}
