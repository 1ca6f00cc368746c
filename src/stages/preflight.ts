/**
 * Pre-flight: know what Let's Encrypt will see before asking it, so no validation (5 failures per name per hour)
 * is wasted. Each check adds findings to the context; an unresolved error finding stops the domain before
 * certbot runs. Checks are named (`--skip-check NAME`): dns, caa, cloudflare, port80, budget.
 */
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { checkCaa, resolveName, type Resolution, type ResolverOptions } from '../preflight/dns.js';
import { cloudflareMatcher } from '../preflight/cloudflare.js';
import { probeChallenge, type CrossHost } from '../preflight/port80.js';
import { ELSEWHERE_HINT, hostVerdict, literalResolution } from '../preflight/redirect-hosts.js';
import { normalizeIp } from '../preflight/ips.js';
import { ERROR_CODES } from '../errors.js';
import { STAGE } from '../pipeline/hooks.js';
import type { DomainContext, Finding } from '../pipeline/context.js';
import type { Plugin } from '../pipeline/plugin.js';
import { challengeDir, writeServed } from './webroot-dirs.js';
import { reusableLineage } from './issue-certbot.js';
import { fleetOf, fleetStore } from '../fleet/config.js';
import { publishChallenge, withdrawChallenge } from '../fleet/challenge.js';

export const CHECKS = ['dns', 'caa', 'cloudflare', 'port80', 'budget', 'backoff'] as const;

function resolverOptions(ctx: DomainContext): ResolverOptions {
  const p = ctx.services.config.preflight;
  return { servers: p.resolvers, timeoutMs: p.timeoutMs, authoritative: p.authoritative };
}

/** This server's addresses: configured, or every non-loopback address of its interfaces. */
export function serverAddresses(configured: readonly string[]): string[] {
  if (configured.length) return [...configured];
  return Object.values(os.networkInterfaces())
    .flat()
    .filter((i) => i && !i.internal)
    .map((i) => i!.address.toLowerCase());
}

export function resolution(ctx: DomainContext, name: string): Promise<Resolution> {
  return ctx.memo(`dns:${name}`, () => resolveName(name, resolverOptions(ctx)));
}

function add(ctx: DomainContext, finding: Finding): void {
  if (finding.severity === 'error' && finding.code && !finding.hint) finding.hint = ERROR_CODES[finding.code as keyof typeof ERROR_CODES];
  ctx.findings.push(finding);
}

async function dnsCheck(ctx: DomainContext): Promise<void> {
  if (ctx.plan.challenge === 'dns-01') {
    // the CA looks up a TXT record, not this server: A/AAAA and port 80 do not matter
    add(ctx, { check: 'dns', severity: 'info', message: 'DNS-01: the CA checks a TXT record; A/AAAA records need not point here' });
    return;
  }
  const ours = new Set(serverAddresses(ctx.services.config.serverAddresses).map(normalizeIp));
  const isCloudflare = cloudflareMatcher(ctx.services.config.preflight.cloudflareRanges);
  await Promise.all(
    ctx.plan.names.map(async (name) => {
      const r = await resolution(ctx, name);
      const via = r.cnames.length ? ` (via CNAME ${r.cnames.join(' -> ')})` : '';
      if (r.failure && r.a.length === 0 && r.aaaa.length === 0) {
        const code = r.failure.kind === 'TIMEOUT' ? 'DNS_TIMEOUT' : 'DNS_SERVFAIL';
        add(ctx, {
          check: 'dns',
          name,
          severity: 'error',
          code,
          message: `${name}: DNS ${r.failure.kind === 'SERVFAIL' ? 'answered SERVFAIL' : r.failure.kind === 'TIMEOUT' ? 'did not answer in time' : `failed (${r.failure.message})`}.`,
        });
        return;
      }
      if (r.a.length === 0 && r.aaaa.length === 0) {
        add(ctx, {
          check: 'dns',
          name,
          severity: 'error',
          code: 'DNS_NO_RECORDS',
          message: `${name} has no A or AAAA record${via}; Let's Encrypt cannot reach it.`,
        });
        return;
      }
      const all = [...r.a, ...r.aaaa];
      const proxied = all.filter((a) => isCloudflare(a));
      if (proxied.length && !ctx.skipChecks.has('cloudflare')) {
        add(ctx, {
          check: 'cloudflare',
          name,
          severity: 'error',
          code: 'CLOUDFLARE_PROXIED',
          message: `${name} resolves to Cloudflare's proxy (${proxied.join(', ')})${via}: the CA's request would reach Cloudflare, not this server.`,
        });
        return;
      }
      const foreignA = r.a.filter((a) => !ours.has(normalizeIp(a)));
      const foreignAaaa = r.aaaa.filter((a) => !ours.has(normalizeIp(a)));
      const expected = [...ours].join(', ') || '(none detected: set serverAddresses)';
      if (foreignA.length) {
        add(ctx, {
          check: 'dns',
          name,
          severity: 'error',
          code: 'DNS_MISMATCH',
          message: `${name} resolves to ${r.a.join(', ')}${via}, not to this server (${expected}).`,
        });
        return;
      }
      if (foreignAaaa.length) {
        add(ctx, {
          check: 'dns',
          name,
          severity: 'error',
          code: 'DNS_AAAA_MISMATCH',
          message: `${name} has AAAA ${r.aaaa.join(', ')}${via}, not this server (${expected}); Let's Encrypt tries IPv6 first.`,
        });
        return;
      }
      add(ctx, { check: 'dns', name, severity: 'info', message: `${name} -> ${all.join(', ')}${via}` });
    }),
  );
}

