#!/usr/bin/env node
/**
 * The command line: argument parsing, engine calls, output. Human output by default (one line per stage with
 * its time), `--json` for machines. Exit codes: 0 every domain succeeded, 1 some failed, 2 bad usage or config.
 */
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { loadConfig } from './config/load.js';
import type { AutoSslConfig } from './config/schema.js';
import { unifiedDiff } from './diff.js';
import { normalizeDomain } from './domain.js';
import { createAutoSsl } from './engine.js';
import { AutoSslError, toAutoSslError } from './errors.js';
import { locateServers, newVhostEdit, planHttpsEdit } from './nginx/edit.js';
import { lineColumn } from './nginx/parse.js';
import type { StageEvent } from './pipeline/context.js';
import type { DomainResult } from './pipeline/pipeline.js';
import { collectStatus, deployHook, installHooks, renew } from './renewal/renewal.js';
import { needsAttention } from './renewal/status.js';
import { addHttpsDirectives } from './stages/vhost-https.js';

const USAGE = `autossl: trusted certificates for every nginx vhost

Usage:
  autossl issue <domain...> [--dry-run] [--force] [--json]   issue (or reuse) and install certificates
  autossl issue --all [--dry-run] [--json]                   every site in the config
  autossl check <domain...> [--json]                         pre-flight only: what Let's Encrypt would see
  autossl status [--json]                                    every certificate, most urgent first (exit 1: needs attention)
  autossl renew [--cert-name NAME] [--force] [--json]        certbot renew now, each lineage's outcome recorded
  autossl install-hooks                                      make every certbot renewal run autossl's deploy hook
  autossl deploy-hook                                        (run by certbot) re-point vhosts, nginx -t, reload
  autossl vhost show <domain> [--diff] [--json]              which file and block serve a domain
  autossl recover                                            undo edits left by a crashed run
  autossl demo [--keep]                                      a self-contained demo on 127.0.0.1

Options:
  --config FILE        config file (default: found by cosmiconfig, module name "autossl")
  --skip-check NAME    skip a pre-flight check: dns, caa, cloudflare, port80, budget (repeatable)
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
  if (event.plugin) return; // per-plugin timings go to --json; humans get one line per stage
  if (event.status === 'done') out(`  ${event.domain.padEnd(28)} ${event.stage.padEnd(12)} ${fmtMs(event.ms).padStart(9)}`);
  else if (event.status === 'error') out(`  ${event.domain.padEnd(28)} ${event.stage.padEnd(12)} ${fmtMs(event.ms).padStart(9)}  FAILED`);
  else if (event.status === 'info' && event.message) out(`  ${event.domain.padEnd(28)} ${''.padEnd(12)} ${''.padStart(9)}  ${event.message}`);
}

function resultJson(r: DomainResult, dryRun: boolean) {
  return {
    domain: r.domain,
    names: r.names,
    ok: r.ok,
    error: r.error?.toJSON(),
    lineage: r.lineage && !dryRun ? { name: r.lineage.name, fullchain: r.lineage.fullchain, privkey: r.lineage.privkey } : undefined,
    reused: r.reused,
    changes: r.edits.map((e) => ({ file: e.file, changes: e.changes, ...(dryRun ? { diff: unifiedDiff(e.file, e.before, e.after) } : {}) })),
    rolledBack: r.rolledBack,
    ms: Math.round(r.ms),
    stages: r.events.filter((e) => e.status === 'done' || e.status === 'error').map((e) => ({ stage: e.stage, plugin: e.plugin, status: e.status, ms: Math.round(e.ms ?? 0) })),
  };
}

async function config(values: { config?: string }): Promise<AutoSslConfig> {
  return loadConfig({ file: values.config });
}

async function cmdIssue(positionals: string[], values: Record<string, unknown>): Promise<number> {
  const json = values.json === true;
  const dryRun = values['dry-run'] === true;
  const cfg = await config(values as { config?: string });
  let domains = positionals;
  if (values.all) domains = cfg.sites.map((s) => s.domain);
  if (domains.length === 0) throw new AutoSslError('DOMAIN_INVALID', values.all ? 'The config has no sites.' : 'No domain given.', { hint: 'autossl issue example.com, or autossl issue --all with sites in the config.' });
  // Refuse any bad name before anything runs: one hostile argument stops the whole command.
  domains = domains.map((d) => normalizeDomain(d));
  const engine = await createAutoSsl(cfg);
  if (!json) out(`autossl issue${dryRun ? ' (dry run: nothing is written, certbot is not run)' : ''}`);
  const results = await engine.issue(domains, {
    dryRun,
    force: values.force === true,
    skipChecks: (values['skip-check'] as string[] | undefined) ?? [],
    onEvent: json ? undefined : humanEvent,
  });
  if (json) {
    out(JSON.stringify({ ok: results.every((r) => r.ok), results: results.map((r) => resultJson(r, dryRun)) }, null, 2));
  } else {
    for (const r of results) {
      if (dryRun) for (const e of r.edits) out(unifiedDiff(e.file, e.before, e.after));
      if (r.ok) {
        const what = dryRun ? 'would be served over HTTPS' : r.reused ? `HTTPS with existing certificate ${r.lineage?.name}` : `HTTPS with new certificate ${r.lineage?.name}`;
        out(`ok    ${r.domain}: ${what}${r.edits.length ? ` (${r.edits.length} file${r.edits.length > 1 ? 's' : ''} ${dryRun ? 'to change' : 'changed'})` : ' (no vhost change)'} in ${fmtMs(r.ms)}`);
      } else {
        out(`FAIL  ${r.domain}: ${r.error?.code}: ${r.error?.message}`);
        out(`      hint: ${r.error?.hint}`);
        if (r.rolledBack.length) out(`      restored: ${r.rolledBack.join(', ')}`);
      }
    }
  }
  return results.every((r) => r.ok) ? 0 : 1;
}

async function cmdCheck(positionals: string[], values: Record<string, unknown>): Promise<number> {
  const json = values.json === true;
  const cfg = await config(values as { config?: string });
  const domains = (values.all ? cfg.sites.map((s) => s.domain) : positionals).map((d) => normalizeDomain(d));
  if (domains.length === 0) throw new AutoSslError('DOMAIN_INVALID', 'No domain given.', { hint: 'autossl check example.com' });
  const engine = await createAutoSsl(cfg);
  const results = await engine.check(domains, { skipChecks: (values['skip-check'] as string[] | undefined) ?? [] });
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

async function cmdStatus(values: Record<string, unknown>): Promise<number> {
  const engine = await createAutoSsl(await config(values as { config?: string }));
  const rows = await collectStatus(engine);
  if (values.json === true) out(JSON.stringify({ attention: needsAttention(rows), certificates: rows }, null, 2));
  else if (rows.length === 0) out('no certificates');
  else {
    out(`${'DOMAIN'.padEnd(32)} ${'EXPIRES'.padEnd(20)} ${'DAYS'.padStart(6)}  ${'STATE'.padEnd(8)} LAST ERROR`);
    for (const r of rows) {
      const err = r.lastError ? `${r.lastError.code ?? ''}: ${r.lastError.message ?? ''}`.slice(0, 160) : '';
      out(`${r.domain.padEnd(32)} ${(r.notAfter ?? '-').slice(0, 19).padEnd(20)} ${(r.daysLeft === null ? '-' : r.daysLeft.toFixed(1)).padStart(6)}  ${r.state.padEnd(8)} ${err}`);
    }
  }
  return needsAttention(rows) ? 1 : 0;
}

async function cmdRenew(values: Record<string, unknown>): Promise<number> {
  const engine = await createAutoSsl(await config(values as { config?: string }));
  const outcomes = await renew(engine, { certName: values['cert-name'] as string | undefined, force: values.force === true });
  if (values.json === true) out(JSON.stringify({ ok: outcomes.every((o) => o.outcome !== 'failed'), results: outcomes }, null, 2));
  else for (const o of outcomes) out(`${o.outcome.padEnd(8)} ${o.lineage}${o.message ? `: ${o.message}` : ''}`);
  return outcomes.some((o) => o.outcome === 'failed') ? 1 : 0;
}

async function cmdDeployHook(values: Record<string, unknown>): Promise<number> {
  const engine = await createAutoSsl(await config(values as { config?: string }));
  const result = await deployHook(engine);
  if (values.json === true) out(JSON.stringify(result, null, 2));
  else out(`deployed ${result.lineage} (serial ${result.serial}) for ${result.domains.join(', ')}${result.changedFiles.length ? `; updated ${result.changedFiles.join(', ')}` : ''}; nginx reloaded`);
  return result.served.every((s) => s.ok) ? 0 : 1;
}

async function cmdVhostShow(positionals: string[], values: Record<string, unknown>): Promise<number> {
  const json = values.json === true;
  const [sub, input] = positionals;
  if (sub !== 'show' || !input) throw new AutoSslError('DOMAIN_INVALID', 'Usage: autossl vhost show <domain> [--diff]');
  const domain = normalizeDomain(input);
  const cfg = await config(values as { config?: string });
  const engine = await createAutoSsl(cfg);
  const tree = engine.loadTree();
  const site = cfg.sites.find((s) => s.domain === domain);
  const names = [domain, ...(site?.aliases ?? [])];
  const located = locateServers(tree, names);
  const describe = (m: Map<string, { file: string; config: { source: string }; directive: { start: number }; names: string[]; listens: Array<{ socket: string; ssl: boolean }> } | null>) =>
    [...m.entries()].map(([name, s]) => (s ? { name, file: s.file, line: lineColumn(s.config.source, s.directive.start).line, serverNames: s.names, listens: s.listens.map((l) => `${l.socket}${l.ssl ? ' ssl' : ''}`) } : { name, file: null }));
  const report = { domain, http: describe(located.http), https: describe(located.https) };
  let diffs: string[] = [];
  if (values.diff) {
    const edit = newVhostEdit(names, site?.redirect ?? cfg.defaults.redirect);
    // placeholder paths for display only: the real ones come from the lineage certbot reports
    const live = `${cfg.certbot.configDir}/live/${site?.certName ?? domain}`;
    addHttpsDirectives(edit, { fullchain: `${live}/fullchain.pem`, privkey: `${live}/privkey.pem` }, { port: cfg.nginx.httpsPort, http2: cfg.nginx.http2 });
    const plan = planHttpsEdit(tree, edit, { nginxVersion: await engine.nginx.version(), httpsPort: cfg.nginx.httpsPort });
    diffs = plan.edits.map((e) => unifiedDiff(e.file, e.before, e.after));
  }
  if (json) out(JSON.stringify({ ...report, diff: values.diff ? diffs : undefined }, null, 2));
  else {
    for (const [label, list] of [['port 80', report.http], ['TLS', report.https]] as const) {
      for (const entry of list) out(`${entry.name} (${label}): ${'line' in entry ? `${entry.file}:${entry.line}  server_name ${(entry.serverNames ?? []).join(' ')}  listen ${(entry.listens ?? []).join(', ')}` : 'no server block'}`);
    }
    for (const d of diffs) out(d);
    if (values.diff && diffs.length === 0) out('(the HTTPS edit would change nothing)');
  }
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
        'skip-check': { type: 'string', multiple: true },
        'cert-name': { type: 'string' },
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
    out(USAGE);
    return command || values.help ? 0 : 2;
  }
  try {
    switch (command) {
      case 'issue':
        return await cmdIssue(rest, values);
      case 'status':
        return await cmdStatus(values);
      case 'renew':
        return await cmdRenew(values);
      case 'deploy-hook':
        return await cmdDeployHook(values);
      case 'install-hooks': {
        const cfg = await config(values);
        const hook = installHooks(await createAutoSsl(cfg), cfg.filepath);
        out(`installed ${hook}: every certbot renewal (certbot.timer or autossl renew) now runs autossl deploy-hook`);
        return 0;
      }
      case 'check':
        return await cmdCheck(rest, values);
      case 'vhost':
        return await cmdVhostShow(rest, values);
      case 'recover': {
        const engine = await createAutoSsl(await config(values));
        const restored = await engine.recover();
        out(restored.length ? `restored: ${restored.join(', ')}` : 'nothing to recover');
        return 0;
      }
      case 'demo':
        return await (await import('./sandbox/demo.js')).runDemo({ keep: values.keep === true, log: out });
      default:
        err(`error: unknown command "${command}"`);
        err(USAGE);
        return 2;
    }
  } catch (error) {
    const e = toAutoSslError(error);
    printError(e, values.json === true);
    if (e.code === 'INTERNAL' && process.env.AUTOSSL_DEBUG) err(String((error as Error).stack));
    return e.code === 'INTERNAL' || e.code === 'CERTBOT_FAILED' || e.code === 'NGINX_TEST_FAILED' ? 1 : 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error) => {
    err(`error INTERNAL: ${(error as Error).message}`);
    process.exitCode = 1;
  },
);
