/**
 * The built-in issuer: certbot. `certonly --webroot` for HTTP-01, `certonly --manual` with autossl's DNS hooks for
 * DNS-01; a new lineage is ordered in private certbot directories (parallel with others) and adopted into the main
 * ones. Its lineages are certbot's (`live/<name>/`, `renewal/<name>.conf`); nothing outside src/certbot and this
 * file needs to know that layout to obtain, find or renew one.
 *
 * `certbot renew` of every due lineage (with certbot's own deploy hook) is this issuer's renewal path (renewDue);
 * `renew` renews one lineage (autossl's forced renewals: revoked, ARI); certbot's hooks ask it what certbot's run
 * failed (lastRunFailures) and which lineage it renewed (renewedLineage): src/issuer/certbot-renew.ts and
 * certbot-deploy-env.ts.
 */
import path from 'node:path';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import type { AutoSslConfig } from '../config/schema.js';
import { certonlyDns, certonlyFleet, certonlyWebroot, execCertbot, summarizeProblems, type CertbotSettings } from '../certbot/certbot.js';
import { adopt, ensureAccount, privateDirs, recoverPrivateOrders } from '../certbot/orders.js';
import type { Semaphore } from '../bounded.js';
import { CERTONLY_PARENT_ENV, insideAutosslCertonly, writeHookScript } from '../certbot/hooks.js';
import { readLineage, type Lineage as LineageFiles } from '../certbot/lineage.js';
import { AutoSslError } from '../errors.js';
import { revocationOf } from '../renewal/revocation.js';
import type { Store } from '../store/store.js';
import { publishChallenge, withdrawChallenge } from '../fleet/challenge.js';
import { fleetOf, fleetStore } from '../fleet/config.js';
import { HookSpool, spoolPrelude } from '../fleet/spool.js';
import { keepCertbotLineage } from './certbot-keep.js';
import { ensureDeployHook, installHooks } from './certbot-hooks.js';
import { FLEET_HOOK_ENTRY, FLEET_WEBROOT_ENV } from '../fleet/env.js';
import { readLineageFiles, type Issuer, type Lineage, type ObtainRequest } from './issuer.js';
import { keptForRenewal } from './profile.js';
import { certbotVersion } from './certbot-version.js';
import { keepRenewBefore, mayNeedRenewBefore, renewBeforeFor } from './renew-before.js';
import { holdRenewal } from './renewal-hold.js';
import { lastRunFailuresOfCertbot, renewDueWithCertbot, renewWithCertbot } from './certbot-renew.js';
import { validateDeployEnv } from './certbot-deploy-env.js';

/** certbot's settings with the cross-process lock under autossl's state dir. */
export function certbotSettings(config: AutoSslConfig): CertbotSettings {
  return { ...config.certbot, lockDir: path.join(config.stateDir, 'locks') };
}

/** A certbot lineage's files as a Lineage value. */
export function certbotLineage(files: LineageFiles): Lineage {
  return readLineageFiles({
    id: files.name,
    certPath: files.cert,
    chainPath: files.chain,
    fullchainPath: files.fullchain,
    keyPath: files.privkey,
    renewalConf: files.renewalConf,
  });
}

function filesOf(l: Lineage): LineageFiles {
  return { name: l.id, cert: l.certPath, chain: l.chainPath, fullchain: l.fullchainPath, privkey: l.keyPath, renewalConf: l.renewalConf ?? '' };
}

export interface CertbotIssuerDeps {
  config: AutoSslConfig;
  state(): Store;
  /** At most `batch.concurrency` certbot processes at once in this process. */
  slots: Semaphore;
}