async function caaCheck(ctx: DomainContext): Promise<void> {
  await Promise.all(
    ctx.plan.names.map(async (name) => {
      const wildcard = name.startsWith('*.');
      const caa = await checkCaa(wildcard ? name.slice(2) : name, resolverOptions(ctx), 'letsencrypt.org', wildcard);
      if (caa.failure) {
        add(ctx, {
          check: 'caa',
          name,
          severity: 'error',
          code: caa.failure.kind === 'TIMEOUT' ? 'DNS_TIMEOUT' : 'DNS_SERVFAIL',
          message: `${name}: the CAA lookup failed (${caa.failure.kind}); Let's Encrypt refuses to issue when it cannot read CAA.`,
        });
      } else if (!caa.allowsLetsEncrypt) {
        add(ctx, {
          check: 'caa',
          name,
          severity: 'error',
          code: 'CAA_FORBIDS',
          message: `${name}: CAA records at ${caa.at} allow only ${caa.issuers.map((i) => JSON.stringify(i)).join(', ')}, not letsencrypt.org.`,
        });
      } else {
        add(ctx, {
          check: 'caa',
          name,
          severity: 'info',
          message: caa.at ? `${name}: CAA at ${caa.at} allows letsencrypt.org` : `${name}: no CAA records (any CA may issue)`,
        });
      }
    }),
  );
}

async function budgetCheck(ctx: DomainContext): Promise<void> {
  const { maxFailedValidations: max, failedValidationWindowMinutes: minutes } = ctx.services.config.preflight;
  const windowMs = minutes * 60_000;
  const now = Date.now();
  for (const name of ctx.plan.names) {
    const failures = await ctx.services.state({ readOnly: ctx.dryRun }).attempts.validationFailures(name, now - windowMs);
    if (failures.length >= max) {
      const next = new Date(failures[failures.length - max]!.at + windowMs);
      add(ctx, {
        check: 'budget',
        name,
        severity: 'error',
        code: 'VALIDATION_BUDGET_EXHAUSTED',
        message: `${name} failed validation ${failures.length} times in the last ${minutes} minutes (last: ${failures[failures.length - 1]!.detail}); next try allowed at ${next.toISOString()}.`,
      });
    }
  }
}

/**
 * Writes a random token into the webroot, fetches it for every name from every address the name resolves
 * to, deletes it. `pendingEdit` (check mode): the challenge location is not in place yet, so a token that is not
 * served is a warning (issue will add the location), while an unreachable port stays an error.
 */
