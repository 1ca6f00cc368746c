/** The pipeline's own duties: hook order, per-plugin timing, and errors tagged with the plugin that threw. */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/schema.js';
import { createAutoSsl } from '../../src/engine.js';
import type { Plugin } from '../../src/pipeline/context.js';
import { BINARIES } from '../../scripts/sandbox/rig.js';
import { makeTree } from '../helpers/nginx-fixture.js';

async function engineWith(plugins: Plugin[]) {
  const t = await makeTree('server {\n    listen 80;\n    server_name pipe.example.test;\n    root /var/www;\n}\n');
  const config = validateConfig({
    nginx: { binary: BINARIES.nginx, config: t.main, extraArgs: ['-p', t.dir, '-e', path.join(t.dir, 'error.log')] },
    certbot: { configDir: path.join(t.dir, 'le') },
    stateDir: path.join(t.dir, 'state'),
  });
  return createAutoSsl(config, plugins);
}

describe('pipeline', () => {
  it("runs the hooks in order and times each plugin on the domain's own context", async () => {
    const engine = await engineWith([]);
    const [r] = await engine.issue(['pipe.example.test'], { dryRun: true, skipChecks: ['dns', 'caa', 'port80'] });
    expect(r!.ok).toBe(true);
    expect(r!.events.filter((e) => !e.plugin && e.status === 'done').map((e) => e.stage)).toEqual([
      'plan',
      'preflight',
      'findings',
      'challenge',
      'beforeIssue',
      'issue',
      'vhost',
      'validate',
      'reload',
      'verify',
      'finally',
    ]);
    expect(r!.events.filter((e) => e.plugin && e.status === 'done').map((e) => e.plugin)).toEqual(
      expect.arrayContaining(['challenge-webroot', 'issue-certbot', 'vhost-https', 'nginx-reload', 'verify-tls', 'state-record']),
    );
  });

  it('tags an error thrown by a plugin with its name (PLUGIN_ERROR), sync or async', async () => {
    const syncThrower: Plugin = {
      name: 'sync-thrower',
      apply: (hooks) =>
        hooks.plan.tap('sync-thrower', () => {
          throw new Error('boom');
        }),
    };
    const [a] = await (await engineWith([syncThrower])).issue(['pipe.example.test'], { dryRun: true });
    expect(a!.error).toMatchObject({ code: 'PLUGIN_ERROR', details: { plugin: 'sync-thrower', hook: 'plan' } });
    expect(a!.error!.message).toBe('Plugin "sync-thrower" failed in hook "plan": boom');
    const asyncThrower: Plugin = {
      name: 'async-thrower',
      apply: (hooks) =>
        hooks.vhost.tapPromise('async-thrower', async () => {
          throw new Error('late');
        }),
    };
    const [b] = await (await engineWith([asyncThrower])).issue(['pipe.example.test'], { dryRun: true, skipChecks: ['dns', 'caa', 'port80'] });
    expect(b!.error).toMatchObject({ code: 'PLUGIN_ERROR', details: { plugin: 'async-thrower', hook: 'vhost' } });
  });

  it('domains run concurrently, each with its own context', async () => {
    const seen: string[] = [];
    // each domain's plan waits until both domains are in plan: a sequential runner never gets the second one in,
    // so the first gives up after a bound and records that it was alone
    let bothIn!: () => void;
    const together = new Promise<void>((resolve) => (bothIn = resolve));
    const overlapped: boolean[] = [];
    const spy: Plugin = {
      name: 'spy',
      apply: (hooks) =>
        hooks.plan.tapPromise('spy', async (plan, ctx) => {
          seen.push(`${ctx.domain}:${plan.names.join(',')}`);
          if (seen.length === 2) bothIn();
          // a bound, not a sleep: the wait ends as soon as both domains are in (a sequential runner never gets there)
          let bound: NodeJS.Timeout | undefined;
          await Promise.race([together, new Promise((r) => (bound = setTimeout(r, 5_000)))]);
          clearTimeout(bound);
          overlapped.push(seen.length === 2);
          return plan;
        }),
    };
    const engine = await engineWith([spy]);
    const results = await engine.issue(['pipe.example.test', 'nope.example.test'], { dryRun: true, skipChecks: ['dns', 'caa', 'port80'] });
    expect(overlapped).toEqual([true, true]);
    expect(seen.sort()).toEqual(['nope.example.test:nope.example.test', 'pipe.example.test:pipe.example.test']);
    expect(results.map((r) => [r.domain, r.ok, r.error?.code])).toEqual([
      ['pipe.example.test', true, undefined],
      ['nope.example.test', false, 'VHOST_NOT_FOUND'],
    ]);
  });
});

describe('a slow domain', () => {
  it('tells the user which stage is stuck once it runs past defaults.domainTimeoutMs', async () => {
    const t = await makeTree('server {\n    listen 80;\n    server_name slow.example.test;\n    root /var/www;\n}\n');
    const config = validateConfig({
      nginx: { binary: BINARIES.nginx, config: t.main },
      certbot: { configDir: path.join(t.dir, 'le') },
      stateDir: path.join(t.dir, 'state'),
      defaults: { domainTimeoutMs: 1000 },
    });
    // slow on purpose: the domain has to run past defaults.domainTimeoutMs
    const sleepy: Plugin = { name: 'sleepy', apply: (hooks) => hooks.beforeIssue.tapPromise('sleepy', () => new Promise((r) => setTimeout(r, 1500))) };
    const [r] = await (await createAutoSsl(config, [sleepy])).issue(['slow.example.test'], { dryRun: true, skipChecks: ['dns', 'caa', 'port80'] });
    expect(r!.ok).toBe(true);
    expect(r!.events.find((e) => e.status === 'info' && e.message?.startsWith('still in'))?.message).toBe(
      'still in "beforeIssue" after 1 s: this normally takes a few seconds',
    );
  });
});

describe('a plugin that never answers', () => {
  it('ends the domain with TIMEOUT naming the stage and the plugin, and the domain is still accounted for', async () => {
    const t = await makeTree('server {\n    listen 80;\n    server_name hang.example.test;\n    root /var/www;\n}\n');
    const config = validateConfig({
      nginx: { binary: BINARIES.nginx, config: t.main },
      certbot: { configDir: path.join(t.dir, 'le') },
      stateDir: path.join(t.dir, 'state'),
      defaults: { deadlineMs: 1000 },
    });
    const never: Plugin = { name: 'never', apply: (hooks) => hooks.beforeIssue.tapPromise('never', () => new Promise(() => {})) };
    const started = Date.now();
    const results = await (
      await createAutoSsl(config, [never])
    ).issue(['hang.example.test', 'hang.example.test'], { dryRun: true, skipChecks: ['dns', 'caa', 'port80'] });
    expect(Date.now() - started).toBeLessThan(5000);
    expect(results).toHaveLength(2);
    expect(results[0]!.error).toMatchObject({ code: 'TIMEOUT', details: { stage: 'beforeIssue', plugin: 'never' } });
    expect(results[0]!.error!.message).toContain('plugin "never"');
  });

  it("a tapAsync callback error is PLUGIN_ERROR with the plugin's name", async () => {
    const cb: Plugin = { name: 'callback-style', apply: (hooks) => hooks.plan.tapAsync('callback-style', (_plan, _ctx, done) => done(new Error('nope'))) };
    const [r] = await (await engineWith([cb])).issue(['pipe.example.test'], { dryRun: true });
    expect(r!.error).toMatchObject({ code: 'PLUGIN_ERROR', details: { plugin: 'callback-style', hook: 'plan' } });
  });
});
