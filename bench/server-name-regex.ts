/**
 * bench/server-name-regex: what bounding server_name regexes (issue 12, defect 7) costs name lookups.
 * A generated tree of N vhost files (default 10,000), each with an exact name and a regex name; `guardedShare` of
 * them (default 1%) use a lookahead, which the linear-time engine cannot run, so they take the vm-guarded path.
 * Times NginxTree.load and findServers (every regex name of the tree is tried on each lookup), cold and warm, and
 * the same regex tests done the old way (plain backtracking RegExp, unbounded) as the baseline.
 *   npm run build && node dist/bench/server-name-regex.js [count] [guardedShare]
 * AUTOSSL_BENCH_NO_EVIL=1 leaves the two catastrophic names out (to time code without the bound, which hangs on them).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { matchServerName } from '../src/nginx/listen.js';
import { clearConfigCache, NginxTree } from '../src/nginx/tree.js';

const count = Number(process.argv[2] ?? 10_000);
const guardedShare = Number(process.argv[3] ?? 0.01);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'autossl-regex-bench-'));
const sites = path.join(dir, 'sites');
fs.mkdirSync(sites);
fs.writeFileSync(path.join(dir, 'nginx.conf'), `events {}\nhttp {\n    include ${sites}/*.conf;\n}\n`);
const guardedEvery = guardedShare > 0 ? Math.round(1 / guardedShare) : Infinity;
const patterns: string[] = [];
for (let i = 0; i < count; i++) {
  const regex = i % guardedEvery === 0 ? `~^(?!admin\\.)(\\w+\\.)?site${i}\\.regex\\.test$` : `~^(www\\.)?site${i}\\.regex\\.test$`;
  patterns.push(regex);
  fs.writeFileSync(
    path.join(sites, `site${i}.conf`),
    `server {\n    listen 80;\n    server_name site${i}.scale.test ${regex};\n    root /var/www/site${i};\n}\n`,
  );
}
// one catastrophic name of each kind: linear engine, and guarded (a lookahead keeps it off the linear engine)
const evilNames = process.env.AUTOSSL_BENCH_NO_EVIL !== '1';
if (evilNames) fs.writeFileSync(path.join(sites, 'zz-evil.conf'), 'server {\n    listen 80;\n    server_name ~^(a|aa)+$ ~^(a|aa)+(?=b);\n}\n');

const ms = (fn: () => void): number => {
  const t = performance.now();
  fn();
  return performance.now() - t;
};
/** Median of 5 runs: this machine is shared and single runs of a few ms are noisy. */
const median = (fn: () => void): number => {
  const runs = Array.from({ length: 5 }, () => ms(fn)).sort((a, b) => a - b);
  return runs[2]!;
};
const mid = Math.floor(count / 2);
clearConfigCache();
let tree!: NginxTree;
const load = ms(() => (tree = NginxTree.load(path.join(dir, 'nginx.conf'))));
const exactCold = ms(() => tree.findServers(`site${mid}.scale.test`));
const exactWarm = median(() => tree.findServers(`site${mid}.scale.test`));
const regexHost = `www.site${mid + 1}.regex.test`;
const regexCold = ms(() => tree.findServers(regexHost));
const regexWarm = median(() => tree.findServers(regexHost));
const evil = evilNames ? ms(() => tree.findServers(`${'a'.repeat(63)}.example`)) : 0;
const evilWarm = evilNames ? median(() => tree.findServers(`${'a'.repeat(63)}.example`)) : 0;
// the baseline: the same tests with plain backtracking regexes, as before the bound (compiled on first use)
const host = `site${mid}.scale.test`;
let plain: RegExp[] = [];
const baselineCold = ms(() => (plain = patterns.map((p) => new RegExp(p.slice(1), 'i'))).forEach((re) => re.test(host)));
const baselineWarm = median(() => plain.forEach((re) => re.test(host)));
const boundedWarm = median(() => patterns.forEach((p) => matchServerName(p, host)));

console.log(`server-name-regex: ${count} vhosts, each with a regex name; ${Math.ceil(count / guardedEvery)} guarded (lookahead), plus two catastrophic names`);
console.log(`tree load (cold)                         ${load.toFixed(0)} ms`);
console.log(`findServers exact host, first / warm  ${exactCold.toFixed(1)} / ${exactWarm.toFixed(1)} ms`);
console.log(`findServers regex host, first / warm  ${regexCold.toFixed(1)} / ${regexWarm.toFixed(1)} ms`);
if (evilNames) console.log(`findServers 63 a's (catastrophic)      ${evil.toFixed(1)} / ${evilWarm.toFixed(1)} ms   (unbounded before: never ends)`);
console.log(
  `${count} regex tests, plain RegExp: compile + test ${baselineCold.toFixed(1)} ms, warm ${baselineWarm.toFixed(1)} ms; bounded, warm ${boundedWarm.toFixed(1)} ms`,
);
fs.rmSync(dir, { recursive: true, force: true });