export async function port80Check(ctx: DomainContext, webroot: string, pendingEdit = false): Promise<void> {
  const token = `autossl-${crypto.randomBytes(16).toString('hex')}`;
  const body = crypto.randomBytes(24).toString('base64url');
  const dir = await challengeDir(webroot);
  const file = path.join(dir, token);
  // a fleet: the balancer may send the probe to any node, as it will the CA's requests
  const fleet = fleetOf(ctx.services.config);
  if (fleet) await publishChallenge(ctx.services.config, fleetStore(ctx.services.state()), fleet, token, body, [webroot]);
  else await writeServed(file, body);
  const timeoutMs = ctx.services.config.preflight.timeoutMs;
  const ours = new Set(serverAddresses(ctx.services.config.serverAddresses).map(normalizeIp));
  // a redirect to another host (www -> apex) is followed as the CA follows it: resolved, then probed here when it is here
  const crossHost: CrossHost = async (from, host, current) => {
    if (ctx.skipChecks.has('dns')) return { address: current }; // nothing is resolved with the dns check skipped
    const verdict = hostVerdict(from, host, literalResolution(host) ?? (await resolution(ctx, host)), ours);
    if (!verdict.here) return { message: verdict.message, hint: ELSEWHERE_HINT };
    return { address: verdict.addresses.find((a) => net.isIPv6(a) === net.isIPv6(current)) ?? verdict.addresses[0]! };
  };
  try {
    await Promise.all(
      ctx.plan.names.map(async (name) => {
        // Let's Encrypt tries IPv6 first and falls back to IPv4; each must work. With the dns check skipped,
        // nothing is resolved: the probe goes to this server's own addresses.
        let addresses: string[];
        if (ctx.skipChecks.has('dns')) addresses = serverAddresses(ctx.services.config.serverAddresses);
        else {
          // a plugin that resolved a finding about this name changed the world for it (a CDN proxy turned off): look again
          const changed = ctx.findings.some((f) => f.name === name && f.resolved);
          const r = changed ? await resolveName(name, resolverOptions(ctx)) : await resolution(ctx, name);
          addresses = [...r.aaaa, ...r.a];
        }
        if (addresses.length === 0) return; // the dns check already reported it
        // nginx applies a reload asynchronously (old workers finish first): a probe that reaches the old
        // configuration is tried again for a short while. Not only after this run's own reload: in an issue run
        // the challenge location is in the file, maybe written a moment ago by another run (another process asking
        // for the same block) whose reload nginx has not applied yet. A check run (`check`) answers at once.
        const settleMs = ctx.reloadedWithChanges ? 3000 : ctx.mode === 'issue' ? 5000 : 0;
        const settleUntil = Date.now() + settleMs;
        const probe = async (a: string) => {
          for (;;) {
            const res = await probeChallenge(name, a, token, body, timeoutMs, crossHost);
            // any failure while nginx may still be loading the challenge location: the old config may also redirect
            // the probe elsewhere (to an HTTPS port nothing listens on yet), not only answer without the token
            if (res.ok || Date.now() > settleUntil) return res;
            await new Promise((r) => setTimeout(r, 100));
          }
        };
        const results = await Promise.all(addresses.map(probe));
        for (const res of results) {
          if (res.ok) {
            add(ctx, { check: 'port80', name, severity: 'info', message: `${name} via ${res.address}: ${res.message}` });
            continue;
          }
          let message = `${name} via ${res.address}: ${res.message}.`;
          if (res.code === 'CHALLENGE_NOT_SERVED') message += ` ${whoAnswers(ctx, name)}`;
          const soft = pendingEdit && res.code === 'CHALLENGE_NOT_SERVED';
          add(ctx, {
            check: 'port80',
            name,
            severity: soft ? 'warning' : 'error',
            code: res.code,
            message: soft ? `${message} autossl issue will add the challenge location first.` : message,
            ...(res.hint ? { hint: res.hint } : {}),
          });
        }
      }),
    );
  } finally {
    await fs.rm(file, { force: true });
    if (fleet) await withdrawChallenge(ctx.services.config, fleetStore(ctx.services.state()), token, [webroot]);
  }
}

/**
 * The redirects to other hosts the challenge meets in the config as it will be (the dry run's overlay included),
 * their hosts resolved as the CA resolves them: one that leads elsewhere fails here, in a dry run as in the real
 * run, before anything is ordered. Returns whether the config could be followed to the end for every name.
 */
