/**
 * bench/batch: N fresh domains against the same pebble, in one run:
 *   autossl issue --all (one batch)   vs   N sequential `certbot certonly --webroot`   vs   N sequential `certbot --nginx`
 * Prints wall times, the ratio to sequential certonly (bar: <= 0.25 at N = 20), autossl's peak RSS (bar: < 200 MB at
 * N = 100) and its nginx reloads. Needs root and the Debian packages (see .ci/run); not a test.
 *   npm run build && node dist/bench/batch.js 20 100
 */
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { AcmeRig, BINARIES } from '../scripts/sandbox/rig.js';

const sizes = process.argv
  .slice(2)
  .map(Number)
  .filter((n) => n > 0);
const CLI = path.resolve(import.meta.dirname, '../src/cli.js');
const block = (name: string, root: string) => `server {\n    listen 127.0.0.1:80;\n    server_name ${name};\n    root ${root};\n}\n`;

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return (performance.now() - t) / 1000;
}

for (const n of sizes.length ? sizes : [20]) {
  const rig = await AcmeRig.start();
  try {
    const env = { REQUESTS_CA_BUNDLE: rig.info.caCert };
    const base = (d: { configDir: string; workDir: string; logsDir: string }) => [
      ...rig.certbotFlags(d),
      '--agree-tos',
      '--register-unsafely-without-email',
      '--non-interactive',
    ];
    const groups = { a: [] as string[], w: [] as string[], n: [] as string[] };
    const roots: Record<string, string> = {};
    for (const g of Object.keys(groups) as Array<keyof typeof groups>) {
      for (let i = 1; i <= n; i++) {
        const name = `${g}${i}.bench.test`;
        groups[g].push(name);
        roots[name] = rig.addSite(name, block(name, '{root}')).root;
      }
    }
    await rig.reloadNginx();
    // certbot --nginx, one after another; first, on the sandbox as set up (run after autossl's batch, its runs failed
    // validation here: 1 of 20 succeeded)
    const nd = rig.certbotDirs('certbot-nginx');
    let nginxOk = 0;
    const nginxPlugin = await timed(async () => {
      for (const name of groups.n)
        if (
          (
            await execa(BINARIES.certbot, ['--nginx', '--nginx-server-root', rig.info.nginxPrefix, '--nginx-ctl', BINARIES.nginx, '-d', name, ...base(nd)], {
              env,
              reject: false,
            })
          ).exitCode === 0
        )
          nginxOk++;
    });
    // autossl: one batch; its peak RSS from GNU time, its reloads counted by the reload command
    const reloads = path.join(rig.info.dir, 'reloads');
    const config = path.join(rig.info.dir, 'autossl.config.json');
    fs.writeFileSync(
      config,
      JSON.stringify(
        rig.autosslConfig(
          {
            nginx: {
              binary: BINARIES.nginx,
              config: rig.info.nginxConf,
              extraArgs: rig.nginxArgs,
              reloadCommand: ['/bin/sh', '-c', `echo r >> ${reloads} && exec ${BINARIES.nginx} ${rig.nginxArgs.join(' ')} -c ${rig.info.nginxConf} -s reload`],
            },
            sites: groups.a.map((domain) => ({ domain })),
          },
          'autossl-certbot',
        ),
      ),
    );
    const rssFile = path.join(rig.info.dir, 'rss');
    let ok = 0;
    const autossl = await timed(async () => {
      const r = await execa('/usr/bin/time', ['-f', '%M', '-o', rssFile, 'node', CLI, 'issue', '--all', '--json', '--config', config], { reject: false });
      ok = (JSON.parse(r.stdout.trim().split('\n').pop()!) as { results: Array<{ ok: boolean }> }).results.filter((x) => x.ok).length;
    });
    const rssMb = Number(fs.readFileSync(rssFile, 'utf8').trim().split('\n').pop()) / 1024;
    const reloadCount = fs.readFileSync(reloads, 'utf8').trim().split('\n').length;
    // certbot certonly --webroot, one after another (what a panel's loop does today)
    const wd = rig.certbotDirs('certbot-webroot');
    let webrootOk = 0;
    const webroot = await timed(async () => {
      for (const name of groups.w)
        if ((await execa(BINARIES.certbot, ['certonly', '--webroot', '-w', roots[name]!, '-d', name, ...base(wd)], { env, reject: false })).exitCode === 0)
          webrootOk++;
    });
    console.log(`batch N=${n} (pebble with NOSLEEP, ${process.env.AUTOSSL_BENCH_NOTE ?? 'this machine'})`);
    console.log(`  autossl issue --all            ${autossl.toFixed(1)} s  (${ok}/${n} ok, peak RSS ${rssMb.toFixed(0)} MB, ${reloadCount} nginx reloads)`);
    console.log(`  sequential certonly --webroot  ${webroot.toFixed(1)} s  (${webrootOk}/${n} ok)`);
    console.log(`  sequential certbot --nginx     ${nginxPlugin.toFixed(1)} s  (${nginxOk}/${n} ok)`);
    console.log(
      `  ratio autossl / certonly ${(autossl / webroot).toFixed(2)} (bar 0.25 at N=20), autossl / certbot --nginx ${(autossl / nginxPlugin).toFixed(2)}; RSS bar < 200 MB at N=100: ${rssMb < 200 ? 'met' : 'NOT met'}`,
    );
  } finally {
    await rig.stop();
  }
}
