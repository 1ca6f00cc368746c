/**
 * A private ACME world on 127.0.0.1: pebble (Let's Encrypt's test CA), pebble-challtestsrv as its DNS, and a
 * private nginx with its own `-c` config and prefix. Used by `autossl demo`, the end-to-end tests and the
 * benchmarks. Nothing here touches /etc/nginx or /etc/letsencrypt, and nothing binds 0.0.0.0.
 * Facts behind the flags: shared/notes/acme-test-rig.md.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import https from 'node:https';
import { execa } from 'execa';
import { AutoSslError } from '../../src/errors.js';

export const RIG_PORTS = { acme: 14000, acmeManagement: 15000, dns: 8053, dnsManagement: 8055, http: 80, https: 443 } as const;
export const PACKAGES = ['nginx', 'certbot', 'python3-certbot-nginx', 'pebble', 'libnginx-mod-http-lua'];
/**
 * AUTOSSL_PEBBLE: another pebble binary (with pebble-challtestsrv beside it), e.g. Debian sid's 2.10 that
 * scripts/pebble-sid.sh unpacks (Debian 12's 2.4 has no renewalInfo and no profiles); .ci/run sets it.
 */
const PEBBLE = process.env.AUTOSSL_PEBBLE || '/usr/bin/pebble';
const CHALLTESTSRV =
  process.env.AUTOSSL_PEBBLE && fs.existsSync(path.join(path.dirname(PEBBLE), 'pebble-challtestsrv'))
    ? path.join(path.dirname(PEBBLE), 'pebble-challtestsrv')
    : '/usr/bin/pebble-challtestsrv';
export const BINARIES = { nginx: '/usr/sbin/nginx', certbot: '/usr/bin/certbot', pebble: PEBBLE, challtestsrv: CHALLTESTSRV, openssl: '/usr/bin/openssl' };
/** The Debian package that ships each binary. */
const BINARY_PACKAGES: Record<keyof typeof BINARIES, string> = {
  nginx: 'nginx',
  certbot: 'certbot',
  pebble: 'pebble',
  challtestsrv: 'pebble',
  openssl: 'openssl',
};

/** A pebble (>= 2.10) certificate profile: its validity in seconds. */
export interface PebbleProfile {
  description?: string;
  validityPeriod: number;
}

export interface RigInfo {
  dir: string;
  caCert: string;
  acmeDirectory: string;
  nginxConf: string;
  nginxPrefix: string;
  nginxErrorLog: string;
  sitesDir: string;
  wwwDir: string;
  pebbleLog: string;
}

/** The sandbox CA: a CA certificate as RFC 5280 wants it (basicConstraints critical, keyUsage, key identifiers). */
const sandboxCaConfig = (name: string): string => `[req]
distinguished_name = dn
prompt = no
[dn]
CN = ${name}
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
`;

/** pebble's HTTPS certificate: a server leaf with the key identifiers a strict verifier (X509_STRICT) asks for. */
const sandboxLeafExtensions = (ips: readonly string[]): string => `subjectAltName = DNS:localhost, ${ips.map((ip) => `IP:${ip}`).join(', ')}
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
`;

/**
 * A sandbox's CA (`ca.pem`, `ca.key` in `dir`) and the HTTPS certificate it signs for pebble (`<leaf>.pem`,
 * `<leaf>.key`): localhost and the addresses pebble answers on.
 */
