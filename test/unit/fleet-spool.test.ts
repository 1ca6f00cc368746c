/**
 * The fleet hooks' fast path (src/fleet/spool.ts): the sh hook script certbot runs hands its challenge to the
 * autossl process that runs certbot, through a spool directory, and ends with that process's answer; anywhere
 * else (no spool, the process gone, a token that is not a file name) it runs its Node command as before.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CERTONLY_PARENT_ENV, writeHookScript } from '../../src/certbot/hooks.js';
import { FLEET_SPOOL_ENV, HookSpool, spoolPrelude } from '../../src/fleet/spool.js';

let dir: string;
let script: string;
const calls: Array<[string, string, string]> = [];
let spool: HookSpool;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'autossl-spool-'));
  // the Node command the script falls back to: a stand-in that says it ran
  const fallback = path.join(dir, 'fallback.mjs');
  fs.writeFileSync(fallback, 'console.log(`fallback ${process.argv[2]} ${process.env.CERTBOT_TOKEN}`);\n');
  script = writeHookScript(path.join(dir, 'fleet-auth'), ['auth'], undefined, 'test hook', fallback, spoolPrelude('auth', CERTONLY_PARENT_ENV));
  spool = await HookSpool.open(path.join(dir, 'spools'), async (phase, token, content) => {
    calls.push([phase, token, content]);
    if (token === 'refused') throw new Error('nodes n2 did not ack\nin time');
    return `published ${token}`;
  });
});

afterAll(async () => {
  await spool.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const run = (env: Record<string, string>) => execa(script, [], { reject: false, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env }, extendEnv: false });

describe('fleet hook spool', () => {
  it('inside autossl: the process answers, no Node started; its failure is the hook failure', async () => {
    const ok = await run({ ...spool.env, [CERTONLY_PARENT_ENV]: String(process.pid), CERTBOT_TOKEN: 'tok_EN-1', CERTBOT_VALIDATION: 'tok_EN-1.thumb' });
    expect([ok.exitCode, ok.stdout]).toEqual([0, 'published tok_EN-1']);
    expect(calls).toContainEqual(['auth', 'tok_EN-1', 'tok_EN-1.thumb']);
    const bad = await run({ ...spool.env, [CERTONLY_PARENT_ENV]: String(process.pid), CERTBOT_TOKEN: 'refused', CERTBOT_VALIDATION: 'x' });
    expect(bad.exitCode).toBe(1);
    expect(bad.stdout).toBe('nodes n2 did not ack in time');
    // nothing left behind in the spool: requests and answers are taken
    expect(fs.readdirSync(spool.dir)).toEqual([]);
  });

  it('elsewhere it runs its Node command: no spool (certbot renew by its timer), the parent gone, a token that is no file name', async () => {
    const base = { CERTBOT_VALIDATION: 'v' };
    const noSpool = await run({ ...base, [CERTONLY_PARENT_ENV]: String(process.pid), CERTBOT_TOKEN: 'abc' });
    expect(noSpool.stdout).toBe('fallback auth abc');
    // a pid that is not alive (the highest possible is never ours)
    const gone = await run({ ...base, ...spool.env, [CERTONLY_PARENT_ENV]: '4194304', CERTBOT_TOKEN: 'abc' });
    expect(gone.stdout).toBe('fallback auth abc');
    const before = calls.length;
    for (const token of ['../../etc/x', 'a b', 'a;touch /tmp/p', '']) {
      const hostile = await run({ ...base, ...spool.env, [CERTONLY_PARENT_ENV]: String(process.pid), CERTBOT_TOKEN: token });
      expect(hostile.stdout, token).toBe(`fallback auth ${token}`);
    }
    expect(calls.length).toBe(before);
    expect(fs.readdirSync(spool.dir)).toEqual([]);
  });

  it('the spool variable names the spool directory; a missing directory falls back too', async () => {
    expect(spool.env[FLEET_SPOOL_ENV]).toBe(spool.dir);
    const missing = await run({
      [FLEET_SPOOL_ENV]: path.join(dir, 'nope'),
      [CERTONLY_PARENT_ENV]: String(process.pid),
      CERTBOT_TOKEN: 'abc',
      CERTBOT_VALIDATION: 'v',
    });
    expect(missing.stdout).toBe('fallback auth abc');
  });
});
