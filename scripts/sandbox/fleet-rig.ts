/**
 * A fleet on one machine (issue 24): three (or N) nginx nodes, each in a network namespace of its own, behind a
 * fourth namespace running a round-robin balancer (nginx upstream) on the one address pebble's DNS returns for
 * every name (challtestsrv -defaultIPv4), with pebble and challtestsrv beside it on that address. Nodes reach the
 * balancer's namespace over a veth pair each:
 *
 *   lb:  lo 10.77.0.1 (balancer :80, pebble :14000/:15000, DNS :8053)    vK 10.77.K.1/24
 *   nK:  eth0 10.77.K.2/24, default route via 10.77.K.1; nginx on 10.77.K.2:80 (and :443 once autossl installs)
 *
 * Each node has its own nginx, certbot directories, state directory and challenge directory; they share one store
 * (SQLite through a store module, or PostgreSQL). Namespaces are named `<prefix>-lb`, `<prefix>-nK` (unique per
 * run) and deleted by stop(). Used by test/e2e/fleet.test.ts and bench/fleet.ts; runs as root.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { AutoSslError } from '../../src/errors.js';
import { BINARIES, challtestsrvArgs, checkPackages, makeSandboxCertificates, privateNginxHttpSettings, stopNginx } from './rig.js';
import { deleteNetns, stopNetnsProcesses } from './netns.js';

export const FLEET_VIP = '10.77.0.1';
/** A file of the built package (the CLI, the SQLite store) from the sources or from dist alike. */
function distFile(rel: string): string {
  for (let dir = path.dirname(new URL(import.meta.url).pathname); path.dirname(dir) !== dir; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'package.json')) && fs.existsSync(path.join(dir, 'dist', rel))) return path.join(dir, 'dist', rel);
  }
  throw new AutoSslError('SANDBOX_FAILED', `Cannot find dist/${rel}: run npm run build.`);
}

const nodeIp = (k: number): string => `10.77.${k}.2`;
const lbSideIp = (k: number): string => `10.77.${k}.1`;

export interface FleetNodeInfo {
  name: string;
  netns: string;
  ip: string;
  dir: string;
  configFile: string;
  nginxConf: string;
  nginxPrefix: string;
  sitesDir: string;
  accessLog: string;
  challengeDir: string;
  certbotConfigDir: string;
}

async function ip(args: string[]): Promise<void> {
  const r = await execa('ip', args, { reject: false });
  if (r.exitCode !== 0) throw new AutoSslError('SANDBOX_FAILED', `ip ${args.join(' ')}: ${String(r.stderr).trim()}`);
}

/** nginx inside a namespace, on its own prefix and error log: started, or signalled with `-s <signal>`. */
async function nginxIn(netns: string, prefix: string, conf: string, ...signal: string[]): Promise<void> {
  await execa('ip', ['netns', 'exec', netns, BINARIES.nginx, '-p', prefix, '-e', path.join(prefix, 'error.log'), '-c', conf, ...signal]);
}

function nodeNginxConfig(n: { prefix: string; sitesDir: string; accessLog: string }): string {
  const tmp = path.join(n.prefix, 'tmp');
  return `user www-data;
worker_processes 1;
pid ${n.prefix}/nginx.pid;
error_log ${n.prefix}/error.log warn;
events { worker_connections 256; }
http {
    log_format fleet '$remote_addr "$request" $status $host';
    access_log ${n.accessLog} fleet;
    types { text/html html; text/plain txt; }
${privateNginxHttpSettings(tmp)}    include ${n.sitesDir}/*.conf;
}
`;
}

export class FleetRig {
  readonly nodes: FleetNodeInfo[] = [];
  readonly lbNetns: string;
  readonly caCert: string;
  readonly pebbleLog: string;
  readonly lbPrefix: string;
  private readonly children: ChildProcess[] = [];
  private readonly namespaces: string[] = [];
  /** false: the nodes' configs have no fleet key (one plain node, the benchmark's baseline). */
  private fleet = true;