export async function makeSandboxCertificates(dir: string, o: { caName: string; leaf: string; ips: readonly string[] }): Promise<void> {
  fs.mkdirSync(dir, { recursive: true });
  const ssl = (args: string[]) => execa(BINARIES.openssl, args, { cwd: dir });
  // The extensions a strict client checks (certbot on urllib3 2.8 refuses a CA without keyUsage): written out in
  // a config of our own, not left to the distribution's openssl.cnf, which differs between releases.
  fs.writeFileSync(path.join(dir, 'ca.cnf'), sandboxCaConfig(o.caName));
  await ssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '3', '-config', 'ca.cnf', '-extensions', 'ca']);
  await ssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${o.leaf}.key`, '-out', `${o.leaf}.csr`, '-subj', '/CN=localhost']);
  fs.writeFileSync(path.join(dir, 'san.ext'), sandboxLeafExtensions(o.ips));
  await ssl([
    'x509',
    '-req',
    '-in',
    `${o.leaf}.csr`,
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    `${o.leaf}.pem`,
    '-days',
    '3',
    '-extfile',
    'san.ext',
  ]);
}

let challtestsrvFlags: Promise<Set<string>> | undefined;

/** The flags this pebble-challtestsrv accepts, read from its usage text (its flags changed between releases). */
async function acceptedChalltestsrvFlags(): Promise<Set<string>> {
  challtestsrvFlags ??= execa(BINARIES.challtestsrv, ['-h'], { reject: false, all: true, timeout: 10_000 }).then(
    (r) => new Set([...String(r.all ?? '').matchAll(/^\s+-([A-Za-z0-9_-]+)/gm)].map((m) => m[1]!)),
  );
  return challtestsrvFlags;
}

/**
 * pebble-challtestsrv's arguments for a DNS server on `dns` and its management API on `management`, every other
 * listener off. The DNS flag is `-dns01` up to pebble 2.6 and `-dnsserver` from 2.10 on, which also opens a DoH
 * listener on :8443 unless given `-doh ""`: the flags are chosen by what the installed binary accepts.
 */
export async function challtestsrvArgs(o: { dns: string; management: string; defaultIPv4?: string }): Promise<string[]> {
  const flags = await acceptedChalltestsrvFlags();
  const dnsFlag = flags.has('dnsserver') ? '-dnsserver' : '-dns01';
  const off = ['http01', 'https01', 'tlsalpn01', 'doh'].filter((f) => flags.has(f)).flatMap((f) => [`-${f}`, '']);
  return ['-defaultIPv4', o.defaultIPv4 ?? '', '-defaultIPv6', '', dnsFlag, o.dns, '-management', o.management, ...off];
}

function missingBinaries(): string[] {
  return Object.entries(BINARIES)
    .filter(([, p]) => !fs.existsSync(p))
    .map(([n]) => n);
}

/**
 * Fails, saying how to install them, when the binaries the rig runs are missing. It installs nothing itself: an
 * apt-get run from a demo would upgrade a server's packages or start their services (Debian's nginx starts on :80).
 */
export async function checkPackages(): Promise<void> {
  const absent = missingBinaries();
  if (absent.length === 0) return;
  const missing = new Set(absent.map((b) => BINARY_PACKAGES[b as keyof typeof BINARIES]));
  for (const pkg of PACKAGES) {
    const status = await execa('dpkg-query', ['-W', '-f=${Status}', pkg], { reject: false });
    if (!String(status.stdout).includes('install ok installed')) missing.add(pkg);
  }
  throw new AutoSslError('SANDBOX_FAILED', `Missing ${absent.join(', ')}: the sandbox runs the real programs.`, {
    hint: `Install them (as root): apt-get update && apt-get install -y --no-upgrade ${[...missing].join(' ')}${missing.has('nginx') ? ' (where systemd runs, Debian starts its own nginx on port 80: the demo does not need that port, it runs in a network namespace of its own)' : ''}`,
  });
}

function waitForPort(port: number, host = '127.0.0.1', timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const attempt = (): void => {
      const socket = net.connect({ port, host }, () => {
        socket.destroy();
        resolve();
      });
      socket.on('error', () => {
        socket.destroy();
        if (Date.now() > deadline) reject(new AutoSslError('SANDBOX_FAILED', `Nothing answered on ${host}:${port} within ${timeoutMs / 1000} s.`));
        else setTimeout(attempt, 50);
      });
    };
    attempt();
  });
}

function portFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host }, () => {
      socket.destroy();
      resolve(false);
    });
    socket.on('error', () => resolve(true));
  });
}

/** Dynamic modules of Debian's packages that vhosts may use (Lua needs NDK loaded first). */
const OPTIONAL_MODULES = ['/usr/lib/nginx/modules/ndk_http_module.so', '/usr/lib/nginx/modules/ngx_http_lua_module.so'];

/** The http-level lines of every private nginx of the rigs: temp directories of its own, room for long server names. */
export const privateNginxHttpSettings = (tmp: string): string => `    default_type application/octet-stream;
    client_body_temp_path ${tmp}/client;
    proxy_temp_path ${tmp}/proxy;
    fastcgi_temp_path ${tmp}/fastcgi;
    uwsgi_temp_path ${tmp}/uwsgi;
    scgi_temp_path ${tmp}/scgi;
    server_names_hash_bucket_size 128;
