/** The config a command runs with (a file, or what this server has when there is none), its engine, and the arguments every command checks the same way. */
import { loadConfig } from '../config/load.js';
import { siteFor, validateConfig, type AutoSslConfig } from '../config/schema.js';
import { normalizeDomain } from '../domain.js';
import { createAutoSsl, type AutoSsl } from '../engine.js';
import { AutoSslError } from '../errors.js';
import type { StageEvent } from '../pipeline/context.js';
import { CHECKS } from '../stages/preflight.js';
import { err } from './output.js';

export type Values = Record<string, unknown> & { config?: string };

/** Commands that run with what this server has when no config file exists (init writes it down). */
const ZERO_CONFIG = new Set(['issue', 'check', 'status', 'vhost', 'jobs', 'uninstall', 'upload', 'deploy-hook']);
let command = '';
let announced = false;

/** The command being run (set once by main): only the commands in ZERO_CONFIG run without a config file. */
export function setCommand(name: string): void {
  command = name;
}

export async function config(values: Values): Promise<AutoSslConfig> {
  try {
    return await loadConfig({ file: values.config });
  } catch (error) {
    if (!(error instanceof AutoSslError) || error.code !== 'CONFIG_NOT_FOUND' || values.config || !ZERO_CONFIG.has(command)) throw error;
    const { discover, discoveredConfig, describeDiscovery } = await import('../setup/discover.js');
    const found = await discover();
    if (!announced)
      err(`autossl: no config file; using what this server has: ${describeDiscovery(found)}. "autossl init" writes it down (and lists your sites).`);
    announced = true;
    // certbot's deploy hook runs with no config either: it discovers the same (a zero-config issue installs it)
    return { ...validateConfig(discoveredConfig(found), '(discovered on this server)', process.cwd()), zeroConfig: true };
  }
}

export async function engineFor(values: Values, onEvent?: (e: StageEvent) => void): Promise<AutoSsl> {
  return createAutoSsl(await config(values), { onEvent });
}

export function skipChecks(values: Values): string[] {
  const skips = (values['skip-check'] as string[] | undefined) ?? [];
  for (const s of skips) {
    if (!(CHECKS as readonly string[]).includes(s))
      throw new AutoSslError('USAGE_INVALID', `--skip-check ${JSON.stringify(s).slice(0, 60)} is not a check.`, {
        hint: `The checks are: ${CHECKS.join(', ')}.`,
      });
  }
  return skips;
}

export function domainsOf(positionals: string[], values: Values, cfg: AutoSslConfig, command: string): string[] {
  const domains = values.all ? cfg.sites.map((s) => s.domain) : positionals;
  if (values.all && positionals.length)
    throw new AutoSslError('DOMAIN_INVALID', `--all and domains together: give one or the other.`, {
      hint: `autossl ${command} --all, or autossl ${command} example.com`,
    });
  if (domains.length === 0)
    throw new AutoSslError('DOMAIN_INVALID', values.all ? 'The config has no sites.' : 'No domain given.', {
      hint: `autossl ${command} example.com, or autossl ${command} --all with sites in the config.`,
    });
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
