/**
 * bench/issue-one: one fresh domain each, against the same pebble, 5 runs:
 *   autossl issue   vs   certbot --nginx   vs   certbot certonly --webroot
 * Prints medians and ratios measured in this run. Needs root and the Debian packages (see .ci/run).
 *   npm run build && node dist/bench/issue-one.js [runs]
 */
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { AcmeRig, BINARIES } from '../scripts/sandbox/rig.js';

const runs = Number(process.argv[2] ?? 5);
const CLI = path.resolve(import.meta.dirname, '../src/cli.js');
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function time(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return (performance.now() - t) / 1000;
}

let rig = await AcmeRig.start();
try {
  const site = (name: string) => `server {\n    listen 127.0.0.1:80;\n    server_name ${name};\n    root {root};\n}\n`;
  const env = { REQUESTS_CA_BUNDLE: rig.info.caCert };
  const certbotBase = (dirs: { configDir: string; workDir: string; logsDir: string }) => [
    ...rig.certbotFlags(dirs),
    '--agree-tos',
    '--register-unsafely-without-email',
    '--non-interactive',
  ];
  const cfgFile = path.join(rig.info.dir, 'autossl.config.json');
  fs.writeFileSync(cfgFile, JSON.stringify(rig.autosslConfig({}, 'autossl-certbot')));
  const results: Record<string, number[]> = { autossl: [], 'certbot --nginx': [], 'certbot --webroot': [] };
  // Each tool in turn, fresh domains each run; certbot --nginx last because it rewrites the files it touches.
  const sites = Array.from({ length: runs }, (_, i) => ({ a: `a${i}.bench.test`, n: `n${i}.bench.test`, w: `w${i}.bench.test` }));
  const roots: Record<string, string> = {};
  for (const s of sites) for (const name of [s.a, s.n, s.w]) roots[name] = rig.addSite(name, site(name)).root;
  await rig.reloadNginx();
  for (const { a } of sites) {
    results.autossl!.push(
      await time(async () => {
        const r = await execa('node', [CLI, 'issue', a, '--config', cfgFile], { reject: false });
        if (r.exitCode !== 0) throw new Error(`autossl failed: ${r.stdout}\n${r.stderr}`);
      }),
    );
  }
  const wd = rig.certbotDirs('certbot-webroot');
  for (const { w } of sites) {
    results['certbot --webroot']!.push(
      await time(() => execa(BINARIES.certbot, ['certonly', '--webroot', '-w', roots[w]!, '-d', w, ...certbotBase(wd)], { env })),
    );
  }
  // certbot --nginx fails its second run on the same sandbox nginx (its challenge include is left in a state the
  // next run's validation 404s on), so each of its runs gets a fresh sandbox; the sandbox start is not timed.
  for (const [i, { n }] of sites.entries()) {
    await rig.stop();
    rig = await AcmeRig.start();
    rig.addSite(n, site(n));
    await rig.reloadNginx();
    const nd = rig.certbotDirs(`certbot-nginx-${i}`);
    const nginxEnv = { REQUESTS_CA_BUNDLE: rig.info.caCert };
    results['certbot --nginx']!.push(
      await time(() =>
        execa(BINARIES.certbot, ['--nginx', '--nginx-server-root', rig.info.nginxPrefix, '--nginx-ctl', BINARIES.nginx, '-d', n, ...certbotBase(nd)], {
          env: nginxEnv,
        }),
      ),
    );
  }
  const base = median(results['certbot --nginx']!);
  console.log(`issue-one: ${runs} runs each, one fresh domain per run, pebble with NOSLEEP (certbot --nginx: a fresh sandbox per run)`);
  for (const [name, xs] of Object.entries(results)) {
    console.log(
      `${name.padEnd(20)} median ${median(xs).toFixed(2)} s   (${xs.map((x) => x.toFixed(2)).join(', ')})   ratio to certbot --nginx ${(median(xs) / base).toFixed(2)}`,
    );
  }
  console.log(`bar: autossl <= 0.6 x certbot --nginx: ${median(results.autossl!) / base <= 0.6 ? 'met' : 'NOT met'}`);
} finally {
  await rig.stop();
}
