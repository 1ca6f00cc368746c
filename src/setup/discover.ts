/**
 * What this server has, found without a config: the nginx binary and its main config (`nginx -V`), the reload
 * command that fits (systemd's when nginx.service is active), certbot's directories, its cli.ini and its ACME
 * account (the email), and this machine's addresses. Reads only: nothing here changes nginx, certbot or anything
 * else. Used by `autossl init` (which writes it down) and by commands run with no config file at all.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';

export interface Discovery {
  nginx: { binary: string; config: string; version: string | null; reloadCommand?: string[]; reloadWhy: string; found: boolean };
  certbot: {
    binary: string;
    found: boolean;
    configDir: string;
    workDir: string;
    logsDir: string;
    server?: string;
    email?: string;
    keyType?: 'ecdsa' | 'rsa';
    /** Where each value came from: "cli.ini", "account <id>". */
    sources: Record<string, string>;
    accounts: Array<{ server: string; id: string; email?: string }>;
  };
  serverAddresses: string[];
  notes: string[];
}

const PATH_DIRS = (process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin').split(':').filter(Boolean);

/** The first executable of that name on PATH (and the usual sbin directories, often not on a user's PATH). */
export function which(name: string, extra: readonly string[] = []): string | null {
  for (const dir of [...PATH_DIRS, '/usr/sbin', '/usr/local/sbin', '/sbin', ...extra]) {
    const file = path.join(dir, name);
    try {
      fs.accessSync(file, fs.constants.X_OK);
      if (fs.statSync(file).isFile()) return file;
    } catch {
      // not here
    }
  }
  return null;
}

async function nginxInfo(): Promise<Discovery['nginx']> {
  const binary = which('nginx', ['/usr/local/nginx/sbin', '/opt/nginx/sbin']);
  if (!binary) return { binary: 'nginx', config: '/etc/nginx/nginx.conf', version: null, reloadWhy: 'nginx not found on this machine', found: false };
  const run = await execa(binary, ['-V'], { reject: false, timeout: 10_000 });
  const text = `${String(run.stdout)}\n${String(run.stderr)}`;
  const prefix = /--prefix=(\S+)/.exec(text)?.[1];
  const confPath = /--conf-path=(\S+)/.exec(text)?.[1];
  const config = confPath
    ? path.isAbsolute(confPath)
      ? confPath
      : path.join(prefix ?? '/usr/local/nginx', confPath)
    : path.join(prefix ?? '/usr/local/nginx', 'conf/nginx.conf');
  const version = /nginx version: nginx\/(\S+)/.exec(text)?.[1] ?? null;
  // systemd's unit when it runs nginx: a reload through it keeps systemd's view of the service right
  const systemctl = which('systemctl');
  if (systemctl && (await execa(systemctl, ['is-active', '--quiet', 'nginx.service'], { reject: false, timeout: 10_000 })).exitCode === 0) {
    return { binary, config, version, reloadCommand: ['systemctl', 'reload', 'nginx'], reloadWhy: 'nginx.service is active', found: true };
  }
  return { binary, config, version, reloadWhy: `nginx is not run by systemd here: ${binary} -s reload`, found: true };
}

/** certbot's cli.ini: `key = value` (or `key value`) lines; flags without a value are true. */
export function parseCliIni(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.replace(/[#;].*$/, '').trim();
    if (!line) continue;
    const m = /^([A-Za-z0-9-]+)\s*(?:=\s*|\s+)?(.*)$/.exec(line);
    if (m) out[m[1]!.toLowerCase()] = m[2]!.trim();
  }
  return out;
}

/** certbot's accounts: accounts/<server host>/<path>/<id>/regr.json, the email from its contact. */
function accountsIn(configDir: string): Discovery['certbot']['accounts'] {
  const out: Discovery['certbot']['accounts'] = [];
  const base = path.join(configDir, 'accounts');
  const walk = (dir: string, parts: string[], depth: number): void => {
    if (depth > 6) return;
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    if (entries.some((e) => e.isFile() && e.name === 'regr.json')) {
      let email: string | undefined;
      try {
        const regr = JSON.parse(fs.readFileSync(path.join(dir, 'regr.json'), 'utf8')) as { body?: { contact?: string[] } };
        email = regr.body?.contact?.find((c) => c.startsWith('mailto:'))?.slice('mailto:'.length);
      } catch {
        email = undefined;
      }
      const id = parts[parts.length - 1]!;
      out.push({ server: `https://${parts.slice(0, -1).join('/')}`, id, email });
      return;
    }
    for (const e of entries) if (e.isDirectory()) walk(path.join(dir, e.name), [...parts, e.name], depth + 1);
  };
  walk(base, [], 0);
  return out;
}

function certbotInfo(): Discovery['certbot'] {
  const binary = which('certbot') ?? 'certbot';
  const sources: Record<string, string> = {};
  let ini: Record<string, string> = {};
  for (const file of ['/etc/letsencrypt/cli.ini']) {
    try {
      ini = parseCliIni(fs.readFileSync(file, 'utf8'));
      sources.cliIni = file;
    } catch {
      // none
    }
  }
  const dir = (key: string, fallback: string): string => {
    if (ini[key]) sources[key] = 'cli.ini';
    return ini[key] || fallback;
  };
  const configDir = dir('config-dir', '/etc/letsencrypt');
  const info: Discovery['certbot'] = {
    binary,
    found: binary !== 'certbot',
    configDir,
    workDir: dir('work-dir', '/var/lib/letsencrypt'),
    logsDir: dir('logs-dir', '/var/log/letsencrypt'),
    sources,
    accounts: accountsIn(configDir),
  };
  if (ini.server) {
    info.server = ini.server;
    sources.server = 'cli.ini';
  }
  if (ini['key-type'] === 'rsa' || ini['key-type'] === 'ecdsa') {
    info.keyType = ini['key-type'];
    sources.keyType = 'cli.ini';
  }
  const server = info.server ?? 'https://acme-v02.api.letsencrypt.org/directory';
  const account = info.accounts.find((a) => a.server === server && a.email) ?? info.accounts.find((a) => a.email);
  if (ini.email) {
    info.email = ini.email;
    sources.email = 'cli.ini';
  } else if (account?.email) {
    info.email = account.email;
    sources.email = `ACME account ${account.id} (${account.server})`;
  }
  return info;
}

/** This machine's addresses: not loopback, not link-local. Behind NAT the public address is not among them. */
export function interfaceAddresses(): string[] {
  return Object.values(os.networkInterfaces())
    .flat()
    .filter((i): i is os.NetworkInterfaceInfo => !!i && !i.internal)
    .map((i) => i.address.toLowerCase())
    .filter((a) => !a.startsWith('fe80:') && !a.startsWith('169.254.'));
}

export async function discover(): Promise<Discovery> {
  const nginx = await nginxInfo();
  const certbot = certbotInfo();
  const serverAddresses = interfaceAddresses();
  const notes: string[] = [];
  if (!nginx.found) notes.push('nginx was not found (apt-get install nginx)');
  if (!certbot.found) notes.push('certbot was not found (apt-get install certbot)');
  if (serverAddresses.every((a) => /^(10\.|192\.168\.|172\.(1[6-9]|2\d|3[01])\.|f[cd])/.test(a)))
    notes.push('this machine has only private addresses: behind NAT, put the public ones in serverAddresses');
  return { nginx, certbot, serverAddresses, notes };
}

/** The config (as a config file would say it) for what was discovered. */
export function discoveredConfig(d: Discovery, extra: { resolvers?: string[]; stateDir?: string } = {}): Record<string, unknown> {
  return {
    nginx: { binary: d.nginx.binary, config: d.nginx.config, ...(d.nginx.reloadCommand ? { reloadCommand: d.nginx.reloadCommand } : {}) },
    certbot: {
      binary: d.certbot.binary,
      configDir: d.certbot.configDir,
      workDir: d.certbot.workDir,
      logsDir: d.certbot.logsDir,
      ...(d.certbot.server ? { server: d.certbot.server } : {}),
      ...(d.certbot.email ? { email: d.certbot.email } : {}),
      ...(d.certbot.keyType ? { keyType: d.certbot.keyType } : {}),
    },
    serverAddresses: d.serverAddresses,
    stateDir: extra.stateDir ?? '/var/lib/autossl',
    ...(extra.resolvers?.length ? { preflight: { resolvers: extra.resolvers } } : {}),
  };
}

/** One line saying what a config-less run uses. */
export function describeDiscovery(d: Discovery): string {
  return `nginx ${d.nginx.config} (reload: ${d.nginx.reloadCommand ? d.nginx.reloadCommand.join(' ') : 'nginx -s reload'}), certbot ${d.certbot.configDir}${d.certbot.email ? ` (account ${d.certbot.email})` : ''}, state /var/lib/autossl`;
}
