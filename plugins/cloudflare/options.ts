/**
 * What both Cloudflare plugins take in the config, checked when the config loads: the API token (given inline,
 * in a file, or in an environment variable; read when first needed, so commands that never touch Cloudflare do
 * not need it), the API base URL (tests point it at a local stand-in), the client's bounds, and which names the
 * plugin manages.
 */
import fs from 'node:fs';
import { AutoSslError, normalizeDomain } from 'autossl';
import { CloudflareClient } from './client.js';

export interface CloudflareOptions {
  /** Returns the token (read once). */
  token(): string;
  baseUrl?: string;
  maxRetryWaitMs?: number;
  timeoutMs?: number;
  retries?: number;
  /** Zones (or names under them) this plugin acts for; empty: any zone the token can see. */
  zones: string[];
}

function refuse(plugin: string, message: string): never {
  throw new AutoSslError('PLUGIN_LOAD_FAILED', `${plugin}: ${message}`, {
    hint: 'See README "Cloudflare": give exactly one of "token", "tokenFile" or "tokenEnv", and the token Zone:Zone:Read and Zone:DNS:Edit.',
  });
}

function readTokenFile(plugin: string, file: string): string {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (error) {
    throw new AutoSslError(
      'CLOUDFLARE_AUTH_FAILED',
      `${plugin}: the token file ${file} cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}).`,
    );
  }
  if (!st.isFile() || st.size > 4096) throw new AutoSslError('CLOUDFLARE_AUTH_FAILED', `${plugin}: the token file ${file} is not a small regular file.`);
  if (st.mode & 0o077)
    throw new AutoSslError(
      'CLOUDFLARE_AUTH_FAILED',
      `${plugin}: the token file ${file} is readable by group or others (mode ${(st.mode & 0o777).toString(8)}); the plugin does not use a token others can read.`,
      { hint: `chmod 600 ${file}` },
    );
  return fs.readFileSync(file, 'utf8').trim();
}

/** Parses the options shared by cloudflare-proxy and cloudflare-dns. */
export function cloudflareOptions(plugin: string, raw: Record<string, unknown>, extra: readonly string[] = []): CloudflareOptions {
  const known = ['token', 'tokenFile', 'tokenEnv', 'apiBase', 'maxRetryWaitMs', 'timeoutMs', 'retries', 'zones', ...extra];
  for (const k of Object.keys(raw)) if (!known.includes(k)) refuse(plugin, `unknown option ${JSON.stringify(k).slice(0, 60)} (known: ${known.join(', ')}).`);
  const sources = (['token', 'tokenFile', 'tokenEnv'] as const).filter((k) => raw[k] !== undefined);
  if (sources.length !== 1)
    refuse(plugin, sources.length ? `give one of ${sources.join(' and ')}, not both.` : 'no API token: give "token", "tokenFile" or "tokenEnv".');
  const source = sources[0]!;
  const value = raw[source];
  if (typeof value !== 'string' || !value.trim()) refuse(plugin, `"${source}" must be a non-empty string.`);
  let cached: string | undefined;
  const token = (): string => {
    if (cached !== undefined) return cached;
    const t = source === 'token' ? value.trim() : source === 'tokenFile' ? readTokenFile(plugin, value) : (process.env[value] ?? '').trim();
    if (!t)
      throw new AutoSslError(
        'CLOUDFLARE_AUTH_FAILED',
        `${plugin}: ${source === 'tokenEnv' ? `the environment variable ${value} is not set` : 'the token is empty'}.`,
        { hint: 'Certbot\'s timer and hooks do not see your shell\'s variables: prefer "tokenFile".' },
      );
    cached = t;
    return t;
  };
  const num = (key: string, min: number, max: number): number | undefined => {
    const v = raw[key];
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) refuse(plugin, `"${key}" must be an integer from ${min} to ${max}.`);
    return v;
  };
  const apiBase = raw.apiBase;
  if (apiBase !== undefined && (typeof apiBase !== 'string' || !/^https?:\/\/[^\s]+$/.test(apiBase))) refuse(plugin, '"apiBase" must be an http(s) URL.');
  if (raw.zones !== undefined && (!Array.isArray(raw.zones) || raw.zones.some((z) => typeof z !== 'string')))
    refuse(plugin, '"zones" must be a list of zone names.');
  const zones = ((raw.zones as string[] | undefined) ?? []).map((z) => {
    try {
      return normalizeDomain(z);
    } catch (error) {
      return refuse(plugin, `"zones": ${(error as Error).message}`);
    }
  });
  return {
    token,
    baseUrl: apiBase as string | undefined,
    maxRetryWaitMs: num('maxRetryWaitMs', 0, 3_600_000),
    timeoutMs: num('timeoutMs', 100, 600_000),
    retries: num('retries', 0, 10),
    zones,
  };
}

/** Whether the plugin acts for a name (its zones, or all when none are listed). */
export function manages(options: CloudflareOptions, name: string): boolean {
  const bare = name.replace(/^\*\./, '');
  return !options.zones.length || options.zones.some((z) => bare === z || bare.endsWith(`.${z}`));
}

/** One client per plugin instance, made when first needed. */
export function lazyClient(options: CloudflareOptions): () => CloudflareClient {
  let client: CloudflareClient | undefined;
  return () =>
    (client ??= new CloudflareClient({
      token: options.token(),
      baseUrl: options.baseUrl,
      maxRetryWaitMs: options.maxRetryWaitMs,
      timeoutMs: options.timeoutMs,
      retries: options.retries,
    }));
}