export async function redirectHostsCheck(ctx: DomainContext): Promise<boolean> {
  if (ctx.skipChecks.has('dns')) return false;
  const { installer } = ctx.services;
  const config = installer.load(ctx.dryRun ? ctx.overlay : undefined);
  const ours = new Set(serverAddresses(ctx.services.config.serverAddresses).map(normalizeIp));
  let complete = true;
  for (const name of ctx.plan.names) {
    if (name.startsWith('*.')) continue;
    const walk = installer.challengeRedirects(config, name);
    complete &&= walk.complete;
    for (const hop of walk.hops) {
      const verdict = hostVerdict(hop.from, hop.host, literalResolution(hop.host) ?? (await resolution(ctx, hop.host)), ours);
      if (verdict.here) continue;
      add(ctx, { check: 'port80', name, severity: 'error', code: 'REDIRECT_INVALID', message: `${name}: ${verdict.message}.`, hint: ELSEWHERE_HINT });
      break;
    }
  }
  return complete;
}

/** Names the server block nginx picks for the name here, and why it would not serve the token. */
function whoAnswers(ctx: DomainContext, name: string): string {
  try {
    const { installer } = ctx.services;
    const routing = installer.challengeRoute(installer.load(), name);
    if (!routing.block) return 'No server block here has this server_name on port 80, so the default server answered.';
    return `nginx here picks ${routing.block.file}:${routing.block.line}${routing.served ? ` (it serves ${routing.webroot}: is another server or proxy in front?)` : ` (${routing.reason})`}.`;
  } catch {
    return '';
  }
}

/**
 * Pre-flight protects orders: an issue that reuses a lineage (same names, not due) asks the CA nothing, so what the
 * CA would see does not matter (a certbot --nginx lineage on a server whose DNS autossl cannot see, a second run).
 * `autossl check` always runs them.
 */
async function noOrder(ctx: DomainContext): Promise<boolean> {
  if (ctx.mode !== 'issue' || !(await reusableLineage(ctx))) return false;
  await ctx.memo('preflight-skipped-note', async () =>
    ctx.emit({
      stage: 'preflight',
      status: 'info',
      message: `certificate ${ctx.plan.certName} already covers ${ctx.plan.names.join(', ')} and is not due: nothing is ordered, so pre-flight is skipped`,
    }),
  );
  return true;
}

export const preflightPlugin: Plugin = {
  name: 'preflight',
  apply(hooks) {
    hooks.preflight.tapPromise({ name: 'preflight-dns', stage: STAGE.BUILTIN }, async (ctx) => {
      if (!ctx.skipChecks.has('dns') && !(await noOrder(ctx))) await dnsCheck(ctx);
    });
    hooks.preflight.tapPromise({ name: 'preflight-caa', stage: STAGE.BUILTIN }, async (ctx) => {
      if (!ctx.skipChecks.has('caa') && !(await noOrder(ctx))) await caaCheck(ctx);
    });
    // Not a check one can skip: nginx must run here before anything is written or ordered. Without it the first
    // edit would be written and only then fail `nginx -t`, or a certificate be ordered that no nginx can serve.
    hooks.preflight.tapPromise({ name: 'preflight-nginx', stage: STAGE.BUILTIN }, async (ctx) => {
      await ctx.services.installer.version(); // NGINX_NOT_FOUND naming the binary
    });
    hooks.preflight.tapPromise({ name: 'preflight-budget', stage: STAGE.BUILTIN }, async (ctx) => {
      if (!ctx.skipChecks.has('budget') && !(await noOrder(ctx))) await budgetCheck(ctx);
    });
    // The self-check runs once the challenge is set up (the vhost serves the webroot), right before certbot.
    hooks.beforeIssue.tapPromise({ name: 'preflight-port80', stage: STAGE.LAST }, async (ctx) => {
      if (ctx.skipChecks.has('port80') || ctx.challenge?.type !== 'http-01' || !ctx.challenge.webroot) return;
      if (await reusableLineage(ctx)) return; // the existing certificate will be reused: nothing to validate
      // the same verdict in a dry run and in the real run: redirects followed through the config and DNS first
      const complete = await redirectHostsCheck(ctx);
      if (ctx.findings.some((f) => f.check === 'port80' && f.severity === 'error')) return;
      if (ctx.dryRun) {
        const note = `port80: not fetched (a dry run writes no token)${complete ? "; the challenge's redirects were followed through the config and DNS" : '; the challenge leaves what this config says (a redirect autossl cannot follow offline): only the real run can tell where it lands'}`;
        ctx.plan.notes.push(note);
        ctx.emit({ stage: 'beforeIssue', status: 'info', message: note });
        return;
      }
      await port80Check(ctx, ctx.challenge.webroot);
    });
  },
};
