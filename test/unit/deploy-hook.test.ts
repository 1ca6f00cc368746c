/**
 * A run that creates a lineage installs certbot's deploy hook only where none is installed: the hook that
 * `setup`/`install-hooks` wrote (with its --config) must be recognised as autossl's and never rewritten by an
 * `issue --config OTHER`, which would point every later `certbot renew` at that other config.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { hookCommand, writeHookScript } from '../../src/certbot/hooks.js';
import { ensureDeployHook, installedDeployHook } from '../../src/issuer/certbot-hooks.js';
import type { EngineCore } from '../../src/engine.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'autossl-deployhook-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function coreFor(configDir: string, filepath: string): EngineCore {
  return { config: { certbot: { configDir }, filepath, zeroConfig: false } } as unknown as EngineCore;
}

describe('the deploy hook a run installs', () => {
  it('an installed hook (shell-quoted, as install-hooks writes it) is recognised and left as it is', () => {
    const configDir = path.join(dir, 'a');
    const file = writeHookScript(path.join(configDir, 'renewal-hooks', 'deploy', 'autossl'), ['deploy-hook'], '/etc/autossl/autossl.config.yaml', 'test');
    const before = fs.readFileSync(file, 'utf8');
    expect(installedDeployHook(configDir)).toBe(file);
    expect(ensureDeployHook(coreFor(configDir, '/srv/other.json'), ['new.example.test'])).toBeNull();
    expect(fs.readFileSync(file, 'utf8')).toBe(before);
  });

  it('a lineage whose renewal config names the hook (certbot stores --deploy-hook as renew_hook) needs none', () => {
    const configDir = path.join(dir, 'b');
    fs.mkdirSync(path.join(configDir, 'renewal'), { recursive: true });
    fs.writeFileSync(path.join(configDir, 'renewal', 'x.test.conf'), `[renewalparams]\nrenew_hook = ${hookCommand(['deploy-hook'], '/etc/a.json')}\n`);
    expect(ensureDeployHook(coreFor(configDir, '/srv/other.json'), ['x.test'])).toBeNull();
    expect(fs.existsSync(path.join(configDir, 'renewal-hooks', 'deploy', 'autossl'))).toBe(false);
  });

  it("another program's hook that only mentions the word elsewhere is not taken for autossl's; one is installed", () => {
    const configDir = path.join(dir, 'c');
    const other = path.join(configDir, 'renewal-hooks', 'deploy', 'other');
    fs.mkdirSync(path.dirname(other), { recursive: true });
    fs.writeFileSync(other, '#!/bin/sh\n# my-deploy-hooks runner\nsystemctl reload nginx\n', { mode: 0o755 });
    expect(installedDeployHook(configDir)).toBeNull();
    const done = ensureDeployHook(coreFor(configDir, path.join(dir, 'cfg.json')), ['y.test']);
    expect(done?.warning).toBeFalsy();
    expect(installedDeployHook(configDir)).toBe(path.join(configDir, 'renewal-hooks', 'deploy', 'autossl'));
  });
});
