/**
 * ACME certificate profiles (draft-aaron-acme-profiles; Let's Encrypt: `classic`, `tlsserver` 45 days, `shortlived`
 * 160 hours). A site's `profile` (or `defaults.profile`) is checked while planning, before any order:
 *  - the CA's directory must list it (`meta.profiles`): an unknown name is refused (PROFILE_UNKNOWN);
 *  - the certbot autossl runs must take `--preferred-profile`/`--required-profile` (certbot 4.0 and newer): an older
 *    one is refused (PROFILE_UNSUPPORTED), naming the version needed; Debian 12's certbot 2.1 and Ubuntu 24.04's 2.9
 *    would otherwise stop at an unknown option after the challenge was set up.
 * certbot keeps the flag in the lineage's renewal config (upstream from 4.1, Debian's 4.0 too), so its own renewals
 * ask for the same profile; `verifyKeptForRenewal` tells when a certbot did not.
 */
import fs from 'node:fs';
import { acmeGet } from '../acme-get.js';
import type { AutoSslConfig, SiteConfig } from '../config/schema.js';
import { AutoSslError, quote } from '../errors.js';
import { certbotVersion, type CertbotVersion } from './certbot-version.js';

export interface Profile {
  name: string;
  /** `--required-profile`: the CA must issue this profile or fail the order (no fall-back to its default). */
  required: boolean;
}

/** The first certbot that takes --preferred-profile and --required-profile. */
export const PROFILE_MIN_CERTBOT = { major: 4, minor: 0, text: '4.0' } as const;

/** Let's Encrypt's production directory: what certbot asks when the config names no server. */
const LETS_ENCRYPT_DIRECTORY = 'https://acme-v02.api.letsencrypt.org/directory';

type ProfileSetting = NonNullable<SiteConfig['profile']>;

function normalize(p: ProfileSetting): Profile {
  return typeof p === 'string' ? { name: p, required: false } : { name: p.name, required: p.required === true };
}

/** The profile a site asks for: its own, else the defaults'; undefined when neither names one. */
export function siteProfile(site: Pick<SiteConfig, 'profile'>, defaults: { profile?: ProfileSetting }): Profile | undefined {
  const p = site.profile ?? defaults.profile;
  return p === undefined ? undefined : normalize(p);
}

/** certbot's arguments for a profile. */
export function profileArgs(profile: Profile | undefined): string[] {
  if (!profile) return [];
  return profile.required ? ['--required-profile', profile.name] : ['--preferred-profile', profile.name];
}

export function supportsProfiles(v: CertbotVersion | null): boolean {
  return !!v && (v.major > PROFILE_MIN_CERTBOT.major || (v.major === PROFILE_MIN_CERTBOT.major && v.minor >= PROFILE_MIN_CERTBOT.minor));
}

async function getJson(url: string, ca: Buffer | undefined, timeoutMs: number): Promise<unknown> {
  const answer = await acmeGet(url, ca, timeoutMs);
  if (answer.status !== 200) throw new Error(`HTTP ${answer.status}`);
  try {
    return JSON.parse(answer.body);
  } catch {
    throw new Error('not JSON');
  }
}

/** Directory reads per URL in this process (a batch of thousands of sites asks once). */
const profileLists = new Map<string, Promise<Record<string, string>>>();

/**
 * The profiles the configured CA's directory lists (`meta.profiles`: name -> description); an empty object when
 * it lists none (a CA without profiles, pebble before 2.10). Throws when the directory cannot be read.
 */
export function caProfiles(config: Readonly<AutoSslConfig>): Promise<Record<string, string>> {
  const url = config.certbot.server ?? LETS_ENCRYPT_DIRECTORY;
  let pending = profileLists.get(url);
  if (!pending) {
    const bundle = config.certbot.env.REQUESTS_CA_BUNDLE;
    pending = (async () => {
      const ca = bundle ? fs.readFileSync(bundle) : undefined;
      const dir = (await getJson(url, ca, Math.max(config.preflight.timeoutMs, 5000))) as { meta?: { profiles?: unknown } };
      const listed = dir?.meta?.profiles;
      const out: Record<string, string> = {};
      if (listed && typeof listed === 'object') for (const [k, v] of Object.entries(listed)) out[k] = typeof v === 'string' ? v : '';
      return out;
    })();
    profileLists.set(url, pending);
    pending.catch(() => profileLists.delete(url));
    setTimeout(() => profileLists.delete(url), 3_600_000).unref();
  }
  return pending;
}

/**
 * Refuses a profile the CA does not list or the certbot cannot ask for (before any order). A directory that cannot
 * be read is no verdict: the order itself will say what the CA answers.
 */
export async function checkProfile(config: Readonly<AutoSslConfig>, profile: Profile, domain: string, certbot = true): Promise<{ warning?: string }> {
  let listed: Record<string, string> | null = null;
  let warning: string | undefined;
  try {
    listed = await caProfiles(config);
  } catch (error) {
    warning = `could not read the CA's directory to check profile ${quote(profile.name)} (${error instanceof Error ? error.message : String(error)}); the order will tell`;
  }
  const server = config.certbot.server ?? LETS_ENCRYPT_DIRECTORY;
  if (listed && !Object.hasOwn(listed, profile.name)) {
    const names = Object.keys(listed).sort();
    throw new AutoSslError(
      'PROFILE_UNKNOWN',
      `${domain}: the CA (${server}) lists ${names.length ? `the profiles ${names.join(', ')}` : 'no profiles'}, not ${quote(profile.name)}. Nothing was ordered.`,
      { details: { profile: profile.name, profiles: names, server } },
    );
  }
  if (!certbot) return { warning }; // another issuer asks for the profile its own way
  const version = await certbotVersion(config.certbot);
  if (!supportsProfiles(version)) {
    throw new AutoSslError(
      'PROFILE_UNSUPPORTED',
      `${domain}: profile ${quote(profile.name)} needs certbot ${PROFILE_MIN_CERTBOT.text} or newer (--${profile.required ? 'required' : 'preferred'}-profile); ${config.certbot.binary} is ${version ? `certbot ${version.text}` : 'a certbot whose version could not be read'}. Nothing was ordered.`,
      { details: { profile: profile.name, certbot: version?.text ?? null, needed: PROFILE_MIN_CERTBOT.text } },
    );
  }
  return { warning };
}

/**
 * Whether a lineage's renewal config keeps the profile (`preferred_profile = X` / `required_profile = X` under
 * [renewalparams]): certbot's own renewals then ask for it. Upstream certbot 4.0.0 took the flags without storing them.
 */
export function keptForRenewal(renewalConf: string, profile: Profile): boolean {
  let text = '';
  try {
    text = fs.readFileSync(renewalConf, 'utf8').slice(0, 64 * 1024);
  } catch {
    return false;
  }
  const key = profile.required ? 'required_profile' : 'preferred_profile';
  return new RegExp(`^${key}\\s*=\\s*${profile.name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\s*$`, 'm').test(text);
}

/** `autossl check`'s line about the CA's profiles. */
export function profilesLine(config: Readonly<AutoSslConfig>, ca: { profiles: Record<string, string> | null; profilesError?: string }): string {
  const server = config.certbot.server ?? LETS_ENCRYPT_DIRECTORY;
  if (!ca.profiles) return `CA ${server}: profiles unknown (${ca.profilesError ?? 'directory unreadable'})`;
  const names = Object.keys(ca.profiles).sort();
  if (!names.length) return `CA ${server}: no profiles (the "profile" key cannot be used with this CA)`;
  return `CA ${server}: profiles: ${names.join(', ')}`;
}
