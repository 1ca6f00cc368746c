#!/usr/bin/env node
/**
 * The command line: argument parsing, engine calls, output. It only parses and prints: all the work is the
 * engine's. Human output by default (one line per stage with its time), `--json` for machines.
 * Exit codes: 0 every domain succeeded, 1 some failed, 2 bad usage, bad input or bad config.
 */
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { loadConfig } from './config/load.js';
import { isCertName, siteFor, type AutoSslConfig } from './config/schema.js';
import { unifiedDiff } from './diff.js';
import { normalizeDomain } from './domain.js';
import { createAutoSsl, type AutoSsl } from './engine.js';
import { AutoSslError, ERROR_CODES, errorKind, toAutoSslError } from './errors.js';
import type { StageEvent } from './pipeline/context.js';
import type { DomainResult } from './pipeline/pipeline.js';
import { CHECKS } from './stages/preflight.js';

const USAGE = `autossl: trusted certificates for every nginx vhost

Usage:
  autossl issue <domain...> [--dry-run] [--force] [--json]   issue (or reuse) and install certificates
  autossl issue --all [--dry-run] [--json]                   every site in the config
  autossl check <domain...>|--all [--json]                   pre-flight only: what Let's Encrypt would see
  autossl status [--probe] [--json]                          every certificate and configured name, most urgent first (exit 1: needs attention)
  autossl renew [--cert-name NAME] [--force] [--json]        certbot renew now, each lineage's outcome recorded
  autossl install-hooks                                      make every certbot renewal run autossl's hooks
  autossl vhost show <domain> [--diff] [--json]              which file and block serve a domain, and the edit
  autossl recover [--discard JOURNAL] [--json]               finish what a killed run left behind
  autossl demo [--keep]                                      a self-contained demo on 127.0.0.1
  (run by certbot: autossl deploy-hook | renew-hook pre|post | dns-hook auth|cleanup)

Options:
  --config FILE        config file (default: found by cosmiconfig, module name "autossl")
  --skip-check NAME    skip a pre-flight check: ${CHECKS.join(', ')} (repeatable)
  --json               machine-readable output
`;

const out = (s: string): boolean => process.stdout.write(s + '\n');
const err = (s: string): boolean => process.stderr.write(s + '\n');

function printError(e: AutoSslError, json: boolean): void {
  if (json) out(JSON.stringify({ ok: false, error: e.toJSON() }));
  else {
    err(`error ${e.code}: ${e.message}`);
    err(`  hint: ${e.hint}`);
  }
}

