#!/usr/bin/env node
/**
 * The command line: argument parsing, engine calls, output. It only parses and prints: all the work is the
 * engine's. Human output by default (one line per stage with its time), `--json` for machines.
 * Exit codes: 0 every domain succeeded, 1 some failed, 2 bad usage, bad input or bad config.
 */
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { loadConfig } from './config/load.js';
import { isCertName, siteFor, validateConfig, type AutoSslConfig } from './config/schema.js';
import { diffBytes, unifiedDiff } from './diff.js';
import { normalizeDomain } from './domain.js';
import { createAutoSsl, type AutoSsl } from './engine.js';
import { AutoSslError, ERROR_CODES, errorKind, toAutoSslError } from './errors.js';
import type { StageEvent } from './pipeline/context.js';
import type { DomainResult } from './pipeline/pipeline.js';
import { CHECKS } from './stages/preflight.js';

const USAGE = `autossl: trusted certificates for every nginx vhost

Usage:
  autossl init [--out FILE] [--force] [--dry-run] [--no-check] [--address IP] [--resolver IP[:PORT]]
                                                             write a config from what this server has and the sites nginx serves
  autossl setup [--agent] [--dry-run]                        certbot hooks, one renewal timer, and (--agent) the agent's unit
  autossl issue <domain...> [--dry-run] [--force] [--json]   issue (or reuse) and install certificates (one batch job)
  autossl issue --all [--dry-run] [--json] [--verbose]       every site in the config
  autossl jobs [JOB] [--json]                                recent batches, or one with each domain's state
  autossl check <domain...>|--all [--json]                   pre-flight only: what Let's Encrypt would see
  autossl status [--probe] [--json]                          every certificate and configured name, most urgent first (exit 1: needs attention)
  autossl renew [--cert-name NAME] [--force] [--json]        certbot renew now, each lineage's outcome recorded
  autossl install-hooks                                      make every certbot renewal run autossl's hooks
  autossl vhost show <domain> [--diff] [--json]              which file and block serve a domain, and the edit
  autossl recover [--discard JOURNAL] [--json]               finish what a killed run left behind
  autossl uninstall <domain> [--json]                        take HTTPS off a domain; delete its certificate if nothing else serves it
  autossl upload <domain> --cert FILE --key FILE [--json]    install a certificate bought elsewhere (never renewed)
  autossl agent                                              the signed HTTP API for a hosting panel (README "Agent")
  autossl agent call METHOD PATH [BODY] [--url URL]          send one signed request to the agent, print the answer
  autossl fleet run | status [--json]                        a node of a fleet: tokens, certificates, what it serves (README "Several nodes")
  autossl demo [--keep]                                      a self-contained demo on 127.0.0.1
  (run by certbot: autossl deploy-hook | renew-hook pre|post | dns-hook auth|cleanup | fleet hook auth|cleanup)

Options:
  --config FILE        config file (default: found by cosmiconfig, module name "autossl")
  --skip-check NAME    skip a pre-flight check: ${CHECKS.join(', ')} (repeatable)
  --json               machine-readable output (issue: one JSON event per line, then the summary)
  --verbose, -v        issue: every stage of every domain, not a progress line
`;

// A reader that stops early (`autossl status | head -1`) closes the pipe: the output is dropped from then on, but
// the command itself goes on to its end (an issue must not stop half-way because nobody reads its progress).
const closed = new Set<NodeJS.WriteStream>();
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
    closed.add(stream);
  });
}
const write = (stream: NodeJS.WriteStream, data: string | Uint8Array): boolean => (closed.has(stream) ? true : stream.write(data));
const out = (s: string): boolean => write(process.stdout, s + '\n');
const err = (s: string): boolean => write(process.stderr, s + '\n');

function printError(e: AutoSslError, json: boolean): void {
  if (json) out(JSON.stringify({ ok: false, error: e.toJSON() }));
  else {
    err(`error ${e.code}: ${e.message}`);
    err(`  hint: ${e.hint}`);
  }
}

