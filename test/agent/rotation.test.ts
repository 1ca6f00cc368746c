/**
 * Token rotation (issue 19): `autossl agent` as its own process (a private nginx tree, no CA). The token line of
 * the tokens file is replaced: the old token is refused (401) within 2 s and the new one accepted, without a
 * restart. SIGHUP re-reads the config (here: agent.tokensFile points to another file) and the agent keeps running.
 * A tokens file made unusable (readable by others) leaves no token in force. Needs dist (npx tsc -p tsconfig.json).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { rfc3339, sign, TokenSource } from '../../src/agent/auth.js';
import { freePort } from '../../bench/agent-flood.js';

const CLI = path.resolve(import.meta.dirname, '../../dist/src/cli.js');
const OLD = 'o'.repeat(64);
const NEW = 'n'.repeat(64);
const THIRD = 't'.repeat(64);
let agent: ChildProcess | null = null;
afterAll(() => {
  if (agent && agent.exitCode === null) agent.kill('SIGKILL');
});

async function status(port: number, token: string): Promise<number> {
  const body = JSON.stringify({ domain: 'rot.test' });
  const ts = rfc3339();
  const res = await fetch(`http://127.0.0.1:${port}/ssl/status`, {
    method: 'POST',
    body,
    headers: { 'content-type': 'application/json', 'x-timestamp': ts, 'x-signature': sign(token, ts, 'POST', '/ssl/status', body) },
  });
  await res.arrayBuffer();
  return res.status;
}

describe('token rotation and SIGHUP', () => {
  it('a replaced token is refused within 2 s and the new one accepted; SIGHUP re-reads the config and the agent keeps running', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'autossl-rotation-'));
    fs.mkdirSync(path.join(dir, 'sites'));
    fs.writeFileSync(path.join(dir, 'sites', 'rot.conf'), 'server {\n    listen 80;\n    server_name rot.test;\n    root /var/www/rot;\n}\n');
    fs.writeFileSync(path.join(dir, 'nginx.conf'), `events {}\nhttp {\n    include ${path.join(dir, 'sites')}/*.conf;\n}\n`);
    const tokens = path.join(dir, 'tokens');
    fs.writeFileSync(tokens, `# the panel\n${OLD}\n`, { mode: 0o600 });
    const port = await freePort();
    const raw = (tokensFile: string): string =>
      JSON.stringify({
        nginx: { config: path.join(dir, 'nginx.conf') },
        stateDir: path.join(dir, 'state'),
        certbot: { configDir: path.join(dir, 'le'), workDir: path.join(dir, 'work'), logsDir: path.join(dir, 'logs') },
        agent: { listen: `127.0.0.1:${port}`, tokensFile, logLevel: 'info' },
      });
    const config = path.join(dir, 'autossl.config.json');
    fs.writeFileSync(config, raw(tokens));
    agent = spawn(process.execPath, [CLI, 'agent', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    agent.stdout!.on('data', (d: Buffer) => (log += d.toString()));
    agent.stderr!.on('data', (d: Buffer) => (log += d.toString()));
    await expect.poll(() => status(port, OLD).catch(() => 0), { timeout: 20_000, interval: 200 }).toBe(200);

    // the panel's secret is rotated: the line replaced in place (same length, same file)
    const t0 = Date.now();
    fs.writeFileSync(tokens, `# the panel\n${NEW}\n`);
    await expect.poll(() => status(port, OLD), { timeout: 2000, interval: 50 }).toBe(401);
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(await status(port, NEW)).toBe(200);
    expect(log).toMatch(/1 added, 1 removed/);

    // an editor's save (a new file renamed over it) is seen too
    const t1 = Date.now();
    fs.writeFileSync(`${tokens}.tmp`, `${OLD}\n`, { mode: 0o600 });
    fs.renameSync(`${tokens}.tmp`, tokens);
    await expect.poll(() => status(port, NEW), { timeout: 2000, interval: 50 }).toBe(401);
    expect(Date.now() - t1).toBeLessThan(2000);
    expect(await status(port, OLD)).toBe(200);

    // SIGHUP: the config names another tokens file; the agent re-reads it and keeps running
    const other = path.join(dir, 'tokens-2');
    fs.writeFileSync(other, `${THIRD}\n`, { mode: 0o600 });
    fs.writeFileSync(config, raw(other));
    agent.kill('SIGHUP');
    await expect.poll(() => status(port, THIRD).catch(() => 0), { timeout: 5000, interval: 100 }).toBe(200);
    expect(agent.exitCode).toBeNull();
    expect(await status(port, OLD)).toBe(401);
    expect(log).toContain('SIGHUP: config re-read');

    // a SIGHUP with a broken config keeps the one running (and the agent)
    fs.writeFileSync(config, '{ not json');
    agent.kill('SIGHUP');
    await expect.poll(() => log, { timeout: 5000 }).toMatch(/SIGHUP: the config cannot be used/);
    expect(agent.exitCode).toBeNull();
    expect(await status(port, THIRD)).toBe(200);

    agent.kill('SIGTERM');
    await new Promise((r) => agent!.once('exit', r));
    expect(agent.exitCode).toBe(0);
  }, 60_000);

  it('a tokens file made unusable (readable by others, emptied) leaves no token in force until it is fixed', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'autossl-rotation-'));
    const file = path.join(dir, 'tokens');
    fs.writeFileSync(file, `${OLD}\n`, { mode: 0o600 });
    const errors: string[] = [];
    const source = new TokenSource(file);
    source.watch({ info() {}, warn() {}, error: (m) => errors.push(m) }, 60_000);
    try {
      expect(source.current).toHaveLength(1);
      fs.chmodSync(file, 0o644);
      expect(source.reload()).toBe(0);
      expect(errors.at(-1)).toMatch(/readable by .*Every signed call is refused/);
      fs.chmodSync(file, 0o600);
      fs.writeFileSync(file, '# nothing\n');
      expect(source.reload()).toBe(0);
      fs.writeFileSync(file, `${NEW}\n`);
      expect(source.reload()).toBe(1);
    } finally {
      source.close();
    }
  });
});
