/**
 * `autossl init`: writes down what this server has (see discover.ts) and every name its nginx serves, as a
 * commented config: each site with its file and line, its document root, the certificate it is served with now
 * (which lineage, issuer, days left) and whether pre-flight would pass. Sites are listed, not issued. It never
 * changes nginx or certbot, and never overwrites a config without --force.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { loadConfig } from '../config/load.js';
import { validateConfig, type AutoSslConfig } from '../config/schema.js';
import { AutoSslError } from '../errors.js';
import { normalizeDomain } from '../domain.js';
import { covers, readCertificateQuick } from '../issuer/certificate.js';
import type { Installer } from '../installer/installer.js';
import { createNginxInstaller } from '../installer/nginx-installer.js';
import { discover, discoveredConfig, type Discovery } from './discover.js';

export const DEFAULT_INIT_FILE = '/etc/autossl/autossl.config.yaml';

export interface FoundSite {
  domain: string;
  aliases: string[];
  certName?: string;
  file: string;
  line: number;
  root?: string;
  /** Names the block answers that its certificate does not cover (they stay as they are unless added). */
  uncovered: string[];
  certificate?: { lineage?: string; path: string; issuer: string; notAfter: string; daysLeft: number; names: string[] };
  check?: { ok: boolean; problems: string[] };
}

export interface InitOptions {
  out?: string;
  force?: boolean;
  dryRun?: boolean;
  /** Run pre-flight's DNS, CAA and Cloudflare checks for every site (default true). */
  check?: boolean;
  resolvers?: string[];
  /** This server's public addresses, instead of its interfaces' (behind NAT they differ). */
  addresses?: string[];
  now?: number;
}

export interface InitResult {
  file: string | null;
  text: string;
  discovery: Discovery;
  sites: FoundSite[];
  notes: string[];
}

function plainName(raw: string): string | null {
  if (raw.includes('*') || raw.startsWith('~') || raw.startsWith('.')) return null;
  try {
    return normalizeDomain(raw);
  } catch {
    return null;
  }
}

/** Every name the web server answers, one site per server block that would hold its certificate (Installer.sites). */
export function findSites<C>(config: AutoSslConfig, installer: Installer<C>, snapshot: C, now = Date.now()): FoundSite[] {
  const live = path.resolve(config.certbot.configDir, 'live') + path.sep;
  const found = installer.sites(snapshot, plainName);
  const sites = found.map((s): FoundSite => ({
    domain: s.names[0]!,
    aliases: s.names.slice(1),
    file: s.block.file,
    line: s.block.line,
    root: s.root,
    uncovered: [],
  }));
  for (const [i, site] of sites.entries()) {
    const file = found[i]!.certificate;
    if (!file) continue;
    let info;
    try {
      info = readCertificateQuick(file);
    } catch {
      continue;
    }
    const lineage = path.resolve(file).startsWith(live) ? path.resolve(file).slice(live.length).split(path.sep)[0] : undefined;
    site.certificate = {
      lineage,
      path: file,
      issuer: info.issuer,
      notAfter: info.notAfter.toISOString(),
      daysLeft: Math.floor((info.notAfter.getTime() - now) / 86_400_000),
      names: info.names,
    };
    // keep what is served: the site's names are the certificate's (so `issue` reuses the lineage, ordering nothing)
    if (lineage && covers(info.names, site.domain)) {
      const answered = new Set(found[i]!.answered());
      if (info.names.every((n) => answered.has(n))) {
        const all = [site.domain, ...site.aliases];
        site.aliases = info.names.filter((n) => n !== site.domain);
        site.uncovered = all.filter((n) => !info.names.includes(n));
        if (lineage !== site.domain) site.certName = lineage;
      }
    }
  }
  return sites;
}

const q = (v: string): string => JSON.stringify(v);
const list = (v: readonly string[]): string => `[${v.map(q).join(', ')}]`;

