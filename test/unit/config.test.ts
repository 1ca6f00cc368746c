import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { validateConfig } from '../../src/config/schema.js';

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'autossl-cfg-'));

describe('config', () => {
  it.each([
    [{ certbot: { keyType: 'dsa' } }, 'certbot.keyType', '"ecdsa" or "rsa"'],
    [{ certbot: { email: 'not an email' } }, 'certbot.email', 'an email address'],
    [{ certbot: { extraArgs: ['; rm -rf /'] } }, 'certbot.extraArgs[0]', 'a certbot option'],
    [{ certbot: { server: 'http://insecure/dir' } }, 'certbot.server', 'an https:// ACME directory URL'],
    [{ nginx: { httpsPort: 70000 } }, 'nginx.httpsPort', 'an integer from 1 to 65535'],
    [{ nginx: { reloadCommand: [] } }, 'nginx.reloadCommand', 'a non-empty argument list'],
    [{ sites: [{ domain: 'a.com;' }] }, 'sites[0].domain', 'a domain name'],
    [{ sites: [{ domain: 'ok.example.com', aliases: ['$host'] }] }, 'sites[0].aliases[0]', 'a domain name'],
    [{ sites: [{ domain: 'ok.example.com', sudo: true }] }, 'sites[0].sudo', 'one of the known keys'],
    [{ serverAddresses: ['not-an-ip'] }, 'serverAddresses[0]', 'an IPv4 or IPv6 address'],
    [{ preflight: { resolvers: ['8.8.8.8;x'] } }, 'preflight.resolvers[0]', 'an IP address'],
    [{ renewal: { windowFraction: 2 } }, 'renewal.windowFraction', 'a number between 0 and 1'],
    [{ cerbot: {} }, 'cerbot', 'one of the known keys'],
    [{ store: 5 }, 'store', '"sqlite", "postgres", a store module\'s path or package name'],
    [{ store: '' }, 'store', '"sqlite", "postgres", a store module\'s path or package name'],
    [{ store: { postgres: 'postgresql://db/a', pool: 3 } }, 'store.pool', 'one of the known keys (postgres)'],
    [{ store: { module: './s.mjs', pool: 3 } }, 'store.pool', 'one of the known keys'],
    [{ store: { options: {} } }, 'store.module', "a store module's path or package name"],
  ])('refuses %j naming the key and what was expected', (raw, key, expected) => {
    expect(() => validateConfig(raw, '/etc/autossl/autossl.config.json')).toThrow(
      expect.objectContaining({ code: 'CONFIG_INVALID', message: expect.stringContaining(`"${key}" must be ${expected}`) }),
    );
  });

  // node:net decides what an address is: the old pattern took any four numbers of up to three digits, any prefix
  it.each([
    [{ serverAddresses: ['203.0.113.10', '999.1.1.1'] }, 'serverAddresses[1]', 'an IPv4 or IPv6 address', '999.1.1.1'],
    [{ serverAddresses: ['1.2.3.04'] }, 'serverAddresses[0]', 'an IPv4 or IPv6 address', '1.2.3.04'],
    [{ serverAddresses: ['2001:db8::1::2'] }, 'serverAddresses[0]', 'an IPv4 or IPv6 address', '2001:db8::1::2'],
    [{ preflight: { resolvers: ['999.1.1.1:53'] } }, 'preflight.resolvers[0]', 'an IP address, optionally with :port', '999.1.1.1:53'],
    [{ dns01: { resolvers: ['1.1.1.1', '1.1.1.1:70000'] } }, 'dns01.resolvers[1]', 'an IP address, optionally with :port', '1.1.1.1:70000'],
    [{ preflight: { cloudflareRanges: ['104.16.0.0/33'] } }, 'preflight.cloudflareRanges[0]', 'a CIDR range', '104.16.0.0/33'],
    [{ preflight: { cloudflareRanges: ['2400:cb00::/32', '2400:cb00::/129'] } }, 'preflight.cloudflareRanges[1]', 'a CIDR range', '2400:cb00::/129'],
    [{ preflight: { cloudflareRanges: ['999.1.1.0/24'] } }, 'preflight.cloudflareRanges[0]', 'a CIDR range', '999.1.1.0/24'],
    [{ agent: { listen: '999.0.0.1:7443' } }, 'agent.listen', 'host:port', '999.0.0.1:7443'],
    [{ serverAddresses: ['fe80::1%eth0'] }, 'serverAddresses[0]', 'an IPv4 or IPv6 address', 'fe80::1%eth0'],
    [{ serverAddresses: ['１.１.１.１'] }, 'serverAddresses[0]', 'an IPv4 or IPv6 address', '１.１.１.１'],
    [{ certbot: { env: { 'A=B': 'x' } } }, 'certbot.env.A=B', 'an environment variable name', 'A=B'],
  ])('refuses the address in %j with its key path', (raw, key, expected, value) => {
    expect(() => validateConfig(raw, 'c.json')).toThrow(
      expect.objectContaining({ code: 'CONFIG_INVALID', message: expect.stringContaining(`"${key}" must be ${expected}`), details: { key } }),
    );
    expect(() => validateConfig(raw, 'c.json')).toThrow(`got "${value}".`);
  });

  it('a key with a line break is named escaped, on one line', () => {
    const e = (() => {
      try {
        validateConfig({ certbot: { env: { 'A\nB': 'x' } } }, 'c.json');
      } catch (x) {
        return x as { message: string; details: { key: string } };
      }
      return null;
    })();
    expect(e?.message).toBe('c.json: "certbot.env.A\\nB" must be an environment variable name (letters, digits, "_"; not starting with a digit), got "A\\nB".');
    expect(e?.details.key).toBe('certbot.env.A\nB');
  });

  it('takes the addresses node:net takes', () => {
    const cfg = validateConfig({
      serverAddresses: ['203.0.113.10', '2001:db8::10'],
      preflight: { resolvers: ['1.1.1.1', '127.0.0.1:8053', '[::1]:53', '::1'], cloudflareRanges: ['104.16.0.0/13', '2400:cb00::/32'] },
      agent: { listen: '[::1]:7443' },
    });
    expect(cfg.preflight.resolvers).toHaveLength(4);
    expect(cfg.preflight.cloudflareRanges).toEqual(['104.16.0.0/13', '2400:cb00::/32']);
  });

  it('store: SQLite by default; a module path resolved against the config file, with its options', () => {
    expect(validateConfig({}, '/srv/x/autossl.config.json', '/srv/x').store).toBeUndefined();
    expect(validateConfig({ store: 'sqlite' }, '/srv/x/autossl.config.json', '/srv/x').store).toBeUndefined();
    expect(validateConfig({ store: './s.mjs' }, '/srv/x/autossl.config.json', '/srv/x').store).toEqual({ module: '/srv/x/s.mjs', options: {} });
    expect(
      validateConfig({ store: { module: 'autossl-store-pg', options: { url: 'postgres://db/autossl' } } }, '/srv/x/autossl.config.json', '/srv/x').store,
    ).toEqual({ module: 'autossl-store-pg', options: { url: 'postgres://db/autossl' } });
  });

  it('store: PostgreSQL by its connection string, or "postgres" reading it from AUTOSSL_STORE_POSTGRES when it opens', () => {
    expect(validateConfig({ store: { postgres: 'postgresql://autossl@db/autossl' } }, '/srv/x/autossl.config.json', '/srv/x').store).toEqual({
      postgres: 'postgresql://autossl@db/autossl',
    });
    expect(validateConfig({ store: 'postgres' }, '/srv/x/autossl.config.json', '/srv/x').store).toEqual({ postgres: '$AUTOSSL_STORE_POSTGRES' });
    expect(() => validateConfig({ store: { postgres: '' } }, '/srv/x/autossl.config.json', '/srv/x')).toThrow(
      expect.objectContaining({ code: 'CONFIG_INVALID' }),
    );
  });

  it('resolves paths against the config file and fills defaults', () => {
    const cfg = validateConfig(
      { certbot: { configDir: 'le' }, sites: [{ domain: 'EXAMPLE.com.', aliases: ['www.example.com'] }] },
      '/srv/x/autossl.config.json',
      '/srv/x',
    );
    expect(cfg.certbot.configDir).toBe('/srv/x/le');
    expect(cfg.certbot.keyType).toBe('ecdsa');
    expect(cfg.sites[0]).toMatchObject({ domain: 'example.com', aliases: ['www.example.com'] });
    expect(cfg.renewal.windowFraction).toBeCloseTo(1 / 3);
  });

  it('is found by cosmiconfig: autossl.config.json, .autosslrc.yaml, package.json#autossl', async () => {
    const a = tmp();
    fs.writeFileSync(path.join(a, 'autossl.config.json'), JSON.stringify({ stateDir: './state-a' }));
    expect((await loadConfig({ cwd: a })).stateDir).toBe(path.join(a, 'state-a'));
    const b = tmp();
    fs.writeFileSync(path.join(b, '.autosslrc.yaml'), 'stateDir: ./state-b\n');
    expect((await loadConfig({ cwd: b })).stateDir).toBe(path.join(b, 'state-b'));
    const c = tmp();
    fs.writeFileSync(path.join(c, 'package.json'), JSON.stringify({ name: 'x', autossl: { stateDir: './state-c' } }));
    expect((await loadConfig({ cwd: c })).stateDir).toBe(path.join(c, 'state-c'));
  });

  it('names the file of a syntax error, and a missing --config file', async () => {
    const d = tmp();
    fs.writeFileSync(path.join(d, 'autossl.config.json'), '{ "stateDir": ');
    await expect(loadConfig({ cwd: d })).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
      message: expect.stringContaining(path.join(d, 'autossl.config.json')),
    });
    await expect(loadConfig({ file: path.join(d, 'nope.json') })).rejects.toMatchObject({ code: 'CONFIG_NOT_FOUND' });
  });

  it("keeps the parser's own words about a syntax error, on one line, without the code frame", async () => {
    const d = tmp();
    const bad = '{ "certbot": { "keyType": "ecdsa", }';
    fs.writeFileSync(path.join(d, 'c.json'), bad);
    // the words of the Node that runs (Node 20: "... at position 35", Node 24 adds "(line 1 column 36)")
    const words = (() => {
      try {
        return String(JSON.parse(bad));
      } catch (error) {
        return (error as Error).message;
      }
    })();
    expect(words).toContain('position 35');
    await expect(loadConfig({ file: path.join(d, 'c.json') })).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
      message: `JSON Error in ${path.join(d, 'c.json')}: ${words}`,
    });
    fs.writeFileSync(path.join(d, 'c.yaml'), 'certbot:\n  keyType: [ecdsa\n');
    await expect(loadConfig({ file: path.join(d, 'c.yaml') })).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
      message: expect.stringMatching(/^YAML Error in .*c\.yaml: unexpected end of the stream within a flow collection \(3:1\)$/),
    });
  });

  it('config bombs are refused at once with a code: a YAML alias bomb under a typed key, a 200,000-deep JSON array', async () => {
    const d = tmp();
    const lines = ['certbot:', '  extraArgs:', '    - &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
    let prev = 'a';
    for (const n of 'bcdefghij') {
      lines.push(`    - &${n} [${Array(9).fill(`*${prev}`).join(',')}]`);
      prev = n;
    }
    fs.writeFileSync(path.join(d, 'bomb.yaml'), lines.join('\n') + '\n');
    const started = Date.now();
    await expect(loadConfig({ file: path.join(d, 'bomb.yaml') })).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
      message: expect.stringContaining('"certbot.extraArgs[0]" must be a non-empty string, got a list of 9'),
    });
    fs.writeFileSync(path.join(d, 'deep.json'), `{"sites":${'['.repeat(200_000)}${']'.repeat(200_000)}}`);
    await expect(loadConfig({ file: path.join(d, 'deep.json') })).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
    fs.writeFileSync(path.join(d, 'deep2.json'), `{"preflight":{"resolvers":${'['.repeat(200_000)}${']'.repeat(200_000)}}}`);
    await expect(loadConfig({ file: path.join(d, 'deep2.json') })).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it('refuses special files as config (a FIFO would block, /dev/zero never ends) and a config module that never settles', async () => {
    const d = tmp();
    await expect(loadConfig({ file: '/dev/zero' })).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
      message: '/dev/zero is not a regular file; give the path of the config file itself.',
    });
    execFileSync('mkfifo', [path.join(d, 'fifo.json')]);
    await expect(loadConfig({ file: path.join(d, 'fifo.json') })).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
    fs.writeFileSync(path.join(d, 'pending.config.mjs'), 'export default new Promise(() => {});\n');
    await expect(loadConfig({ file: path.join(d, 'pending.config.mjs'), timeoutMs: 500 })).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
      message: expect.stringContaining('did not finish loading within 0.5 s'),
    });
  });
  it('a file that is no autossl config at all (--config /etc/shadow) is refused without echoing its content', async () => {
    const d = tmp();
    const f = path.join(d, 'shadow');
    fs.writeFileSync(f, 'root:*:20228:0:99999:7:::\ndaemon:*:20228:0:99999:7:::\n');
    const e = await loadConfig({ file: f }).catch((x: unknown) => x as { code: string; message: string; hint: string });
    expect(e).toMatchObject({ code: 'CONFIG_INVALID', message: `${f} is not an autossl config: none of its 2 top-level keys is one autossl knows.` });
    expect(JSON.stringify(e)).not.toContain('20228');
  });
});