/** A diff holds the file's own bytes (latin1 strings): written as bytes, so `patch` applies it to that file. */
function printDiff(diff: string): void {
  write(process.stdout, diffBytes(diff));
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

/** Commands that run with what this server has when no config file exists (init writes it down). */
const ZERO_CONFIG = new Set(['issue', 'check', 'status', 'vhost', 'jobs', 'uninstall', 'upload', 'deploy-hook']);
let command = '';
let announced = false;

async function config(values: Values): Promise<AutoSslConfig> {
  try {
    return await loadConfig({ file: values.config });
  } catch (error) {
    if (!(error instanceof AutoSslError) || error.code !== 'CONFIG_NOT_FOUND' || values.config || !ZERO_CONFIG.has(command)) throw error;
    const { discover, discoveredConfig, describeDiscovery } = await import('./setup/discover.js');
    const found = await discover();
    if (!announced) err(`autossl: no config file; using what this server has: ${describeDiscovery(found)}. "autossl init" writes it down (and lists your sites).`);
    announced = true;
    // certbot's deploy hook runs with no config either: it discovers the same (a zero-config issue installs it)
    return { ...validateConfig(discoveredConfig(found), '(discovered on this server)', process.cwd()), zeroConfig: true };
  }
}

async function engineFor(values: Values, onEvent?: (e: StageEvent) => void): Promise<AutoSsl> {
  return createAutoSsl(await config(values), { onEvent });
}

function skipChecks(values: Values): string[] {
  const skips = (values['skip-check'] as string[] | undefined) ?? [];
  for (const s of skips) {
    if (!(CHECKS as readonly string[]).includes(s)) throw new AutoSslError('USAGE_INVALID', `--skip-check ${JSON.stringify(s).slice(0, 60)} is not a check.`, { hint: `The checks are: ${CHECKS.join(', ')}.` });
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

/**
 * What a person sees while a batch runs: on a terminal one live line (done / failed / running of N, elapsed, the
 * slowest domain and its stage), rewritten in place; otherwise (a pipe, a log, NO_COLOR) a plain line per domain
 * as it finishes. Warnings and the engine's own messages (recovery) always get a line. `--verbose` shows every
 * stage of every domain instead.
 */
class Progress {
  private readonly started = Date.now();
  private readonly stageOf = new Map<string, { stage: string; since: number }>();
  private readonly finished = new Map<string, boolean>();
  private timer: NodeJS.Timeout | undefined;
  private readonly live: boolean;
  private shown = '';

  constructor(private readonly total: number, private readonly verbose: boolean) {
    this.live = !verbose && process.stdout.isTTY === true && !process.env.NO_COLOR && process.env.TERM !== 'dumb';
    if (this.live) {
      this.draw();
      this.timer = setInterval(() => this.draw(), 250);
      this.timer.unref();
    }
  }

  event = (e: StageEvent): void => {
    if (this.verbose) return humanEvent(e);
    if (e.domain === '*' || e.status === 'warning' || (e.status === 'error' && (e.stage === 'rollback' || e.stage === 'undo'))) {
      this.clear();
      humanEvent(e);
      return;
    }
    if (!e.plugin && e.status === 'start') this.stageOf.set(e.domain, { stage: e.stage, since: Date.now() });
  };

  done(r: DomainResult): void {
    this.finished.set(r.domain, r.ok);
    this.stageOf.delete(r.domain);
    if (!this.live && !this.verbose && this.total > 1) out(`${r.ok ? 'done' : 'FAIL'}  ${r.domain} (${this.finished.size}/${this.total}, ${fmtMs(r.ms)})`);
  }

  private line(): string {
    const failed = [...this.finished.values()].filter((ok) => !ok).length;
    const running = this.stageOf.size;
    const slowest = [...this.stageOf.entries()].sort((a, b) => a[1].since - b[1].since)[0];
    const elapsed = ((Date.now() - this.started) / 1000).toFixed(1);
    return `  ${this.finished.size - failed} done, ${failed} failed, ${running} running of ${this.total}  ${elapsed} s${slowest ? `  slowest: ${slowest[0]} (${slowest[1].stage}, ${((Date.now() - slowest[1].since) / 1000).toFixed(1)} s)` : ''}`;
  }

  private draw(): void {
    const text = this.line();
    write(process.stdout, `\r${text.padEnd(this.shown.length)}`);
    this.shown = text;
  }

  private clear(): void {
    if (!this.live || !this.shown) return;
    write(process.stdout, `\r${' '.repeat(this.shown.length)}\r`);
    this.shown = '';
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.clear();
  }
}

/**
 * A command's exit code from the codes its domains failed with: 0 none, 2 when every failure is bad input
 * (VHOST_NOT_FOUND, DOMAIN_INVALID...: the same in every command), 1 otherwise.
 */
function exitFor(failures: ReadonlyArray<string | undefined>): number {
  if (!failures.length) return 0;
  return failures.every((c) => c !== undefined && c in ERROR_CODES && errorKind(c as keyof typeof ERROR_CODES) === 'input') ? 2 : 1;
}

async function cmdIssue(positionals: string[], values: Values): Promise<number> {
  const json = values.json === true;
  const dryRun = values['dry-run'] === true;
  const skips = skipChecks(values);
  const cfg = await config(values);
  const domains = domainsOf(positionals, values, cfg, 'issue');
  // --json: one JSON event per line as it happens (NDJSON), then the summary as the last line
  const progress = json ? null : new Progress(domains.length, values.verbose === true);
  const onEvent = json ? (e: StageEvent) => out(JSON.stringify({ type: 'event', at: new Date().toISOString(), ...e, ms: e.ms === undefined ? undefined : Math.round(e.ms) })) : progress!.event;
  const engine = await createAutoSsl(cfg, { onEvent });
  if (!json) out(`autossl issue${dryRun ? ' (dry run: nothing is written, certbot is not run)' : ''}${domains.length > 1 ? `: ${domains.length} domains` : ''}`);
  const results = await engine.issue(domains, { dryRun, force: values.force === true, skipChecks: skips, source: 'cli', onResult: (r) => progress?.done(r) });
  await engine.close();
  progress?.stop();
  if (json) {
    out(JSON.stringify({ type: 'summary', ok: results.every((r) => r.ok), jobId: results[0]?.jobId, results: results.map((r) => resultJson(r, dryRun)) }));
  } else {
    for (const r of results) {
      if (dryRun) for (const f of r.files) printDiff(unifiedDiff(f.file, f.before, f.after));
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
    const failed = results.filter((r) => !r.ok).length;
    if (results.length > 1) out(`${results.length - failed} of ${results.length} ok${failed ? `, ${failed} failed` : ''}${results[0]?.jobId ? ` (job ${results[0].jobId}: autossl jobs ${results[0].jobId})` : ''}`);
  }
  return exitFor(results.filter((r) => !r.ok).map((r) => r.error?.code));
}

async function cmdJobs(positionals: string[], values: Values): Promise<number> {
  const engine = await engineFor(values);
  const [id] = positionals;
  try {
    if (id) {
      const job = await engine.job(id);
      if (!job) throw new AutoSslError('JOB_NOT_FOUND', `There is no job ${JSON.stringify(id).slice(0, 80)}.`, { hint: 'autossl jobs lists the recent ones.' });
      if (values.json === true) out(JSON.stringify(job, null, 2));
      else {
        out(`job ${job.id} (${job.kind}, from ${job.source}): ${job.state}, started ${new Date(job.createdAt).toISOString()}${job.finishedAt ? `, ended ${new Date(job.finishedAt).toISOString()}` : ''}`);
        for (const d of job.domains) {
          const took = d.stages.map((x) => `${x.stage} ${fmtMs(x.ms)}`).join(', ');
          out(`  ${d.domain.padEnd(32)} ${d.state.padEnd(10)} ${d.code ? `${d.code}: ${(d.message ?? '').slice(0, 160)}` : took}`);
        }
      }
      return job.state === 'failed' ? 1 : 0;
    }
    const jobs = await engine.jobs(Number(values.limit ?? 20) || 20);
    if (values.json === true) out(JSON.stringify({ jobs }, null, 2));
    else if (!jobs.length) out('no jobs');
    else for (const j of jobs) out(`${j.id}  ${new Date(j.createdAt).toISOString()}  ${j.state.padEnd(11)} ${j.domains.filter((d) => d.state === 'done').length}/${j.domains.length} done${j.domains.some((d) => d.state === 'failed') ? `, ${j.domains.filter((d) => d.state === 'failed').length} failed` : ''}  (${j.source})`);
    return 0;
  } finally {
    await engine.close();
  }
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
  // a domain fails on its first unresolved error finding, as issue would
  return exitFor(results.filter((r) => !r.ok).map((r) => r.findings.find((f) => f.severity === 'error' && !f.resolved)?.code));
}

async function cmdStatus(values: Values): Promise<number> {
  const engine = await engineFor(values);
  const report = await engine.status({ probe: values.probe === true });
  const pending = await engine.pendingRecovery().catch(() => null);
  const { fleetReport, formatFleetStatus } = await import('./fleet/cli.js');
  const fleet = await fleetReport(engine).finally(() => engine.close());
  if (values.json === true) {
    out(JSON.stringify({ attention: report.attention || !!fleet?.mismatches, certificates: report.certificates, pendingNotifications: report.pendingNotifications, pendingRecovery: pending ? { restorable: pending.journals.restorable, conflicts: pending.journals.conflicts, undoSteps: pending.undo } : null, ...(fleet ? { fleet } : {}) }, null, 2));
  } else {
    if (fleet) for (const line of formatFleetStatus(fleet)) out(line);
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
  return report.attention || fleet?.mismatches ? 1 : 0;
}

async function cmdRenew(values: Values): Promise<number> {
  const certName = values['cert-name'] as string | undefined;
  // before the engine: a hostile name must not even start recovery or create the state database
  if (certName !== undefined && !isCertName(certName)) {
    throw new AutoSslError('USAGE_INVALID', `--cert-name ${JSON.stringify(certName).slice(0, 120)} is not a certbot certificate name (letters, digits, ".", "-", "_"; no "..").`, { hint: 'autossl status lists the certificate names.' });
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
  else if (result.skipped) out(`${result.lineage}: run inside autossl's own certbot call; the issue installs it, nothing to do`);
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
    for (const d of diffs) printDiff(d);
    if (values.diff && preview.ok && diffs.length === 0) out('(the HTTPS edit would change nothing)');
    if (!preview.ok && preview.error) {
      err(`error ${preview.error.code}: ${preview.error.message}`);
      err(`  hint: ${preview.error.hint}`);
    }
  }
  return preview.ok ? 0 : preview.error && errorKind(preview.error.code) === 'input' ? 2 : 1;
}

async function cmdRecover(values: Values): Promise<number> {
  // what plugins say while undoing (a record left alone because someone changed it) is part of the report
  // so is what recovery finished: a certificate adopted from a killed order, a killed job's domains installed
  const finished: string[] = [];
  const engine = await engineFor(values, (e) => {
    const recovered = e.stage === 'recover' && e.status === 'info' && e.domain === '*' && !/^(restored|undid) /.test(e.message ?? '');
    if (recovered) finished.push(e.message ?? '');
    if (values.json !== true && (e.stage === 'log' || e.status === 'warning' || recovered)) out(`${e.plugin ? `${e.plugin}: ` : ''}${e.message ?? ''}`);
  });
  const report = await engine.recover({ discard: values.discard as string | undefined });
  await engine.close();
  const j = report.journals;
  const problems = j.conflicts.length + j.damaged.length + report.undo.failed.length;
  if (values.json === true) out(JSON.stringify({ ok: problems === 0, restored: j.restored, conflicts: j.conflicts.map((c) => ({ code: 'JOURNAL_CONFLICT', ...c })), damaged: j.damaged.map((d) => ({ code: 'JOURNAL_DAMAGED', ...d })), undo: { ran: report.undo.ran, failed: report.undo.failed.map((f) => ({ ...f, error: f.error.toJSON() })) }, finished, active: j.active + report.undo.active }, null, 2));
  else {
    if (j.restored.length) out(`restored: ${j.restored.join(', ')}`);
    for (const r of report.undo.ran) out(`undone: ${r.plugin} ${r.kind}`);
    for (const c of j.conflicts) out(`JOURNAL_CONFLICT ${c.file}: ${c.reason}\n  backup: ${c.backup}\n  when resolved: autossl recover --discard ${c.journal}`);
    for (const d of j.damaged) out(`JOURNAL_DAMAGED ${d.journal}: ${d.reason}\n  hint: ${ERROR_CODES.JOURNAL_DAMAGED}`);
    for (const f of report.undo.failed) out(`UNDO FAILED ${f.plugin} ${f.kind}: ${f.error.message}`);
    if (j.active + report.undo.active) out(`${j.active + report.undo.active} item(s) belong to runs still in progress; left to them`);
    if (!j.restored.length && !report.undo.ran.length && !problems && !finished.length) out('nothing to recover');
  }
  return problems ? 1 : 0;
}

async function cmdInit(positionals: string[], values: Values): Promise<number> {
  if (positionals.length) throw new AutoSslError('USAGE_INVALID', `autossl init takes no arguments, got ${JSON.stringify(positionals[0]).slice(0, 40)}.`, { hint: 'autossl init [--out FILE] [--dry-run] [--force]' });
  const resolvers = (values.resolver as string[] | undefined) ?? [];
  const addresses = (values.address as string[] | undefined) ?? [];
  if (resolvers.length || addresses.length) validateConfig({ preflight: { resolvers }, serverAddresses: addresses }, '--resolver/--address'); // an IP each
  const { runInit } = await import('./setup/init.js');
  const result = await runInit({ out: values.out as string | undefined, force: values.force === true, dryRun: values['dry-run'] === true, check: values['no-check'] !== true, resolvers, addresses });
  if (values.json === true) {
    out(JSON.stringify({ file: result.file, sites: result.sites, notes: result.notes, discovery: result.discovery }, null, 2));
    return 0;
  }
  if (result.file === null) write(process.stdout, result.text);
  else {
    const served = result.sites.filter((s) => s.certificate).length;
    out(`wrote ${result.file}: ${result.sites.length} site${result.sites.length === 1 ? '' : 's'} (${served} served with a certificate now), nginx ${result.discovery.nginx.config}, certbot ${result.discovery.certbot.configDir}`);
    for (const n of result.notes) out(`note  ${n}`);
    for (const s of result.sites.filter((x) => x.check && !x.check.ok)) out(`check ${s.domain}: ${s.check!.problems[0] ?? 'fails'}`);
    out('next: read it, then "autossl issue --all" (or name domains), and "autossl setup" for renewals');
  }
  return 0;
}

async function cmdUninstall(positionals: string[], values: Values): Promise<number> {
  const [input, ...extra] = positionals;
  if (!input || extra.length) throw new AutoSslError('DOMAIN_INVALID', 'Usage: autossl uninstall <domain>', { hint: 'autossl uninstall example.com' });
  const domain = normalizeDomain(input);
  const engine = await engineFor(values, values.json === true ? undefined : humanEvent);
  const result = await engine.uninstall(domain);
  await engine.close();
  if (values.json === true) out(JSON.stringify({ ...result, error: result.error?.toJSON(), files: result.files.map((f) => f.file) }, null, 2));
  else if (result.ok) {
    out(result.files.length ? `ok    ${domain}: HTTP only now (${result.files.map((f) => f.file).join(', ')} changed, nginx reloaded)` : `ok    ${domain}: no vhost change${result.deleted.length ? '' : ' and no certificate deleted'}`);
    for (const d of result.deleted) out(`      deleted certificate ${d}`);
    for (const k of result.kept) out(`      kept certificate ${k.certificate}: ${k.reason}`);
    for (const n of result.notes) out(`note  ${n}`);
  } else printError(result.error!, false);
  return result.ok ? 0 : result.error && errorKind(result.error.code) === 'input' ? 2 : 1;
}

async function cmdUpload(positionals: string[], values: Values): Promise<number> {
  const [input, ...extra] = positionals;
  if (!input || extra.length || typeof values.cert !== 'string' || typeof values.key !== 'string') throw new AutoSslError('DOMAIN_INVALID', 'Usage: autossl upload <domain> --cert FULLCHAIN.pem --key KEY.pem', { hint: 'autossl upload shop.example.com --cert shop.crt --key shop.key' });
  const domain = normalizeDomain(input);
  const { readRegularFile } = await import('./fsutil.js');
  const read = (file: string, what: string): string => readRegularFile(file, { maxBytes: 256 * 1024, code: 'UPLOAD_INVALID', what }).data.toString('utf8');
  const certificate = read(values.cert, 'certificate');
  const privateKey = read(values.key, 'private key');
  const engine = await engineFor(values, values.json === true ? undefined : humanEvent);
  const result = await engine.installCertificate(domain, { certificate, privateKey });
  await engine.close();
  if (values.json === true) out(JSON.stringify(resultJson(result, false), null, 2));
  else if (result.ok) {
    out(`ok    ${domain}: HTTPS with the uploaded certificate for ${result.certificate?.names.join(', ')} (until ${result.certificate?.notAfter.toISOString()}); autossl does not renew it`);
    for (const n of result.notes) out(`note  ${n}`);
  } else printError(result.error!, false);
  return exitFor(result.ok ? [] : [result.error?.code]);
}

async function cmdAgent(positionals: string[], values: Values): Promise<number> {
  if (positionals.length) throw new AutoSslError('USAGE_INVALID', `Usage: autossl agent, or autossl agent call METHOD PATH [BODY]; got ${JSON.stringify(positionals[0]).slice(0, 40)}.`);
  const { startAgent } = await import('./agent/server.js');
  const agent = await startAgent(await config(values), { loadConfig: () => config(values) });
  err(`autossl agent listening on ${agent.url}`);
  // SIGHUP re-reads the tokens and the config; node's default for it would end the agent (and systemd's
  // Restart=on-failure would leave it down: a HUP is a clean exit to it)
  process.on('SIGHUP', () => {
    err('SIGHUP: re-reading the tokens file and the config');
    void agent.reload().catch((error: unknown) => err(`SIGHUP: ${(error as Error).message}`));
  });
  await new Promise<void>((resolve) => {
    const stop = (signal: string): void => {
      err(`${signal}: stopping (running jobs get ${agent.ctx.config.agent.stopTimeoutMs / 1000} s to finish)`);
      void agent.close().then(resolve);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  return 0;
}

async function cmdAgentCall(positionals: string[], values: Values): Promise<number> {
  const [method, target, body = '', ...extra] = positionals;
  if (!method || !target || extra.length || !/^(GET|POST)$/i.test(method) || !target.startsWith('/')) {
    throw new AutoSslError('USAGE_INVALID', 'Usage: autossl agent call GET|POST /path [JSON-BODY] [--url URL] [--token-file FILE]', { hint: `autossl agent call POST /ssl/status '{"domain":"example.com"}'` });
  }
  if (body) {
    try {
      JSON.parse(body);
    } catch {
      throw new AutoSslError('USAGE_INVALID', 'The body is not valid JSON.', { hint: `Quote it for the shell: '{"domain":"example.com"}'` });
    }
  }
  const cfg = await config(values);
  const { loadTokens } = await import('./agent/auth.js');
  const { call } = await import('./agent/client.js');
  const tokenFile = typeof values['token-file'] === 'string' ? values['token-file'] : cfg.agent.tokensFile;
  const token = loadTokens(tokenFile).tokens[0]!.key;
  const listen = cfg.agent.listen.replace(/^0\.0\.0\.0:/, '127.0.0.1:');
  const url = typeof values.url === 'string' ? values.url : `${cfg.agent.tls ? 'https' : 'http'}://${listen}`;
  const ca = cfg.agent.tls && !values.url ? fs.readFileSync(cfg.agent.tls.cert) : undefined;
  const res = await call(method, target, body, { url, token, ca, insecure: values.insecure === true });
  out(res.body);
  if (res.status < 200 || res.status >= 300) err(`HTTP ${res.status}`);
  return res.status >= 200 && res.status < 300 ? 0 : 1;
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

/** `autossl fleet run | status | hook auth|cleanup` (README "Several nodes"). */
async function cmdFleet(positionals: string[], values: Values): Promise<number> {
  const [sub, phase] = positionals;
  const fleet = await import('./fleet/cli.js');
  const cfg = await config(values);
  if (sub === 'run') {
    await fleet.fleetRun(cfg, err);
    return 0;
  }
  if (sub === 'hook') {
    out(await fleet.fleetHook(cfg, phase ?? '', process.env));
    return 0;
  }
  if (sub === 'status') {
    const engine = await createAutoSsl(cfg);
    const report = await fleet.fleetReport(engine).finally(() => engine.close());
    if (values.json === true) out(JSON.stringify(report, null, 2));
    else for (const line of fleet.formatFleetStatus(report!)) out(line);
    return report && report.mismatches ? 1 : 0;
  }
  throw new AutoSslError('USAGE_INVALID', 'Usage: autossl fleet run | status [--json] | hook auth|cleanup', { hint: 'autossl fleet run on every node (README "Several nodes").' });
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
        verbose: { type: 'boolean', short: 'v' },
        limit: { type: 'string' },
        cert: { type: 'string' },
        key: { type: 'string' },
        url: { type: 'string' },
        'token-file': { type: 'string' },
        insecure: { type: 'boolean' },
        out: { type: 'string' },
        'no-check': { type: 'boolean' },
        resolver: { type: 'string', multiple: true },
        address: { type: 'string', multiple: true },
        agent: { type: 'boolean' },
        'systemd-dir': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean' },
      },
    });
  } catch (error) {
    // Node's parser words it for programmers (and leaves a quote open): say it for the user, one line, then where help is
    const message = (error as Error).message;
    const unknown = /^Unknown option '([^']*)'/.exec(message);
    err(unknown ? `error: unknown option ${JSON.stringify(unknown[1]).slice(0, 60)}${unknown[1]!.startsWith('--') ? '' : ' (a domain that starts with "-" goes after "--": autossl issue -- -x.example.com)'}` : `error: ${message.split('\n')[0]!.slice(0, 200)}`);
    err('run "autossl --help" for the commands and their options');
    return 2;
  }
  const { positionals, values } = parsed;
  const [first, ...rest] = positionals;
  command = first ?? '';
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
      case 'fleet':
        return await cmdFleet(rest, values);
      case 'install-hooks': {
        const engine = await engineFor(values);
        const hooks = await engine.installHooks();
        await engine.close();
        out(`installed ${hooks.join(', ')}: every certbot renewal (certbot.timer, autossl renew, certbot by hand) now runs autossl's hooks`);
        return 0;
      }
      case 'vhost':
        return await cmdVhostShow(rest, values);
      case 'jobs':
        return await cmdJobs(rest, values);
      case 'recover':
        return await cmdRecover(values);
      case 'init':
        return await cmdInit(rest, values);
      case 'setup': {
        const { runSetup } = await import('./setup/setup.js');
        const engine = await engineFor(values);
        const result = await runSetup(engine, { agent: values.agent === true, dryRun: values['dry-run'] === true, systemdDir: values['systemd-dir'] as string | undefined }).finally(() => engine.close());
        if (values.json === true) out(JSON.stringify(result, null, 2));
        else {
          for (const d of result.done) out(`${values['dry-run'] === true ? 'plan' : 'done'}  ${d}`);
          for (const t of result.todo) out(`todo  ${t}`);
        }
        return 0;
      }
      case 'uninstall':
        return await cmdUninstall(rest, values);
      case 'upload':
        return await cmdUpload(rest, values);
      case 'agent':
        return rest[0] === 'call' ? await cmdAgentCall(rest.slice(1), values) : await cmdAgent(rest, values);
      case 'demo':
        return await runDemoFromCheckout(values.keep === true);
      default: {
        const near = closestCommand(command);
        err(`error: unknown command ${JSON.stringify(command.slice(0, 40))}${near ? `; did you mean "${near}"?` : ''}`);
        err('run "autossl --help" for the commands and their options');
        return 2;
      }
    }
  } catch (error) {
    const e = toAutoSslError(error);
    printError(e, values.json === true);
    if (e.code === 'INTERNAL' && process.env.AUTOSSL_DEBUG) err(String((error as Error).stack));
    return errorKind(e.code) === 'input' ? 2 : 1;
  }
}

/** The command a typo was probably meant to be (edit distance 2 at most), from the usage text's command list. */
function closestCommand(typed: string): string | undefined {
  const commands = [...new Set([...USAGE.matchAll(/^ {2}autossl ([a-z-]+)/gm)].map((m) => m[1]!))];
  const distance = (a: string, b: string): number => {
    const row = Array.from({ length: b.length + 1 }, (_, i) => i);
    for (let i = 1; i <= a.length; i++) {
      let prev = row[0]!;
      row[0] = i;
      for (let j = 1; j <= b.length; j++) {
        const here = row[j]!;
        row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
        prev = here;
      }
    }
    return row[b.length]!;
  };
  const best = commands.map((c) => [c, distance(typed.slice(0, 40), c)] as const).sort((x, y) => x[1] - y[1])[0];
  return best && best[1] <= 2 ? best[0] : undefined;
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

/**
 * The demo's ACME rig (pebble, challtestsrv, a private nginx; it can stop services) is a dev tool kept in
 * scripts/sandbox, outside the published package: it runs from a checkout (dist/scripts beside dist/src), and an
 * installed package says so instead of carrying the rig.
 */
async function runDemoFromCheckout(keep: boolean): Promise<number> {
  const rig = new URL('../scripts/sandbox/demo.js', import.meta.url);
  if (!fs.existsSync(rig)) {
    err('error: the demo runs from a checkout of autossl, not from the installed package:');
    err('  git clone <the autossl repository> && cd autossl && npm ci && sudo npm run demo');
    return 2;
  }
  const demo = (await import(rig.href)) as { runDemo(options: { keep: boolean; log: (line: string) => void }): Promise<number> };
  return await demo.runDemo({ keep, log: out });
}
