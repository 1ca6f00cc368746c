/**
 * The agent without an ACME CA (a private nginx tree only): `autossl agent call` signs and prints the answer; the
 * README's shell recipe (openssl dgst -sha256 -hmac, then curl) is run as written and the agent accepts it; a
 * token file others can read stops the agent from starting, with the fix named.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/schema.js';
import { startAgent, type RunningAgent } from '../../src/agent/server.js';
import { makeTree } from '../helpers/nginx-fixture.js';

const CLI = path.resolve(import.meta.dirname, '../../dist/src/cli.js');
const TOKEN = 'b'.repeat(64);
let dir: string;
let configFile: string;
let tokens: string;
let agent: RunningAgent;

beforeAll(async () => {
  const tree = await makeTree('server {\n    listen 80;\n    server_name recipe.test;\n    root /var/www/recipe;\n}\n');
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'autossl-agent-cli-'));
  tokens = path.join(dir, 'tokens');
  fs.writeFileSync(tokens, `${TOKEN}\n`, { mode: 0o600 });
  const raw = {
    nginx: { config: tree.main },
    stateDir: path.join(dir, 'state'),
    certbot: { configDir: path.join(dir, 'le') },
    agent: { listen: '127.0.0.1:7443', tokensFile: tokens, logLevel: 'silent' },
  };
  configFile = path.join(dir, 'autossl.config.json');
  fs.writeFileSync(configFile, JSON.stringify(raw));
  agent = await startAgent(validateConfig(raw, configFile, dir), { port: 0 });
});

afterAll(async () => {
  await agent?.close();
});

describe('agent call and the README recipe', () => {
  it('autossl agent call POST /ssl/status signs with the configured token and prints the JSON answer', async () => {
    const run = await execa('node', [CLI, 'agent', 'call', 'POST', '/ssl/status', '{"domain":"recipe.test"}', '--url', agent.url, '--config', configFile], {
      reject: false,
    });
    expect(run.exitCode, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ domain: 'recipe.test', exists: false, state: 'missing' });
    // another token: refused, exit 1, the refusal printed
    const other = path.join(dir, 'other-tokens');
    fs.writeFileSync(other, `${'c'.repeat(64)}\n`, { mode: 0o600 });
    const bad = await execa(
      'node',
      [CLI, 'agent', 'call', 'POST', '/ssl/status', '{"domain":"recipe.test"}', '--url', agent.url, '--token-file', other, '--config', configFile],
      { reject: false },
    );
    expect(bad.exitCode).toBe(1);
    expect(JSON.parse(bad.stdout)).toMatchObject({ code: 'AGENT_AUTH_FAILED' });
    expect(bad.stderr).toContain('HTTP 401');
  });

  it("the README's shell recipe (openssl dgst -sha256 -hmac + curl) is accepted as written", async () => {
    const readme = fs.readFileSync(path.resolve(import.meta.dirname, '../../docs/agent.md'), 'utf8');
    const recipe = /<!-- signing-recipe-shell -->\s*```sh\n([\s\S]+?)```/.exec(readme)?.[1];
    expect(recipe, 'docs/agent.md has the shell recipe').toBeTruthy();
    const run = await execa('bash', ['-euo', 'pipefail', '-c', recipe!], {
      env: { ...process.env, AGENT: agent.url, TOKEN_FILE: tokens, DOMAIN: 'recipe.test' },
      reject: false,
    });
    expect(run.exitCode, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ domain: 'recipe.test', exists: false });
  });

  it('refuses to start with a token file group or others can read', async () => {
    fs.chmodSync(tokens, 0o644);
    try {
      const run = await execa('node', [CLI, 'agent', '--config', configFile], { reject: false, timeout: 20_000 });
      expect(run.exitCode).toBe(2);
      expect(run.stderr).toMatch(/CONFIG_INVALID: .*readable by its group and others \(mode 644\)/);
      expect(run.stderr).toContain(`chmod 600 ${tokens}`);
    } finally {
      fs.chmodSync(tokens, 0o600);
    }
  });
});
