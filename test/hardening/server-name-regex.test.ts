/**
 * Issue 12, defect 7: a server_name regex with catastrophic backtracking (`~^(a|aa)+$`) hung name matching: V8's
 * backtracking engine takes ~1.6^n steps on a run of n a's that then fails. Patterns the linear-time engine can
 * run get it (and so the right answer, at once); the others run with a time limit. Each lookup runs in a child
 * process with a wall-clock limit (isolated.ts): before the fix it was killed there.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { matchServerName, testRegexBounded } from '../../src/nginx/listen.js';
import { dist, runIsolated } from './isolated.js';

const EVIL = 'a'.repeat(63); // the longest DNS label: ~10^13 steps for (a|aa)+ before it gives up

function tree(serverNames: string[]): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'autossl-regex-'));
  const servers = serverNames.map((n) => `  server { listen 80; server_name ${n}; }`).join('\n');
  fs.writeFileSync(path.join(dir, 'nginx.conf'), `events {}\nhttp {\n${servers}\n}\n`);
  return path.join(dir, 'nginx.conf');
}

async function lookup(main: string, hosts: string[]) {
  return runIsolated<{ found: Array<number[]>; timeouts: Array<{ pattern: string; host: string }>; ms: number }>(`
import { NginxTree } from ${dist('nginx/tree.js')};
import * as listen from ${dist('nginx/listen.js')};
const t = performance.now();
const tree = NginxTree.load(${JSON.stringify(main)});
const found = ${JSON.stringify(hosts)}.map((h) => tree.findServers(h).http.map((s) => s.order));
console.log(JSON.stringify({ found, timeouts: listen.regexTimeouts?.() ?? [], ms: performance.now() - t }));
`);
}

describe('server_name regexes are bounded', () => {
  it("~^(a|aa)+$ against 63 a's then a dot: answered at once (no match), and a run of a's still matches", async () => {
    const main = tree(['~^(a|aa)+$', 'fallback.test', '~^(a|aa)+\\.test$']);
    const run = await lookup(main, [`${EVIL}.example`, 'aaaa', `${EVIL}.test`, 'fallback.test']);
    expect(run.timedOut).toBe(false);
    expect(run.result?.found).toEqual([[], [0], [2], [1]]);
    expect(run.result?.timeouts).toEqual([]); // the linear engine answered: nothing ran out of time
    expect(run.result!.ms).toBeLessThan(1_000);
  });

  it('a catastrophic pattern the linear engine cannot run (a lookahead) is cut off by the time limit and does not match', async () => {
    const main = tree(['~^(a|aa)+(?=b)', '~^(?!www\\.)(a|aa)+\\.test$', '~^(\\w+)\\.\\1\\.test$']);
    const run = await lookup(main, [`${EVIL}.example`, 'aaaa.test', 'xy.xy.test']);
    expect(run.timedOut).toBe(false);
    // both lookahead patterns ran out of time on the first host and did not match; every other answer is right
    expect(run.result?.found).toEqual([[], [1], [2]]);
    expect(run.result?.timeouts).toEqual([
      { pattern: '^(a|aa)+(?=b)', host: `${EVIL}.example` },
      { pattern: '^(?!www\\.)(a|aa)+\\.test$', host: `${EVIL}.example` },
    ]);
    expect(run.result!.ms).toBeLessThan(3_000);
  });

  it('the same bound serves location regexes: case-sensitive, uppercase allowed, null when it cannot tell', () => {
    const probe = '/.well-known/acme-challenge/autossl-probe-token';
    let t = performance.now();
    expect(testRegexBounded('^/(.+)+\\.php$', probe, false)).toBe(false); // hung routing's plain RegExp
    expect(performance.now() - t).toBeLessThan(200);
    expect(testRegexBounded('^/\\.Well-known/', probe, false)).toBe(false);
    expect(testRegexBounded('^/\\.Well-known/', probe, true)).toBe(true);
    t = performance.now();
    expect(testRegexBounded('^/(.+)+(?=x)\\.php$', probe, false)).toBeNull(); // a lookahead: guarded, out of time
    expect(performance.now() - t).toBeLessThan(1_000);
    expect(testRegexBounded('^/(?<a>x))', probe, false)).toBeNull(); // not a JavaScript regex
  });

  it('matches as nginx does: case-insensitive, PCRE named groups, uppercase escapes keep their meaning', () => {
    expect(matchServerName('~^(?P<sub>www)\\.example\\.test$', 'www.example.test')).toEqual({ kind: 'regex' });
    expect(matchServerName('~^WWW\\.Example\\.test$', 'www.example.test')).toEqual({ kind: 'regex' });
    expect(matchServerName('~^www\\.example\\.test$', 'WWW.example.test')).toEqual({ kind: 'regex' });
    expect(matchServerName('~^\\D+\\.test$', 'abc.test')).toEqual({ kind: 'regex' });
    expect(matchServerName('~^\\D+\\.test$', 'a1.test')).toBeNull();
    expect(matchServerName('~^(a)\\1\\.test$', 'aa.test')).toEqual({ kind: 'regex' }); // a backreference: guarded path
    expect(matchServerName('~^[unclosed', 'x.test')).toBeNull(); // not a JavaScript regex: never chosen
  });
});
