/**
 * The Cloudflare plugins' options: exactly one token source, a token file only root can read, an environment
 * variable read when first needed (commands that never reach Cloudflare do not need it), unknown options and bad
 * values refused when the config loads, and the token never in a message.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cloudflareOptions, manages } from '../../plugins/cloudflare/options.js';

const TOKEN = 'T'.repeat(40);

describe('Cloudflare plugin options', () => {
  it('takes exactly one of token, tokenFile, tokenEnv', () => {
    expect(() => cloudflareOptions('p', {})).toThrow(expect.objectContaining({ code: 'PLUGIN_LOAD_FAILED', message: expect.stringContaining('no API token') }));
    expect(() => cloudflareOptions('p', { token: TOKEN, tokenEnv: 'X' })).toThrow(
      expect.objectContaining({ code: 'PLUGIN_LOAD_FAILED', message: expect.stringContaining('not both') }),
    );
    expect(() => cloudflareOptions('p', { token: TOKEN, zone: 'x' })).toThrow(
      expect.objectContaining({ message: expect.stringContaining('unknown option "zone"') }),
    );
    expect(() => cloudflareOptions('p', { token: TOKEN, zones: ['a..b'] })).toThrow(expect.objectContaining({ code: 'PLUGIN_LOAD_FAILED' }));
    expect(() => cloudflareOptions('p', { token: TOKEN, apiBase: 'ftp://x' })).toThrow(expect.objectContaining({ code: 'PLUGIN_LOAD_FAILED' }));
    expect(cloudflareOptions('p', { token: TOKEN }).token()).toBe(TOKEN);
  });

  it('reads a token file only when first needed, and only when group and others cannot read it; never quotes the token', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'autossl-cf-'));
    const file = path.join(dir, 'token');
    fs.writeFileSync(file, `${TOKEN}\n`, { mode: 0o644 });
    const o = cloudflareOptions('p', { tokenFile: file }); // loading the config does not read it
    let error: Error | undefined;
    try {
      o.token();
    } catch (e) {
      error = e as Error;
    }
    expect(error).toMatchObject({ code: 'CLOUDFLARE_AUTH_FAILED', message: expect.stringContaining('mode 644') });
    expect(JSON.stringify({ m: error!.message, h: (error as { hint?: string }).hint })).not.toContain(TOKEN);
    fs.chmodSync(file, 0o600);
    expect(cloudflareOptions('p', { tokenFile: file }).token()).toBe(TOKEN);
  });

  it('an environment variable: read at first use, a clear error when it is not set', () => {
    const o = cloudflareOptions('p', { tokenEnv: 'AUTOSSL_TEST_CF_TOKEN_UNSET' });
    expect(() => o.token()).toThrow(
      expect.objectContaining({ code: 'CLOUDFLARE_AUTH_FAILED', message: expect.stringContaining('AUTOSSL_TEST_CF_TOKEN_UNSET is not set') }),
    );
    process.env.AUTOSSL_TEST_CF_TOKEN_SET = TOKEN;
    expect(cloudflareOptions('p', { tokenEnv: 'AUTOSSL_TEST_CF_TOKEN_SET' }).token()).toBe(TOKEN);
  });

  it('manages the listed zones and the names under them (a wildcard too), or every name when none are listed', () => {
    const o = cloudflareOptions('p', { token: TOKEN, zones: ['example.com'] });
    expect(['example.com', 'a.example.com', '*.example.com'].map((n) => manages(o, n))).toEqual([true, true, true]);
    expect(['example.org', 'badexample.com'].map((n) => manages(o, n))).toEqual([false, false]);
    expect(manages(cloudflareOptions('p', { token: TOKEN }), 'anything.test')).toBe(true);
  });
});