function fmtMs(ms: number | undefined): string {
  if (ms === undefined) return '';
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms)} ms`;
}

function humanEvent(event: StageEvent): void {
  if (event.plugin && event.status !== 'info' && event.status !== 'warning') return; // per-plugin timings go to --json
  const who = event.domain === '*' ? '' : event.domain;
  if (event.status === 'done') out(`  ${who.padEnd(28)} ${event.stage.padEnd(12)} ${fmtMs(event.ms).padStart(9)}`);
  else if (event.status === 'error') out(`  ${who.padEnd(28)} ${event.stage.padEnd(12)} ${fmtMs(event.ms).padStart(9)}  FAILED${event.stage === 'rollback' || event.stage === 'undo' ? `: ${event.message}` : ''}`);
  else if ((event.status === 'info' || event.status === 'warning') && event.message) out(`  ${who.padEnd(28)} ${''.padEnd(12)} ${''.padStart(9)}  ${event.status === 'warning' ? 'warning: ' : ''}${event.message}`);
}

function resultJson(r: DomainResult, dryRun: boolean) {
  return {
    domain: r.domain,
    names: r.names,
    ok: r.ok,
    error: r.error?.toJSON(),
    lineage: r.lineage && !dryRun ? { name: r.lineage.name, fullchain: r.lineage.fullchain, privkey: r.lineage.privkey } : undefined,
    serial: r.certificate?.serial,
    reused: r.reused,
    notes: r.notes,
    changes: r.edits.map((e) => ({ file: e.file, changes: e.changes })),
    ...(dryRun ? { diffs: r.files.map((f) => unifiedDiff(f.file, f.before, f.after)) } : {}),
    rolledBack: r.rolledBack,
    ms: Math.round(r.ms),
    stages: r.events.filter((e) => e.status === 'done' || e.status === 'error').map((e) => ({ stage: e.stage, plugin: e.plugin, status: e.status, ms: Math.round(e.ms ?? 0) })),
  };
}

type Values = Record<string, unknown> & { config?: string };

async function config(values: Values): Promise<AutoSslConfig> {
  return loadConfig({ file: values.config });
}

async function engineFor(values: Values, onEvent?: (e: StageEvent) => void): Promise<AutoSsl> {
  return createAutoSsl(await config(values), { onEvent });
}

function skipChecks(values: Values): string[] {
  const skips = (values['skip-check'] as string[] | undefined) ?? [];
  for (const s of skips) {
    if (!(CHECKS as readonly string[]).includes(s)) throw new AutoSslError('CONFIG_INVALID', `--skip-check ${JSON.stringify(s).slice(0, 60)} is not a check.`, { hint: `The checks are: ${CHECKS.join(', ')}.` });
  }
  return skips;
}

function domainsOf(positionals: string[], values: Values, cfg: AutoSslConfig, command: string): string[] {
  const domains = values.all ? cfg.sites.map((s) => s.domain) : positionals;
  if (values.all && positionals.length) throw new AutoSslError('DOMAIN_INVALID', `--all and domains together: give one or the other.`, { hint: `autossl ${command} --all, or autossl ${command} example.com` });
  if (domains.length === 0) throw new AutoSslError('DOMAIN_INVALID', values.all ? 'The config has no sites.' : 'No domain given.', { hint: `autossl ${command} example.com, or autossl ${command} --all with sites in the config.` });
  // Refuse any bad name before anything runs: one hostile argument stops the whole command.
  return domains.map((d) => {
    const name = normalizeDomain(d, { allowWildcard: true });
    // a wildcard is only for a DNS-01 site: refused here too (the engine refuses it per domain, but only after the
    // command's other domains ran and recovery touched the state directory)
    if (name.startsWith('*.') && (siteFor(cfg, name).challenge ?? cfg.defaults.challenge) !== 'dns-01') {
      throw new AutoSslError('WILDCARD_NEEDS_DNS01', `${name} is a wildcard: the CA can only check it over DNS (DNS-01), and this site uses HTTP-01.`);
    }
    return name;
  });
}

async function cmdIssue(positionals: string[], values: Values): Promise<number> {
  const json = values.json === true;
  const dryRun = values['dry-run'] === true;
  const skips = skipChecks(values);
  const cfg = await config(values);
  const domains = domainsOf(positionals, values, cfg, 'issue');
  const engine = await createAutoSsl(cfg, { onEvent: json ? undefined : humanEvent });
  if (!json) out(`autossl issue${dryRun ? ' (dry run: nothing is written, certbot is not run)' : ''}`);
  const results = await engine.issue(domains, { dryRun, force: values.force === true, skipChecks: skips });
  await engine.close();
  if (json) {
    out(JSON.stringify({ ok: results.every((r) => r.ok), results: results.map((r) => resultJson(r, dryRun)) }, null, 2));
  } else {
    for (const r of results) {
      if (dryRun) for (const f of r.files) out(unifiedDiff(f.file, f.before, f.after));
      for (const note of r.notes) out(`note  ${r.domain}: ${note}`);
      if (r.ok) {
        const what = dryRun ? 'would be served over HTTPS' : r.reused ? `HTTPS with existing certificate ${r.lineage?.name}` : `HTTPS with new certificate ${r.lineage?.name}`;
        const n = r.files.length;
        out(`ok    ${r.domain}: ${what}${n ? ` (${n} file${n > 1 ? 's' : ''} ${dryRun ? 'to change' : 'changed'})` : ' (no vhost change)'} in ${fmtMs(r.ms)}`);
      } else {
        out(`FAIL  ${r.domain}: ${r.error?.code}: ${r.error?.message}`);
        out(`      hint: ${r.error?.hint}`);
        if (r.rolledBack.length) out(`      restored: ${r.rolledBack.join(', ')}`);
      }
    }
  }
  return results.every((r) => r.ok) ? 0 : 1;
}

async function cmdCheck(positionals: string[], values: Values): Promise<number> {
  const json = values.json === true;
  const skips = skipChecks(values);
  const cfg = await config(values);
  const domains = domainsOf(positionals, values, cfg, 'check');
  const engine = await createAutoSsl(cfg);
  const results = await engine.check(domains, { skipChecks: skips });
  await engine.close();
  if (json) {
    out(JSON.stringify({ ok: results.every((r) => r.ok), results: results.map((r) => ({ ...r, ms: Math.round(r.ms) })) }, null, 2));
  } else {
    for (const r of results) {
      out(`${r.ok ? 'ok  ' : 'FAIL'} ${r.domain}${r.names.length > 1 ? ` (${r.names.slice(1).join(', ')})` : ''}  ${fmtMs(r.ms)}`);
      for (const f of r.findings) {
        const mark = f.severity === 'error' ? 'x' : f.severity === 'warning' ? '!' : '+';
        out(`  [${mark}] ${f.check.padEnd(10)} ${f.code ? `${f.code}: ` : ''}${f.message}`);
        if (f.severity !== 'info' && f.hint) out(`      ${''.padEnd(10)} fix: ${f.hint}`);
      }
    }
  }
  return results.every((r) => r.ok) ? 0 : 1;
}

async function cmdStatus(values: Values): Promise<number> {
  const engine = await engineFor(values);
  const report = await engine.status({ probe: values.probe === true });
  const pending = await engine.pendingRecovery().catch(() => null);
  await engine.close();
  if (values.json === true) {
    out(JSON.stringify({ attention: report.attention, certificates: report.certificates, pendingNotifications: report.pendingNotifications, pendingRecovery: pending ? { restorable: pending.journals.restorable, conflicts: pending.journals.conflicts, undoSteps: pending.undo } : null }, null, 2));
  } else {
    if (report.certificates.length === 0) out('no certificates');
    else {
      out(`${'DOMAIN'.padEnd(32)} ${'EXPIRES'.padEnd(20)} ${'DAYS'.padStart(6)}  ${'STATE'.padEnd(8)} LAST ERROR`);
      for (const r of report.certificates) {
        const e = r.lastError ? `${r.lastError.code ?? ''}: ${r.lastError.message ?? ''}`.slice(0, 160) : '';
        out(`${r.domain.padEnd(32)} ${(r.notAfter ?? '-').slice(0, 19).padEnd(20)} ${(r.daysLeft === null ? '-' : r.daysLeft.toFixed(1)).padStart(6)}  ${r.state.padEnd(8)} ${e}`);
        if (r.probe) out(`${''.padEnd(32)} probe ${r.probe.address}: ${r.probe.serial ? `serves serial ${r.probe.serial}` : r.probe.error}${r.probe.ok ? '' : ' (NOT the expected certificate)'}`);
      }
    }
    if (report.pendingNotifications) out(`${report.pendingNotifications} notification(s) queued; the next autossl renew (or the renew timer) delivers them`);
    if (pending && (pending.journals.restorable.length || pending.journals.conflicts.length || pending.undo)) out(`a killed run left work behind: run autossl recover (${[...pending.journals.restorable, ...pending.journals.conflicts.map((c) => c.file)].join(', ') || `${pending.undo} undo step(s)`})`);
  }
  return report.attention ? 1 : 0;
}

async function cmdRenew(values: Values): Promise<number> {
  const certName = values['cert-name'] as string | undefined;
  // before the engine: a hostile name must not even start recovery or create the state database
  if (certName !== undefined && !isCertName(certName)) {
    throw new AutoSslError('CONFIG_INVALID', `--cert-name ${JSON.stringify(certName).slice(0, 120)} is not a certbot certificate name (letters, digits, ".", "-", "_"; no "..").`, { hint: 'autossl status lists the certificate names.' });
  }
  const json = values.json === true;
  const engine = await engineFor(values, json ? undefined : humanEvent);
  const report = await engine.renew({ certName, force: values.force === true });
  await engine.close();
  const failed = report.results.some((o) => o.outcome === 'failed');
  if (json) out(JSON.stringify({ ok: !failed, results: report.results, notifications: report.notifications, hookErrors: report.hookErrors }, null, 2));
  else {
    if (report.results.length === 0) out('no certificates to renew');
    for (const o of report.results) out(`${o.outcome.padEnd(8)} ${o.lineage}${o.message ? `: ${o.message}` : ''}`);
    for (const f of report.notifications.failed) out(`notification ${f.key} not delivered (${f.plugin}: ${f.message}); retried later`);
    for (const h of report.hookErrors) out(`hook error: ${h}`);
  }
  return failed ? 1 : 0;
}

async function cmdDeployHook(values: Values): Promise<number> {
  const engine = await engineFor(values);
  const result = await engine.deploy(process.env);
  await engine.close();
  if (values.json === true) out(JSON.stringify({ ...result, error: result.error?.toJSON(), run: undefined }, null, 2));
  else if (result.ok) out(`deployed ${result.lineage} (serial ${result.serial}) for ${result.domains.join(', ')}${result.changedFiles.length ? `; updated ${result.changedFiles.join(', ')}` : ''}; nginx reloaded`);
  else err(`deploy of ${result.lineage} failed: ${result.error?.code}: ${result.error?.message}\n  hint: ${result.error?.hint}`);
  return result.ok ? 0 : 1;
}

async function cmdVhostShow(positionals: string[], values: Values): Promise<number> {
  const json = values.json === true;
  const [sub, input, ...extra] = positionals;
  if (sub !== 'show' || !input || extra.length) throw new AutoSslError('DOMAIN_INVALID', 'Usage: autossl vhost show <domain> [--diff]', { hint: 'autossl vhost show example.com --diff' });
  const domain = normalizeDomain(input, { allowWildcard: true });
  const engine = await engineFor(values);
  const preview = await engine.preview(domain);
  await engine.close();
  const diffs = values.diff ? preview.files.map((f) => unifiedDiff(f.file, f.before, f.after)) : [];
  if (json) out(JSON.stringify({ domain, names: preview.names, ok: preview.ok, error: preview.error?.toJSON(), http: preview.blocks.http, https: preview.blocks.https, notes: preview.notes, diff: values.diff ? diffs : undefined }, null, 2));
  else {
    for (const [label, list] of [['port 80', preview.blocks.http], ['TLS', preview.blocks.https]] as const) {
      for (const entry of list) out(`${entry.name} (${label}): ${entry.file ? `${entry.file}:${entry.line}  server_name ${(entry.serverNames ?? []).join(' ')}  listen ${(entry.listens ?? []).join(', ')}` : 'no server block'}`);
    }
    for (const note of preview.notes) out(`note: ${note}`);
    for (const d of diffs) out(d);
    if (values.diff && preview.ok && diffs.length === 0) out('(the HTTPS edit would change nothing)');
    if (!preview.ok && preview.error) {
      err(`error ${preview.error.code}: ${preview.error.message}`);
      err(`  hint: ${preview.error.hint}`);
    }
  }
  return preview.ok ? 0 : preview.error && errorKind(preview.error.code) === 'input' ? 2 : 1;
}

async function cmdRecover(values: Values): Promise<number> {
  const engine = await engineFor(values);
  const report = await engine.recover({ discard: values.discard as string | undefined });
  await engine.close();
  const j = report.journals;
  const problems = j.conflicts.length + j.damaged.length + report.undo.failed.length;
  if (values.json === true) out(JSON.stringify({ ok: problems === 0, restored: j.restored, conflicts: j.conflicts.map((c) => ({ code: 'JOURNAL_CONFLICT', ...c })), damaged: j.damaged.map((d) => ({ code: 'JOURNAL_DAMAGED', ...d })), undo: { ran: report.undo.ran, failed: report.undo.failed.map((f) => ({ ...f, error: f.error.toJSON() })) }, active: j.active + report.undo.active }, null, 2));
  else {
    if (j.restored.length) out(`restored: ${j.restored.join(', ')}`);
    for (const r of report.undo.ran) out(`undone: ${r.plugin} ${r.kind}`);
    for (const c of j.conflicts) out(`JOURNAL_CONFLICT ${c.file}: ${c.reason}\n  backup: ${c.backup}\n  when resolved: autossl recover --discard ${c.journal}`);
    for (const d of j.damaged) out(`JOURNAL_DAMAGED ${d.journal}: ${d.reason}\n  hint: ${ERROR_CODES.JOURNAL_DAMAGED}`);
    for (const f of report.undo.failed) out(`UNDO FAILED ${f.plugin} ${f.kind}: ${f.error.message}`);
    if (j.active + report.undo.active) out(`${j.active + report.undo.active} item(s) belong to runs still in progress; left to them`);
    if (!j.restored.length && !report.undo.ran.length && !problems) out('nothing to recover');
  }
  return problems ? 1 : 0;
}

async function cmdHook(command: string, positionals: string[], values: Values): Promise<number> {
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

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        config: { type: 'string' },
        json: { type: 'boolean' },
        'dry-run': { type: 'boolean' },
        force: { type: 'boolean' },
        all: { type: 'boolean' },
        diff: { type: 'boolean' },
        keep: { type: 'boolean' },
        discard: { type: 'string' },
        'skip-check': { type: 'string', multiple: true },
        'cert-name': { type: 'string' },
        probe: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean' },
      },
    });
  } catch (error) {
    err(`error: ${(error as Error).message}`);
    err(USAGE);
    return 2;
  }
  const { positionals, values } = parsed;
  const [command, ...rest] = positionals;
  if (values.version) {
    const pkg = JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    out(pkg.version);
    return 0;
  }
  if (values.help || !command) {
    (command || values.help ? out : err)(USAGE);
    return command || values.help ? 0 : 2;
  }
  try {
    switch (command) {
      case 'issue':
        return await cmdIssue(rest, values);
      case 'check':
        return await cmdCheck(rest, values);
      case 'status':
        return await cmdStatus(values);
      case 'renew':
        return await cmdRenew(values);
      case 'deploy-hook':
        return await cmdDeployHook(values);
      case 'renew-hook':
      case 'dns-hook':
        return await cmdHook(command, rest, values);
      case 'install-hooks': {
        const engine = await engineFor(values);
        const hooks = await engine.installHooks();
        await engine.close();
        out(`installed ${hooks.join(', ')}: every certbot renewal (certbot.timer, autossl renew, certbot by hand) now runs autossl's hooks`);
        return 0;
      }
      case 'vhost':
        return await cmdVhostShow(rest, values);
      case 'recover':
        return await cmdRecover(values);
      case 'demo':
        return await (await import('./sandbox/demo.js')).runDemo({ keep: values.keep === true, log: out });
      default:
        err(`error: unknown command "${command.slice(0, 40)}"`);
        err(USAGE);
        return 2;
    }
  } catch (error) {
    const e = toAutoSslError(error);
    printError(e, values.json === true);
    if (e.code === 'INTERNAL' && process.env.AUTOSSL_DEBUG) err(String((error as Error).stack));
    return errorKind(e.code) === 'input' ? 2 : 1;
  }
}

let answered = false;
// the event loop ran dry with the command unfinished (something awaited forever): never exit 0 with no answer
process.on('beforeExit', () => {
  if (answered) return;
  answered = true;
  err('error INTERNAL: the command stopped without finishing (something it waited for can never complete); nothing more was done.');
  process.exitCode = 1;
});

main(process.argv.slice(2)).then(
  (code) => {
    answered = true;
    process.exitCode = code;
    // a plugin that never settles (past its deadline) must not keep the process alive after the answer
    setTimeout(() => process.exit(code), 1000).unref();
  },
  (error) => {
    answered = true;
    err(`error INTERNAL: ${(error as Error).message}`);
    process.exitCode = 1;
    setTimeout(() => process.exit(1), 1000).unref();
  },
);