export function certbotIssuer({ config, state, slots }: CertbotIssuerDeps): Issuer {
  const settings = certbotSettings(config);
  const live = path.resolve(config.certbot.configDir, 'live') + path.sep;

  /** The manual hook scripts certbot runs for DNS-01 (their paths end up in the lineage's renewal config). */
  function dnsHooks(domain: string): { authHook: string; cleanupHook: string } {
    if (!config.filepath) {
      throw new AutoSslError(
        'CONFIG_INVALID',
        `${domain} uses DNS-01, which needs the config in a file: certbot runs the DNS hooks (and later renewals) in processes of their own that must load it.`,
        { hint: 'Put the config in a file and pass --config FILE (or keep it where autossl finds it).' },
      );
    }
    const dir = path.join(config.stateDir, 'hooks');
    const note = 'Installed by autossl: certbot runs this for DNS-01 challenges (CERTBOT_DOMAIN, CERTBOT_VALIDATION).';
    return {
      authHook: writeHookScript(path.join(dir, 'dns-auth'), ['dns-hook', 'auth'], config.filepath, note),
      cleanupHook: writeHookScript(path.join(dir, 'dns-cleanup'), ['dns-hook', 'cleanup'], config.filepath, note),
    };
  }

  /** The manual HTTP-01 hooks of a fleet node (kept in the lineage's renewal config: certbot's renewals use them too); null outside a fleet. */
  function fleetHooks(): { authHook: string; cleanupHook: string } | null {
    if (!fleetOf(config)) return null;
    if (!config.filepath)
      throw new AutoSslError(
        'CONFIG_INVALID',
        'A fleet node needs its config in a file: certbot runs the fleet hooks in processes of their own that must load it.',
        { hint: 'Put the config in a file and pass --config FILE.' },
      );
    const dir = path.join(config.stateDir, 'hooks');
    const note = 'Installed by autossl: certbot runs this for HTTP-01 in a fleet (CERTBOT_TOKEN, CERTBOT_VALIDATION): every node serves the token.';
    return {
      authHook: writeHookScript(path.join(dir, 'fleet-auth'), ['auth'], config.filepath, note, FLEET_HOOK_ENTRY, spoolPrelude('auth', CERTONLY_PARENT_ENV)),
      cleanupHook: writeHookScript(
        path.join(dir, 'fleet-cleanup'),
        ['cleanup'],
        config.filepath,
        note,
        FLEET_HOOK_ENTRY,
        spoolPrelude('cleanup', CERTONLY_PARENT_ENV),
      ),
    };
  }

  /**
   * A fleet order: certbot's hooks hand their challenges to this process through a spool (src/fleet/spool.ts), which
   * publishes them with the store it holds open, instead of a Node process per hook.
   */
  async function fleetOrder(webroot: string, run: (env: Record<string, string>) => Promise<LineageFiles>): Promise<LineageFiles> {
    const settings = fleetOf(config)!;
    const spool = await HookSpool.open(path.join(config.stateDir, 'hooks'), async (phase, token, content) => {
      const fleet = fleetStore(state());
      if (phase === 'cleanup') {
        await withdrawChallenge(config, fleet, token, [webroot]);
        return `withdrew ${token}`;
      }
      const done = await publishChallenge(config, fleet, settings, token, content, [webroot]);
      return `token served by ${done.nodes.join(', ')} (${done.ms} ms)`;
    });
    try {
      return await run(spool.env);
    } finally {
      await spool.close();
    }
  }

  /** Orders a new lineage in a private certbot directory set (parallel with others), then adopts it. */
  async function privateOrder(certName: string, order: (s: CertbotSettings) => Promise<LineageFiles>): Promise<LineageFiles> {
    await ensureAccount(settings);
    const priv = await privateDirs(settings, config.stateDir, certName);
    let ordered: LineageFiles;
    try {
      ordered = await slots.run(() => order(priv));
    } catch (error) {
      // keep certbot's log where the admin looks for it; the rest of the private directories goes
      const log = path.join(priv.logsDir, 'letsencrypt.log');
      const kept = path.join(settings.logsDir, 'autossl-orders', `${certName}-${Date.now()}.log`);
      await fsp
        .mkdir(path.dirname(kept), { recursive: true })
        .then(() => fsp.rename(log, kept))
        .catch(() => undefined);
      if (error instanceof AutoSslError && error.details.log) (error.details as Record<string, unknown>).log = kept;
      await fsp.rm(priv.root, { recursive: true, force: true });
      throw error;
    }
    const lineage = await adopt(settings, priv, ordered.name);
    await fsp.rm(priv.root, { recursive: true, force: true });
    return lineage;
  }

  async function find(id: string): Promise<Lineage | null> {
    const files = readLineage(config.certbot.configDir, id);
    if (!files) return null;
    try {
      return certbotLineage(files);
    } catch {
      return null; // a lineage whose certificate cannot be read is no use to anyone: ordered anew
    }
  }

  return {
    name: 'certbot',
    find,
    async list() {
      let names: string[] = [];
      try {
        names = fs
          .readdirSync(live)
          .filter((n) => n !== 'README' && !n.startsWith('.'))
          .sort();
      } catch {
        names = [];
      }
      const out: Lineage[] = [];
      for (const n of names) {
        const l = await find(n).catch(() => null);
        if (l) out.push(l);
      }
      return out;
    },
    async obtain(request: ObtainRequest) {
      // an account the CA rate-limited places no order before the time it gave (autossl never burns the limit)
      const limitServer = settings.server ?? 'letsencrypt';
      const store = state();
      const limited = await store.rateLimits.get(limitServer);
      if (limited && Date.now() < limited.until) {
        throw new AutoSslError(
          'RATE_LIMITED',
          `Not ordered: the CA rate-limited this account until ${new Date(limited.until).toISOString()} (${limited.message}).`,
          { details: { until: new Date(limited.until).toISOString() } },
        );
      }
      const certbotRequest = { certName: request.id, names: request.names, force: request.force, profile: request.profile };
      let order: (s: CertbotSettings) => Promise<LineageFiles>;
      if (request.challenge.type === 'dns-01') {
        const hooksPaths = dnsHooks(request.names[0] ?? request.id);
        order = (s) => certonlyDns(s, { ...certbotRequest, ...hooksPaths });
      } else {
        const webroot = request.challenge.webroot;
        if (!webroot) throw new AutoSslError('INTERNAL', 'No webroot for the HTTP-01 challenge: the challenge stage did not run.');
        // in a fleet the token must be on every node before the CA looks (the balancer sends it anywhere)
        const fleet = fleetHooks();
        order = fleet
          ? (s) => fleetOrder(webroot, (env) => certonlyFleet(s, { ...certbotRequest, ...fleet, env: { [FLEET_WEBROOT_ENV]: webroot, ...env } }))
          : (s) => certonlyWebroot(s, { ...certbotRequest, webroot });
      }
      const existing = readLineage(config.certbot.configDir, request.id);
      // a new lineage is ordered beside the others, in its own directories; an existing one in the main directory
      let files: LineageFiles;
      try {
        files = !existing && config.batch.privateOrders ? await privateOrder(request.id, order) : await slots.run(() => order(settings));
      } catch (error) {
        if (error instanceof AutoSslError && error.code === 'RATE_LIMITED') {
          // every order of this account waits until then: the other domains of the batch are told, not ordered
          await store.rateLimits.set(limitServer, { until: Date.parse(String(error.details.until)), message: error.message });
        }
        throw error;
      }
      // certbot's own renewals ask for the profile only when its renewal config keeps it (upstream 4.0.0 did not)
      if (request.profile && !keptForRenewal(files.renewalConf, request.profile))
        request.log(
          `warning: certbot did not keep profile ${request.profile.name} in ${files.renewalConf}: its renewals will get the CA's default profile (certbot 4.1 keeps it)`,
        );
      const lineage = certbotLineage(files);
      // certbot < 4.1 renews whatever has less than 30 days left: a short-lived certificate on every run (renew-before.ts)
      const lifetime = lineage.notAfter.getTime() - lineage.notBefore.getTime();
      // `certbot --version` is a python start (~0.4 s of every issue when asked each time): only for short lives
      const version = mayNeedRenewBefore(lifetime) ? await certbotVersion({ binary: settings.binary, env: settings.env }) : null;
      const wrote = keepRenewBefore(files.renewalConf, renewBeforeFor(version, lifetime, config.renewal.windowFraction));
      if (wrote)
        request.log(
          `certbot ${version?.text} would renew this ${Math.round(lifetime / 3_600_000)}-hour certificate on every run (30 days before expiry): "${wrote}" written into ${files.renewalConf}`,
        );
      return lineage;
    },
    renew: (lineage, options) => renewWithCertbot(settings, lineage, options.force, find),
    renewDue: (request) => renewDueWithCertbot(settings, request),
    lastRunFailures: (unrenewed, tried) => lastRunFailuresOfCertbot(config.certbot.logsDir, unrenewed, tried),
    insideOwnOrder: insideAutosslCertonly,
    renewedLineage(env) {
      const { name, domains } = validateDeployEnv(config.certbot.configDir, env);
      return { id: name, domains };
    },
    async revoked(lineage) {
      try {
        return (await revocationOf(config, state(), filesOf(lineage), lineage.serial, { fresh: true })) === 'revoked';
      } catch {
        return false;
      }
    },
    async keep(id, pems) {
      return certbotLineage(await keepCertbotLineage(config.certbot.configDir, id, pems));
    },
    installHooks: () => installHooks({ config }),
    ensureRenewalHooks: (ids) => ensureDeployHook({ config }, ids),
    files: (id) => readLineage(config.certbot.configDir, id),
    holdRenewals(id, until) {
      const files = readLineage(config.certbot.configDir, id);
      return files ? holdRenewal(files.renewalConf, until) : false;
    },
    async remove(id) {
      if (!readLineage(config.certbot.configDir, id)) return false;
      const run = await execCertbot(settings, ['delete', '--cert-name', id]);
      if (run.exitCode !== 0)
        throw new AutoSslError(
          'CERTBOT_FAILED',
          `certbot delete --cert-name ${id} failed: ${summarizeProblems(run.problems) || run.stderr.trim().split('\n').pop() || `exit ${run.exitCode}`}`,
        );
      return true;
    },
    recover() {
      return recoverPrivateOrders(settings, config.stateDir);
    },
    lineageOfPath(file) {
      const full = path.resolve(file);
      return full.startsWith(live) ? full.slice(live.length).split(path.sep)[0] : undefined;
    },
    plannedPaths(id) {
      const dir = path.join(config.certbot.configDir, 'live', id);
      return { certPath: `${dir}/cert.pem`, chainPath: `${dir}/chain.pem`, fullchainPath: `${dir}/fullchain.pem`, keyPath: `${dir}/privkey.pem` };
    },
  };
}