  private constructor(
    readonly dir: string,
    readonly prefix: string,
    readonly storeConfig: unknown,
  ) {
    this.lbNetns = `${prefix}-lb`;
    this.caCert = path.join(dir, 'ca', 'ca.pem');
    this.pebbleLog = path.join(dir, 'pebble.log');
    this.lbPrefix = path.join(dir, 'lb');
  }

  /**
   * `store`: the store every node's config gets (a value for the config's `store` key); default: the built-in
   * SQLite store in one directory all nodes share (the shared-store module below).
   */
  static async start(options: { nodes?: number; prefix?: string; store?: unknown; fleet?: boolean } = {}): Promise<FleetRig> {
    await checkPackages();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'autossl-fleet-'));
    fs.chmodSync(dir, 0o755);
    const prefix = options.prefix ?? `${process.env.AUTOSSL_FLEET_NETNS_PREFIX ?? 'autossl-fleet'}-${crypto.randomBytes(3).toString('hex')}`;
    const store = options.store ?? FleetRig.sharedSqlite(dir);
    const rig = new FleetRig(dir, prefix, store);
    rig.fleet = options.fleet !== false;
    try {
      await rig.network(options.nodes ?? 3);
      await rig.certificates();
      await rig.startLb(options.nodes ?? 3);
      for (let k = 1; k <= (options.nodes ?? 3); k++) await rig.startNode(k);
    } catch (error) {
      await rig.stop();
      throw error;
    }
    return rig;
  }

  /** The built-in SQLite store in a directory every node opens (one machine: the nodes are processes of it). */
  private static sharedSqlite(dir: string): unknown {
    const shared = path.join(dir, 'shared-state');
    fs.mkdirSync(shared, { recursive: true, mode: 0o700 });
    const sqlite = distFile('src/store/sqlite/index.js');
    const module = path.join(dir, 'shared-store.mjs');
    fs.writeFileSync(
      module,
      `import { SqliteStore } from ${JSON.stringify(sqlite)};\nexport default ({ options, readOnly }) => new SqliteStore(options.dir, { readOnly });\n`,
    );
    return { module, options: { dir: shared } };
  }

  private async network(count: number): Promise<void> {
    const add = async (name: string): Promise<void> => {
      await ip(['netns', 'add', name]);
      this.namespaces.push(name);
      await ip(['-n', name, 'link', 'set', 'lo', 'up']);
    };
    await add(this.lbNetns);
    await ip(['-n', this.lbNetns, 'addr', 'add', `${FLEET_VIP}/32`, 'dev', 'lo']);
    for (let k = 1; k <= count; k++) {
      const ns = `${this.prefix}-n${k}`;
      await add(ns);
      // created inside the namespaces: nothing appears in the host's own namespace
      await ip(['-n', this.lbNetns, 'link', 'add', `v${k}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
      await ip(['-n', this.lbNetns, 'addr', 'add', `${lbSideIp(k)}/24`, 'dev', `v${k}`]);
      await ip(['-n', this.lbNetns, 'link', 'set', `v${k}`, 'up']);
      await ip(['-n', ns, 'addr', 'add', `${nodeIp(k)}/24`, 'dev', 'eth0']);
      await ip(['-n', ns, 'link', 'set', 'eth0', 'up']);
      await ip(['-n', ns, 'route', 'add', 'default', 'via', lbSideIp(k)]);
    }
  }

  private async certificates(): Promise<void> {
    await makeSandboxCertificates(path.dirname(this.caCert), { caName: 'autossl fleet sandbox CA', leaf: 'pebble', ips: ['127.0.0.1', FLEET_VIP] });
  }

  /** Runs a service inside a namespace; its output goes to <dir>/<name>.log. */
  private spawnIn(netns: string, name: string, argv: string[], env: Record<string, string> = {}): ChildProcess {
    const out = fs.openSync(path.join(this.dir, `${name}.log`), 'a');
    const child = spawn('ip', ['netns', 'exec', netns, ...argv], { stdio: ['ignore', out, out], env: { ...process.env, ...env } });
    fs.closeSync(out);
    this.children.push(child);
    return child;
  }

  /** Waits until something in `netns` accepts TCP on host:port. */
  async waitPort(netns: string, host: string, port: number, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = await execa(
        'ip',
        [
          'netns',
          'exec',
          netns,
          process.execPath,
          '-e',
          `const s=require('net').connect(${port},${JSON.stringify(host)},()=>process.exit(0));s.on('error',()=>process.exit(1))`,
        ],
        { reject: false },
      );
      if (r.exitCode === 0) return;
      if (Date.now() > deadline) throw new AutoSslError('SANDBOX_FAILED', `Nothing answered on ${host}:${port} in ${netns}.`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  private async startLb(count: number): Promise<void> {
    this.spawnIn(this.lbNetns, 'challtestsrv', [
      BINARIES.challtestsrv,
      ...(await challtestsrvArgs({ dns: `${FLEET_VIP}:8053`, management: `${FLEET_VIP}:8055`, defaultIPv4: FLEET_VIP })),
    ]);
    const ca = path.dirname(this.caCert);
    const cfg = path.join(this.dir, 'pebble.json');
    fs.writeFileSync(
      cfg,
      JSON.stringify({
        pebble: {
          listenAddress: `${FLEET_VIP}:14000`,
          managementListenAddress: `${FLEET_VIP}:15000`,
          certificate: path.join(ca, 'pebble.pem'),
          privateKey: path.join(ca, 'pebble.key'),
          httpPort: 80,
          tlsPort: 15001,
          ocspResponderURL: '',
          externalAccountBindingRequired: false,
        },
      }),
    );
    this.spawnIn(this.lbNetns, 'pebble', [BINARIES.pebble, '-config', cfg, '-dnsserver', `${FLEET_VIP}:8053`], {
      PEBBLE_VA_NOSLEEP: '1',
      PEBBLE_WFE_NONCEREJECT: '0',
      PEBBLE_AUTHZREUSE: '0',
    });
    // the balancer: round robin over the nodes' port 80 (a node that refuses is skipped, as a health-checking balancer would)
    fs.mkdirSync(path.join(this.lbPrefix, 'tmp'), { recursive: true });
    const upstreams = Array.from({ length: count }, (_, i) => `        server ${nodeIp(i + 1)}:80 max_fails=0;`).join('\n');
    fs.writeFileSync(
      path.join(this.lbPrefix, 'nginx.conf'),
      `worker_processes 1;
pid ${this.lbPrefix}/nginx.pid;
error_log ${this.lbPrefix}/error.log warn;
events { worker_connections 512; }
http {
    access_log ${this.lbPrefix}/access.log;
    proxy_temp_path ${this.lbPrefix}/tmp;
    client_body_temp_path ${this.lbPrefix}/tmp;
    upstream nodes {
${upstreams}
    }
    server {
        listen ${FLEET_VIP}:80;
        location / {
            proxy_pass http://nodes;
            proxy_set_header Host $host;
            proxy_connect_timeout 2s;
        }
    }
}
`,
    );
    await nginxIn(this.lbNetns, this.lbPrefix, path.join(this.lbPrefix, 'nginx.conf'));
    await this.waitPort(this.lbNetns, FLEET_VIP, 8055);
    await this.waitPort(this.lbNetns, FLEET_VIP, 14000);
    await this.waitPort(this.lbNetns, FLEET_VIP, 15000);
  }

  private async startNode(k: number): Promise<void> {
    const name = `n${k}`;
    const dir = path.join(this.dir, name);
    const prefix = path.join(dir, 'nginx');
    const node: FleetNodeInfo = {
      name,
      netns: `${this.prefix}-${name}`,
      ip: nodeIp(k),
      dir,
      configFile: path.join(dir, 'autossl.config.json'),
      nginxConf: path.join(prefix, 'nginx.conf'),
      nginxPrefix: prefix,
      sitesDir: path.join(prefix, 'sites'),
      accessLog: path.join(prefix, 'access.log'),
      challengeDir: path.join(dir, 'challenges'),
      certbotConfigDir: path.join(dir, 'certbot', 'config'),
    };
    for (const d of [path.join(prefix, 'tmp'), node.sitesDir, node.challengeDir, path.join(dir, 'www')]) fs.mkdirSync(d, { recursive: true, mode: 0o755 });
    fs.chmodSync(dir, 0o755);
    fs.writeFileSync(node.nginxConf, nodeNginxConfig({ prefix, sitesDir: node.sitesDir, accessLog: node.accessLog }));
    fs.writeFileSync(
      path.join(node.sitesDir, '000-default.conf'),
      `server {\n    listen ${node.ip}:80 default_server;\n    server_name _;\n    location ^~ /.well-known/acme-challenge/ { root ${node.challengeDir}; }\n    location / { return 404; }\n}\n`,
    );
    const certbot = { configDir: node.certbotConfigDir, workDir: path.join(dir, 'certbot', 'work'), logsDir: path.join(dir, 'certbot', 'logs') };
    for (const d of Object.values(certbot)) fs.mkdirSync(d, { recursive: true });
    fs.writeFileSync(
      node.configFile,
      JSON.stringify(
        {
          certbot: {
            binary: BINARIES.certbot,
            ...certbot,
            server: `https://${FLEET_VIP}:14000/dir`,
            env: { REQUESTS_CA_BUNDLE: this.caCert },
            timeoutMs: 180_000,
            revocationStatusUrl: `https://${FLEET_VIP}:15000/cert-status-by-serial/{serial}`,
          },
          nginx: { binary: BINARIES.nginx, config: node.nginxConf, extraArgs: ['-p', prefix, '-e', path.join(prefix, 'error.log')] },
          serverAddresses: [FLEET_VIP],
          stateDir: path.join(dir, 'state'),
          challengeDir: node.challengeDir,
          preflight: { resolvers: [`${FLEET_VIP}:8053`], timeoutMs: 3000 },
          ...(this.fleet ? { store: this.storeConfig, fleet: { node: name, pollMs: 100, liveMs: 15_000, ackTimeoutMs: 30_000 } } : {}),
        },
        null,
        2,
      ),
    );
    await nginxIn(node.netns, prefix, node.nginxConf);
    this.nodes.push(node);
  }

  /** A vhost on a node (nodes may lay them out differently): port 80, serving the challenge path from its challenge directory. */
  addSite(node: FleetNodeInfo, domain: string, file = `${domain}.conf`): void {
    const root = path.join(node.dir, 'www', domain);
    fs.mkdirSync(root, { recursive: true });
    fs.writeFileSync(path.join(root, 'index.html'), `<h1>${domain} on ${node.name}</h1>\n`);
    fs.appendFileSync(
      path.join(node.sitesDir, file),
      `server {\n    listen ${node.ip}:80;\n    server_name ${domain};\n    root ${root};\n    location ^~ /.well-known/acme-challenge/ { root ${node.challengeDir}; }\n}\n`,
    );
  }

  /** A node's machine dies: every process in its namespace (nginx, autossl, certbot, hooks) gets SIGKILL. */
  async killNode(node: FleetNodeInfo): Promise<void> {
    const pids = String((await execa('ip', ['netns', 'pids', node.netns], { reject: false })).stdout ?? '')
      .split(/\s+/)
      .filter(Boolean)
      .map(Number)
      .filter((p) => p > 1 && p !== process.pid);
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    for (let i = 0; i < 100 && String((await execa('ip', ['netns', 'pids', node.netns], { reject: false })).stdout ?? '').trim(); i++)
      await new Promise((r) => setTimeout(r, 50));
  }

  /**
   * A split: the node's link to the balancer's namespace (the balancer, pebble, the other nodes) goes down, from the
   * balancer's side, so the balancer's connects to it fail at once and it sends the request to another node (as a
   * health-checking balancer would). The node keeps what does not go over that link: its own nginx and addresses,
   * and a database on a unix socket. heal() brings the link back.
   */
  async cut(node: FleetNodeInfo): Promise<void> {
    await ip(['-n', this.lbNetns, 'link', 'set', `v${this.nodes.indexOf(node) + 1}`, 'down']);
  }

  async heal(node: FleetNodeInfo): Promise<void> {
    await ip(['-n', this.lbNetns, 'link', 'set', `v${this.nodes.indexOf(node) + 1}`, 'up']);
  }

  /** Starts a node's nginx again (after killNode). */
  async startNginx(node: FleetNodeInfo): Promise<void> {
    await nginxIn(node.netns, node.nginxPrefix, node.nginxConf);
  }

  async reload(node: FleetNodeInfo): Promise<void> {
    await nginxIn(node.netns, node.nginxPrefix, node.nginxConf, '-s', 'reload');
  }

  /** The autossl CLI on a node (`autossl <args> --config <node's>`), inside its namespace. */
  cli(node: FleetNodeInfo, args: string[], options: { reject?: boolean; env?: Record<string, string> } = {}) {
    const cli = distFile('src/cli.js');
    return execa('ip', ['netns', 'exec', node.netns, process.execPath, cli, ...args, '--config', node.configFile], {
      reject: options.reject ?? false,
      env: { ...process.env, ...options.env },
      all: true,
    });
  }

  /** Starts `autossl fleet run` on a node (its output in <dir>/fleet-<node>.log). */
  startAgent(node: FleetNodeInfo): ChildProcess {
    const cli = distFile('src/cli.js');
    return this.spawnIn(node.netns, `fleet-${node.name}`, [process.execPath, cli, 'fleet', 'run', '--config', node.configFile]);
  }

  /** The serial each name is served with on a node (SNI at its own address, :443); null where the handshake fails. */
  async served(node: FleetNodeInfo, names: readonly string[]): Promise<Record<string, string | null>> {
    const script = `const tls=require('tls');const names=${JSON.stringify(names)};Promise.all(names.map(n=>new Promise(r=>{const s=tls.connect({host:${JSON.stringify(node.ip)},port:443,servername:n,rejectUnauthorized:false},()=>{const x=s.getPeerCertificate().serialNumber;s.end();r([n,x?x.toUpperCase().replace(/^(00)+(?=.)/,''):null])});s.on('error',()=>r([n,null]));s.setTimeout(3000,()=>{s.destroy();r([n,null])})}))).then(e=>{console.log(JSON.stringify(Object.fromEntries(e)))})`;
    const r = await execa('ip', ['netns', 'exec', node.netns, process.execPath, '-e', script]);
    return JSON.parse(r.stdout) as Record<string, string | null>;
  }

  /** An HTTP GET through the balancer (from its namespace, to the address every name resolves to): the status. */
  async viaBalancer(host: string, urlPath: string): Promise<number> {
    const script = `require('http').get({host:${JSON.stringify(FLEET_VIP)},port:80,path:${JSON.stringify(urlPath)},headers:{host:${JSON.stringify(host)}},timeout:10000},(r)=>{r.resume();console.log(r.statusCode)}).on('error',()=>console.log(0))`;
    const r = await execa('ip', ['netns', 'exec', this.lbNetns, process.execPath, '-e', script]);
    return Number(r.stdout.trim());
  }

  /** Orders pebble received for a name (its log names each order's identifiers). */
  ordersOf(name: string): number {
    return fs.readFileSync(this.pebbleLog, 'utf8').split(`Value:"${name}"`).length - 1;
  }

  async stop(): Promise<void> {
    for (const node of this.nodes) await stopNginx(path.join(node.nginxPrefix, 'nginx.pid')).catch(() => undefined);
    await stopNginx(path.join(this.lbPrefix, 'nginx.pid')).catch(() => undefined);
    for (const child of this.children.splice(0)) if (child.exitCode === null) child.kill('SIGTERM');
    for (const ns of this.namespaces.splice(0).reverse()) {
      await stopNetnsProcesses(ns);
      await deleteNetns(ns);
    }
    if (!process.env.AUTOSSL_KEEP_RIG) await fs.promises.rm(this.dir, { recursive: true, force: true }).catch(() => undefined);
  }
}