`;

export function nginxMainConfig(prefix: string, sitesDir: string): string {
  const tmp = path.join(prefix, 'tmp');
  const modules = OPTIONAL_MODULES.every((m) => fs.existsSync(m)) ? OPTIONAL_MODULES.map((m) => `load_module ${m};\n`).join('') : '';
  return `# autossl sandbox nginx: private prefix, loopback only
${modules}user www-data;
worker_processes 1;
pid ${prefix}/nginx.pid;
error_log ${prefix}/error.log warn;
events { worker_connections 256; }
http {
    access_log off;
    types { text/html html; text/plain txt; application/json json; }
${privateNginxHttpSettings(tmp)}    include ${sitesDir}/*.conf;
}
`;
}

/**
 * Stops an nginx by the pid in its pid file (SIGTERM, then SIGKILL), waiting until it is gone so its ports are free.
 * Not `nginx -s stop`: that parses the config first, and refuses to signal when a failed run left the config broken.
 */
export async function stopNginx(pidFile: string, timeoutMs = 5000): Promise<void> {
  let pid = 0;
  try {
    pid = Number(fs.readFileSync(pidFile, 'utf8').trim());
  } catch {
    return;
  }
  if (!Number.isInteger(pid) || pid <= 1) return;
  const alive = (): boolean => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  if (!alive()) return;
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + timeoutMs;
  while (alive() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
  if (alive()) process.kill(pid, 'SIGKILL');
  while (alive()) await new Promise((r) => setTimeout(r, 25));
}

export class AcmeRig {
  private readonly children: ChildProcess[] = [];
  private nginxStarted = false;
  /** The directory was made for this rig: stop() removes it (AUTOSSL_KEEP_RIG=1 keeps it, to look into a failure). */
  private ownsDir = false;
  /** pebble >= 2.10's certificate profiles (absent: its one default profile, 90 days). */
  private profiles: Record<string, PebbleProfile> | undefined;

  private constructor(
    readonly info: RigInfo,
    private readonly log: (line: string) => void,
  ) {}

  /** The arguments every nginx call of the sandbox needs (private prefix and error log). */
  get nginxArgs(): string[] {
    return ['-p', this.info.nginxPrefix, '-e', this.info.nginxErrorLog];
  }

  static async start(options: { dir?: string; log?: (line: string) => void; profiles?: Record<string, PebbleProfile> } = {}): Promise<AcmeRig> {
    const log = options.log ?? (() => undefined);
    await checkPackages();
    for (const port of Object.values(RIG_PORTS)) {
      // a sandbox stopped a moment ago may still be releasing its ports
      for (let i = 0; i < 50 && !(await portFree(port)); i++) await new Promise((r) => setTimeout(r, 100));
      if (!(await portFree(port)))
        throw new AutoSslError(
          'SANDBOX_FAILED',
          `Port ${port} on 127.0.0.1 is in use; run the sandbox in a network namespace of its own (as autossl demo does: ip netns add NAME, then ip netns exec NAME ...) rather than stopping what holds it.`,
        );
    }
    const dir = options.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'autossl-rig-'));
    fs.chmodSync(dir, 0o755);
    const prefix = path.join(dir, 'nginx');
    const info: RigInfo = {
      dir,
      caCert: path.join(dir, 'ca', 'ca.pem'),
      acmeDirectory: `https://127.0.0.1:${RIG_PORTS.acme}/dir`,
      nginxConf: path.join(prefix, 'nginx.conf'),
      nginxPrefix: prefix,
      nginxErrorLog: path.join(prefix, 'error.log'),
      sitesDir: path.join(prefix, 'sites'),
      wwwDir: path.join(dir, 'www'),
      pebbleLog: path.join(dir, 'pebble.log'),
    };
    const rig = new AcmeRig(info, log);
    rig.profiles = options.profiles;
    rig.ownsDir = options.dir === undefined;
    try {
      await rig.makeCertificates();
      await rig.startDns();
      await rig.startPebble();
      await rig.startNginx();
    } catch (error) {
      await rig.stop();
      throw error;
    }
    return rig;
  }

  private async makeCertificates(): Promise<void> {
    await makeSandboxCertificates(path.dirname(this.info.caCert), { caName: 'autossl sandbox CA', leaf: 'localhost', ips: ['127.0.0.1', '::1'] });
  }

  private spawnService(name: string, command: string, args: string[], env: Record<string, string> = {}): ChildProcess {
    const out = fs.openSync(path.join(this.info.dir, `${name}.log`), 'a');
    const child = spawn(command, args, { stdio: ['ignore', out, out], env: { ...process.env, ...env } });
    fs.closeSync(out);
    this.children.push(child);
    return child;
  }

  private async startDns(): Promise<void> {
    this.log('starting pebble-challtestsrv (DNS on 127.0.0.1:8053)');
    this.spawnService(
      'challtestsrv',
      BINARIES.challtestsrv,
      await challtestsrvArgs({ dns: `127.0.0.1:${RIG_PORTS.dns}`, management: `127.0.0.1:${RIG_PORTS.dnsManagement}`, defaultIPv4: '127.0.0.1' }),
    );
    await waitForPort(RIG_PORTS.dnsManagement);
  }

  private async startPebble(): Promise<void> {
    this.log('starting pebble (ACME on https://127.0.0.1:14000/dir)');
    const ca = path.dirname(this.info.caCert);
    const cfg = path.join(this.info.dir, 'pebble.json');
    fs.writeFileSync(
      cfg,
      JSON.stringify(
        {
          pebble: {
            listenAddress: `127.0.0.1:${RIG_PORTS.acme}`,
            managementListenAddress: `127.0.0.1:${RIG_PORTS.acmeManagement}`,
            certificate: path.join(ca, 'localhost.pem'),
            privateKey: path.join(ca, 'localhost.key'),
            httpPort: RIG_PORTS.http,
            tlsPort: 15001,
            ocspResponderURL: '',
            externalAccountBindingRequired: false,
            // pebble gives an order that names no profile a RANDOM one of these: more than one only when a test asks
            ...(this.profiles ? { profiles: this.profiles } : {}),
          },
        },
        null,
        2,
      ),
    );
    this.spawnService('pebble', BINARIES.pebble, ['-config', cfg, '-dnsserver', `127.0.0.1:${RIG_PORTS.dns}`], {
      PEBBLE_VA_NOSLEEP: '1',
      PEBBLE_WFE_NONCEREJECT: '0',
      PEBBLE_AUTHZREUSE: '0',
    });
    await waitForPort(RIG_PORTS.acme);
    await waitForPort(RIG_PORTS.acmeManagement);
  }

  private async startNginx(): Promise<void> {
    this.log('starting a private nginx (127.0.0.1:80 and :443)');
    const { nginxPrefix: prefix, sitesDir } = this.info;
    for (const d of ['tmp', 'sites']) fs.mkdirSync(path.join(prefix, d), { recursive: true });
    fs.mkdirSync(this.info.wwwDir, { recursive: true });
    fs.writeFileSync(this.info.nginxConf, nginxMainConfig(prefix, sitesDir));
    // a catch-all so nginx has a server even before any site exists
    fs.writeFileSync(path.join(sitesDir, '000-default.conf'), 'server {\n    listen 127.0.0.1:80 default_server;\n    server_name _;\n    return 404;\n}\n');
    await execa(BINARIES.nginx, [...this.nginxArgs, '-c', this.info.nginxConf]);
    this.nginxStarted = true;
    await waitForPort(RIG_PORTS.http);
  }

  /** Adds a vhost file to the sandbox nginx and a document root with an index page. */
  addSite(name: string, body: string, options: { index?: string } = {}): { file: string; root: string } {
    const root = path.join(this.info.wwwDir, name);
    fs.mkdirSync(root, { recursive: true });
    fs.writeFileSync(path.join(root, 'index.html'), options.index ?? `<h1>${name}</h1>\n`);
    const file = path.join(this.info.sitesDir, `${name}.conf`);
    fs.writeFileSync(file, body.replaceAll('{root}', root).replaceAll('{name}', name));
    return { file, root };
  }

  async reloadNginx(): Promise<void> {
    await execa(BINARIES.nginx, [...this.nginxArgs, '-c', this.info.nginxConf, '-s', 'reload']);
    await new Promise((r) => setTimeout(r, 300));
  }

  /** certbot directories of its own under the rig (a restarted pebble forgets accounts). */
  certbotDirs(name = 'certbot'): { configDir: string; workDir: string; logsDir: string } {
    const base = path.join(this.info.dir, name);
    const dirs = { configDir: path.join(base, 'config'), workDir: path.join(base, 'work'), logsDir: path.join(base, 'logs') };
    for (const d of Object.values(dirs)) fs.mkdirSync(d, { recursive: true });
    return dirs;
  }

  /** The flags that point certbot at this rig's pebble and at directories of its own (certbotDirs(), or others). */
  certbotFlags(dirs: { configDir: string; workDir: string; logsDir: string } = this.certbotDirs()): string[] {
    return ['--server', this.info.acmeDirectory, '--config-dir', dirs.configDir, '--work-dir', dirs.workDir, '--logs-dir', dirs.logsDir];
  }

  /**
   * certbot itself, run against this rig (its pebble, trusting its CA), never interactive: how the tests see what
   * certbot makes of the lineages autossl wrote (list, renew, revoke) or leave state as certbot would. Resolves with
   * the run, whatever its exit code.
   */
  certbot(args: readonly string[], dirs?: { configDir: string; workDir: string; logsDir: string }) {
    return execa(BINARIES.certbot, [...args, '--non-interactive', '--no-random-sleep-on-renew', ...this.certbotFlags(dirs)], {
      reject: false,
      env: { REQUESTS_CA_BUNDLE: this.info.caCert },
    });
  }

  /** An autossl config object for this sandbox. */
  autosslConfig(extra: Record<string, unknown> = {}, certbotName = 'certbot'): Record<string, unknown> {
    return {
      certbot: {
        binary: BINARIES.certbot,
        ...this.certbotDirs(certbotName),
        server: this.info.acmeDirectory,
        env: { REQUESTS_CA_BUNDLE: this.info.caCert },
        timeoutMs: 60_000,
        revocationStatusUrl: `https://127.0.0.1:${RIG_PORTS.acmeManagement}/cert-status-by-serial/{serial}`,
      },
      nginx: { binary: BINARIES.nginx, config: this.info.nginxConf, extraArgs: this.nginxArgs },
      serverAddresses: ['127.0.0.1', '::1'],
      stateDir: path.join(this.info.dir, 'state'),
      preflight: { resolvers: [`127.0.0.1:${RIG_PORTS.dns}`], timeoutMs: 2000 },
      ...extra,
    };
  }

  /** autosslConfig(extra) written as a config file in the rig's directory (what `--config` names); returns its path. */
  writeAutosslConfig(extra: Record<string, unknown> = {}, file = 'autossl.config.json'): string {
    const full = path.join(this.info.dir, file);
    fs.writeFileSync(full, JSON.stringify(this.autosslConfig(extra), null, 2));
    return full;
  }

  /** challtestsrv management API (POST JSON). */
  async dns(endpoint: string, body: Record<string, unknown>): Promise<void> {
    const res = await fetch(`http://127.0.0.1:${RIG_PORTS.dnsManagement}${endpoint}`, { method: 'POST', body: JSON.stringify(body) });
    if (!res.ok) throw new AutoSslError('SANDBOX_FAILED', `challtestsrv ${endpoint} answered ${res.status}`);
  }

  /** pebble's directory (what an ACME client reads first: renewalInfo, meta.profiles). */
  async directory(): Promise<Record<string, unknown>> {
    return JSON.parse(await this.httpsText(this.info.acmeDirectory)) as Record<string, unknown>;
  }

  /**
   * Makes pebble (>= 2.10, management port) answer ARI for this certificate with the given suggested window (or any
   * text, to try a client on malformed answers); the default answer is pebble's own (2/3 of the lifetime +-1 day,
   * or a window an hour in the past for a revoked certificate).
   */
  async setRenewalInfo(certPem: string, window: { start: Date; end: Date } | string): Promise<void> {
    const ariResponse =
      typeof window === 'string' ? window : JSON.stringify({ suggestedWindow: { start: window.start.toISOString(), end: window.end.toISOString() } });
    await this.httpsText(`https://127.0.0.1:${RIG_PORTS.acmeManagement}/set-renewal-info/`, JSON.stringify({ Certificate: certPem, ARIResponse: ariResponse }));
  }

  private httpsText(url: string, body?: string): Promise<string> {
    const ca = fs.readFileSync(this.info.caCert);
    return new Promise((resolve, reject) => {
      const req = https.request(url, { ca, method: body === undefined ? 'GET' : 'POST', headers: { 'user-agent': 'autossl-test-rig' } }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () =>
          res.statusCode && res.statusCode < 300
            ? resolve(text)
            : reject(new AutoSslError('SANDBOX_FAILED', `pebble ${url} answered ${res.statusCode}: ${text.slice(0, 300)}`)),
        );
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  /** pebble's current issuing root (new at every pebble start). */
  async issuingRoot(): Promise<string> {
    const ca = fs.readFileSync(this.info.caCert);
    return new Promise((resolve, reject) => {
      https
        .get(`https://127.0.0.1:${RIG_PORTS.acmeManagement}/roots/0`, { ca }, (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (body += c));
          res.on('end', () => resolve(body));
        })
        .on('error', reject);
    });
  }

  /** Leaves the services running after this process exits (demo --keep); their pids go to <dir>/pids. */
  detach(): void {
    const pids = [...this.children.map((c) => c.pid), Number(fs.readFileSync(path.join(this.info.nginxPrefix, 'nginx.pid'), 'utf8'))];
    fs.writeFileSync(path.join(this.info.dir, 'pids'), pids.join(' ') + '\n');
    for (const child of this.children) child.unref();
    this.children.length = 0;
    this.nginxStarted = false;
  }

  async stop(): Promise<void> {
    await this.stopServices();
    if (this.ownsDir && !process.env.AUTOSSL_KEEP_RIG) await fs.promises.rm(this.info.dir, { recursive: true, force: true }).catch(() => undefined);
  }

  private async stopServices(): Promise<void> {
    if (this.nginxStarted) {
      await stopNginx(path.join(this.info.nginxPrefix, 'nginx.pid'));
      this.nginxStarted = false;
    }
    for (const child of this.children.splice(0)) {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await new Promise((r) => {
          const t = setTimeout(() => {
            child.kill('SIGKILL');
            r(undefined);
          }, 3000);
          child.once('exit', () => {
            clearTimeout(t);
            r(undefined);
          });
        });
      }
    }
  }
}