/** The config as YAML with comments (JSON strings are YAML strings). */
export function renderConfig(d: Discovery, sites: readonly FoundSite[], options: { resolvers?: string[]; notes: string[]; now?: number }): string {
  const when = new Date(options.now ?? Date.now()).toISOString().slice(0, 16).replace('T', ' ');
  const c = d.certbot;
  const out: string[] = [
    `# autossl config, written by "autossl init" on ${os.hostname()} at ${when} UTC.`,
    '# Everything here was found on this server: check it, then "autossl issue --all" (or name domains).',
    '# Sites are listed, not issued. Comment lines are what init saw; README "Configuration" lists every key.',
    ...options.notes.map((n) => `# NOTE: ${n}`),
    '',
    'nginx:',
    `  binary: ${q(d.nginx.binary)}${d.nginx.version ? `    # nginx ${d.nginx.version}` : ''}`,
    `  config: ${q(d.nginx.config)}    # from nginx -V`,
    ...(d.nginx.reloadCommand ? [`  reloadCommand: ${list(d.nginx.reloadCommand)}    # ${d.nginx.reloadWhy}`] : [`  # reload: ${d.nginx.reloadWhy}`]),
    'certbot:',
    `  binary: ${q(c.binary)}`,
    `  configDir: ${q(c.configDir)}${c.sources['config-dir'] ? '    # from cli.ini' : ''}`,
    `  workDir: ${q(c.workDir)}`,
    `  logsDir: ${q(c.logsDir)}`,
    ...(c.server ? [`  server: ${q(c.server)}    # from ${c.sources.server}`] : ["  # server: Let's Encrypt (certbot's default)"]),
    ...(c.email ? [`  email: ${q(c.email)}    # from ${c.sources.email}`] : ['  # email: none found (certbot registers without one)']),
    ...(c.keyType ? [`  keyType: ${q(c.keyType)}    # from cli.ini`] : []),
    ...c.accounts.map((a) => `  # ACME account ${a.id} at ${a.server}${a.email ? ` (${a.email})` : ''}: reused, never registered again`),
    `serverAddresses: ${list(d.serverAddresses)}    # what DNS must answer for every site (behind NAT: the public addresses, not the interfaces')`,
    'stateDir: "/var/lib/autossl"',
    ...(options.resolvers?.length ? ['preflight:', `  resolvers: ${list(options.resolvers)}`] : []),
    '',
    sites.length ? 'sites:' : 'sites: []    # nginx serves no name yet',
  ];
  for (const s of sites) {
    out.push(`  # ${s.file}:${s.line}${s.root ? `  root ${s.root}` : ''}`);
    if (s.certificate)
      out.push(
        `  # served now with ${s.certificate.lineage ? `certbot lineage ${s.certificate.lineage}` : s.certificate.path} (${s.certificate.issuer}; ${s.certificate.daysLeft} days left)`,
      );
    else out.push('  # no certificate yet');
    if (s.uncovered.length) out.push(`  # also answers ${s.uncovered.join(', ')}, not on that certificate: add them to aliases to cover them`);
    if (s.check) out.push(`  # pre-flight: ${s.check.ok ? 'passes' : s.check.problems.join('; ').replace(/\n/g, ' ').slice(0, 300)}`);
    out.push(`  - domain: ${q(s.domain)}`);
    if (s.aliases.length) out.push(`    aliases: ${list(s.aliases)}`);
    if (s.certName) out.push(`    certName: ${q(s.certName)}`);
  }
  return `${out.join('\n')}\n`;
}

/** The account email from the CA when certbot did not keep it (certbot show_account; read-only). */
async function accountEmail(d: Discovery): Promise<void> {
  if (d.certbot.email || !d.certbot.found || !d.certbot.accounts.length) return;
  const c = d.certbot;
  const run = await execa(
    c.binary,
    [
      'show_account',
      '--non-interactive',
      '--config-dir',
      c.configDir,
      '--work-dir',
      c.workDir,
      '--logs-dir',
      c.logsDir,
      ...(c.server ? ['--server', c.server] : []),
    ],
    { reject: false, timeout: 30_000 },
  );
  const email = /Email contact:\s*(\S+@\S+)/.exec(`${String(run.stdout)}\n${String(run.stderr)}`)?.[1];
  if (email) {
    c.email = email.replace(/,$/, '');
    c.sources.email = 'certbot show_account';
  }
}

export async function runInit(options: InitOptions = {}): Promise<InitResult> {
  const file = options.out ? path.resolve(options.out) : DEFAULT_INIT_FILE;
  if (!options.dryRun && !options.force && fs.existsSync(file)) {
    throw new AutoSslError('CONFIG_INVALID', `${file} exists already; autossl init does not overwrite a config.`, {
      hint: `Compare with "autossl init --dry-run", or write it elsewhere (--out FILE), or replace it with --force.`,
    });
  }
  const d = await discover();
  if (options.addresses?.length) {
    d.serverAddresses = [...options.addresses];
    d.notes = d.notes.filter((n) => !n.includes('private addresses'));
  }
  await accountEmail(d);
  const notes = [...d.notes];
  const config = validateConfig(discoveredConfig(d, { resolvers: options.resolvers }), '(discovered)', '/');
  let sites: FoundSite[] = [];
  try {
    const installer = createNginxInstaller(config);
    const tree = installer.load();
    for (const e of installer.configErrors(tree)) notes.push(`nginx config: ${e}`);
    sites = findSites(config, installer, tree, options.now);
  } catch (error) {
    notes.push(`the nginx config ${config.nginx.config} cannot be read: ${(error as Error).message}`);
  }
  if (options.check !== false && sites.length) {
    // DNS, CAA, Cloudflare: what Let's Encrypt would see (the port-80 self-check writes into document roots: not here)
    const { createAutoSsl } = await import('../engine.js');
    // a scratch state directory (init must not create the real one), removed after: one was left per run
    const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'autossl-init-'));
    try {
      const engine = await createAutoSsl({ ...config, stateDir: scratch });
      try {
        const results = await engine.check(
          sites.map((s) => s.domain),
          { skipChecks: ['port80'] },
        );
        results.forEach(
          (r, i) =>
            (sites[i]!.check = { ok: r.ok, problems: r.findings.filter((f) => f.severity === 'error').map((f) => `${f.code ?? f.check}: ${f.message}`) }),
        );
      } finally {
        await engine.close();
      }
    } finally {
      fs.rmSync(scratch, { recursive: true, force: true });
    }
  }
  const text = renderConfig(d, sites, { resolvers: options.resolvers, notes, now: options.now });
  if (options.dryRun) return { file: null, text, discovery: d, sites, notes };
  // what was written must load: checked on a temporary copy before it takes the config's place
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o755 });
  const temp = path.join(path.dirname(file), `.${process.pid}-${path.basename(file)}`); // the same extension: it picks the loader
  fs.writeFileSync(temp, text, { mode: 0o644 });
  try {
    await loadConfig({ file: temp });
    fs.renameSync(temp, file);
  } catch (error) {
    fs.rmSync(temp, { force: true });
    throw error;
  }
  return { file, text, discovery: d, sites, notes };
}
