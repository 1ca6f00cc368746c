/**
 * `autossl demo`: the whole product on loopback. Starts the sandbox (installing the Debian packages when
 * missing and running as root), adds three vhost shapes, issues certificates for them through the real
 * pipeline, and prints a curl command per domain that shows HTTPS served. Stops everything unless --keep.
 */
import fs from 'node:fs';
import path from 'node:path';
import { validateConfig } from '../config/schema.js';
import { createAutoSsl } from '../engine.js';
import type { StageEvent } from '../pipeline/context.js';
import { AcmeRig } from './rig.js';

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

export async function runDemo(options: { keep: boolean; log: (line: string) => void }): Promise<number> {
  const { log } = options;
  const rig = await AcmeRig.start({ install: true, log: (l) => log(`[sandbox] ${l}`) });
  let ok = false;
  try {
    // fastcgi_params is not in the sandbox prefix; a stub keeps the PHP shape valid for nginx -t
    fs.writeFileSync(path.join(rig.info.nginxPrefix, 'fastcgi_params'), 'fastcgi_param QUERY_STRING $query_string;\n');
    for (const [name, body] of Object.entries(DEMO_SITES)) rig.addSite(name, body);
    await rig.reloadNginx();
    const raw = rig.autosslConfig({
      sites: [
        { domain: 'static.demo.test', aliases: ['www.static.demo.test'] },
        { domain: 'php.demo.test' },
        { domain: 'app.demo.test' },
      ],
    });
    // written out, so that with --keep every other command can be tried against the sandbox
    const configFile = path.join(rig.info.dir, 'autossl.config.json');
    fs.writeFileSync(configFile, `${JSON.stringify(raw, null, 2)}\n`);
    const config = validateConfig(raw, configFile, rig.info.dir);
    const engine = await createAutoSsl(config);
    const onEvent = (e: StageEvent): void => {
      if (e.plugin) return;
      if (e.status === 'done') log(`  ${e.domain.padEnd(22)} ${e.stage.padEnd(12)} ${Math.round(e.ms ?? 0).toString().padStart(6)} ms`);
      else if (e.status === 'info' && e.message) log(`  ${e.domain.padEnd(22)} ${''.padEnd(12)} ${''.padStart(9)}  ${e.message}`);
    };
    log('issuing certificates from the local ACME CA (pebble) through autossl\'s pipeline:');
    const results = await engine.issue(config.sites.map((s) => s.domain), { onEvent });
    const rootFile = path.join(rig.info.dir, 'pebble-root.pem');
    fs.writeFileSync(rootFile, await rig.issuingRoot());
    log('');
    for (const r of results) {
      if (r.ok) {
        log(`ok   ${r.domain} -> ${r.lineage?.fullchain} (${Math.round(r.ms)} ms)`);
        log(`     curl --cacert ${rootFile} --resolve ${r.domain}:443:127.0.0.1 https://${r.domain}/`);
      } else log(`FAIL ${r.domain}: ${r.error?.code}: ${r.error?.message}\n     hint: ${r.error?.hint}`);
    }
    ok = results.every((r) => r.ok);
    if (options.keep) {
      log(`\nsandbox left running in ${rig.info.dir} (--keep); stop it with: kill $(cat ${rig.info.dir}/pids)`);
      log(`its config, for the other commands: node dist/src/cli.js status --config ${configFile}`);
      rig.detach();
    }
  } finally {
    if (!options.keep) {
      await rig.stop();
      await fs.promises.rm(rig.info.dir, { recursive: true, force: true }).catch(() => undefined);
      log('sandbox stopped and removed (npm run demo -- --keep leaves it running, to try the curl commands and the other commands)');
    }
  }
  return ok ? 0 : 1;
}
