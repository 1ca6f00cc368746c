/**
 * `autossl demo`: the whole product on loopback. Runs itself again inside a network namespace of its own (see
 * netns.ts: no port of the host taken, nothing stopped), starts the sandbox there, adds three vhost shapes, issues
 * certificates for them through the real pipeline, and prints a curl command per domain that shows HTTPS served
 * (run inside the namespace). Stops everything and removes the namespace unless --keep. Missing Debian packages are
 * named with the command that installs them; nothing is installed.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { validateConfig } from '../../src/config/schema.js';
import { createAutoSsl } from '../../src/engine.js';
import type { StageEvent } from '../../src/pipeline/context.js';
import { AutoSslError } from '../../src/errors.js';
import { createNetns, deleteNetns, inNetns, NETNS_ENV, stopNetnsProcesses } from './netns.js';
import { AcmeRig, checkPackages } from './rig.js';

export const DEMO_SITES: Record<string, string> = {
  'static.demo.test': `server {
    listen 127.0.0.1:80;
    server_name static.demo.test www.static.demo.test;
    root {root};
    index index.html;
}
`,
  'php.demo.test': `server {
    listen 127.0.0.1:80;
    server_name php.demo.test;
    root {root};
    index index.php index.html;

    location / {
        try_files $uri $uri/ /index.php?$query_string;
    }

    # hide dotfiles (this also hides /.well-known/ unless autossl adds its own location)
    location ~ /\\. {
        deny all;
    }

    location ~ \\.php$ {
        fastcgi_pass 127.0.0.1:9000;
        include fastcgi_params;
    }
}
`,
  'app.demo.test': `server {
    listen 127.0.0.1:80;
    listen [::1]:80;
    server_name app.demo.test;

    location / {
        proxy_pass http://127.0.0.1:3000;
        proxy_set_header Host $host;
    }
}
`,
};

interface DemoOptions {
  keep: boolean;
  log: (line: string) => void;
}

export async function runDemo(options: DemoOptions): Promise<number> {
  const inside = process.env[NETNS_ENV];
  if (inside) return runSandbox(options, inside);
  await checkPackages();
  if (process.getuid?.() !== 0)
    throw new AutoSslError('SANDBOX_FAILED', 'The demo runs nginx on port 80 of a network namespace of its own: it needs root.', {
      hint: 'Run it as root (sudo npm run demo).',
    });
  const ns = await createNetns();
  if (ns.name === null) {
    // a container without the right to make namespaces: the host's loopback, only if its ports are free
    options.log(
      `[sandbox] no network namespace of its own (ip netns add: ${ns.why}); running on this machine's loopback, which needs 127.0.0.1:80 and :443 free`,
    );
    return runSandbox(options, null);
  }
  try {
    return await runInNetns(ns.name, options);
  } finally {
    // a demo that did not finish (killed, crashed) may have left its services in the namespace: only those stop
    if (!options.keep) {
      await stopNetnsProcesses(ns.name);
      await deleteNetns(ns.name);
    }
  }
}

/** This command again, inside the namespace; its output goes to `log` line by line. */
async function runInNetns(name: string, options: DemoOptions): Promise<number> {
  const cli = path.resolve(import.meta.dirname, '../../src/cli.js');
  const child = spawn('ip', ['netns', 'exec', name, process.execPath, cli, 'demo', ...(options.keep ? ['--keep'] : [])], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, [NETNS_ENV]: name },
  });
  readline.createInterface({ input: child.stdout! }).on('line', (line) => options.log(line));
  // Ctrl-C reaches the child too: this process waits for it, then removes the namespace
  const ignore = (): void => undefined;
  process.on('SIGINT', ignore);
  try {
    return await new Promise<number>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', (code) => resolve(code ?? 1));
    });
  } finally {
    process.off('SIGINT', ignore);
  }
}

/** The sandbox and the three sites, on the loopback of namespace `netns` (this process runs inside it) or the host's. */
async function runSandbox(options: DemoOptions, netns: string | null): Promise<number> {
  const { log } = options;
  const rig = await AcmeRig.start({ log: (l) => log(`[sandbox] ${l}`) });
  if (netns) log(`[sandbox] in the network namespace ${netns}: its own 127.0.0.1, no port of this machine taken`);
  let ok = false;
  try {
    // fastcgi_params is not in the sandbox prefix; a stub keeps the PHP shape valid for nginx -t
    fs.writeFileSync(path.join(rig.info.nginxPrefix, 'fastcgi_params'), 'fastcgi_param QUERY_STRING $query_string;\n');
    for (const [name, body] of Object.entries(DEMO_SITES)) rig.addSite(name, body);
    await rig.reloadNginx();
    const raw = rig.autosslConfig({
      sites: [{ domain: 'static.demo.test', aliases: ['www.static.demo.test'] }, { domain: 'php.demo.test' }, { domain: 'app.demo.test' }],
    });
    // written out, so that with --keep every other command can be tried against the sandbox
    const configFile = path.join(rig.info.dir, 'autossl.config.json');
    fs.writeFileSync(configFile, `${JSON.stringify(raw, null, 2)}\n`);
    const config = validateConfig(raw, configFile, rig.info.dir);
    const engine = await createAutoSsl(config);
    const onEvent = (e: StageEvent): void => {
      if (e.plugin) return;
      if (e.status === 'done')
        log(
          `  ${e.domain.padEnd(22)} ${e.stage.padEnd(12)} ${Math.round(e.ms ?? 0)
            .toString()
            .padStart(6)} ms`,
        );
      else if (e.status === 'info' && e.message) log(`  ${e.domain.padEnd(22)} ${''.padEnd(12)} ${''.padStart(9)}  ${e.message}`);
    };
    log("issuing certificates from the local ACME CA (pebble) through autossl's pipeline:");
    const results = await engine.issue(
      config.sites.map((s) => s.domain),
      { onEvent },
    );
    const rootFile = path.join(rig.info.dir, 'pebble-root.pem');
    fs.writeFileSync(rootFile, await rig.issuingRoot());
    log('');
    for (const r of results) {
      if (r.ok) {
        log(`ok   ${r.domain} -> ${r.lineage?.fullchain} (${Math.round(r.ms)} ms)`);
        log(`     ${inNetns(netns, `curl --cacert ${rootFile} --resolve ${r.domain}:443:127.0.0.1 https://${r.domain}/`)}`);
      } else log(`FAIL ${r.domain}: ${r.error?.code}: ${r.error?.message}\n     hint: ${r.error?.hint}`);
    }
    ok = results.every((r) => r.ok);
    if (options.keep) {
      log(`\nsandbox left running in ${rig.info.dir} (--keep); stop it with: kill $(cat ${rig.info.dir}/pids)${netns ? ` && ip netns delete ${netns}` : ''}`);
      log(
        `its config, for the other commands: ${inNetns(netns, `node ${path.relative(process.cwd(), path.resolve(import.meta.dirname, '../../src/cli.js'))} status --config ${configFile}`)}`,
      );
      rig.detach();
    }
  } finally {
    if (!options.keep) {
      await rig.stop();
      await fs.promises.rm(rig.info.dir, { recursive: true, force: true }).catch(() => undefined);
      if (netns) await deleteNetns(netns);
      log('sandbox stopped and removed (npm run demo -- --keep leaves it running, to try the curl commands and the other commands)');
    }
  }
  return ok ? 0 : 1;
}
