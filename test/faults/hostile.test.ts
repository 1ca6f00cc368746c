/**
 * Hostile inputs at every entry: the CLI (issue, check, vhost show, renew, recover), the config (sites[].domain,
 * aliases, certName, documentRoot, vhost, paths that end up in nginx's files, plugins and plugin options), certbot's
 * deploy-hook variables (RENEWED_LINEAGE / RENEWED_DOMAINS), its DNS-hook variables (CERTBOT_DOMAIN /
 * CERTBOT_VALIDATION) and the renew hook. Each is refused with a code (exit 2) before any file write or
 * subprocess: no vhost byte changed, certbot, nginx, the reload command and the DNS provider never called, and the
 * state database not created by a command that refuses its input.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { createAutoSsl } from '../../src/engine.js';
import { sha256 } from '../../src/nginx/transaction.js';
import { BINARIES } from '../../scripts/sandbox/rig.js';
import { writeLineage } from '../helpers/certs.js';
import { HOSTILE_DOMAINS } from '../helpers/hostile.js';
import { makeTree, type NginxSandboxTree } from '../helpers/nginx-fixture.js';
import { CLI, cli, expectCoded, type CliRun } from './helpers.js';

/** The project's hostile domain list, less the NUL byte: argv and environment cannot carry it (the engine API gets it). */
const HOSTILE = HOSTILE_DOMAINS.filter((d) => !d.includes('\u0000'));
/** Certificate names: path tricks, options, shell. */
const HOSTILE_CERT_NAMES = ['../x', 'a/b', '-rf', 'a..b', '$(id)', 'a b', 'a\nb', '.hidden', 'x'.repeat(300), 'a;b', '`id`', '/etc/passwd'];

const OK = 'ok.hostile.test';
const DNS_SITE = 'dns.hostile.test';
let t: NginxSandboxTree;
let dir: string;
let le: string;
let stateDir: string;
let base: Record<string, unknown>;
let siteSha: string;

/** Every program autossl could start records its calls: none may appear. */
const calls = (): string[] => ['certbot', 'nginx', 'reload', 'dns'].filter((n) => fs.existsSync(path.join(dir, `${n}.calls`)));

beforeAll(async () => {
  t = await makeTree(`server {\n    listen 127.0.0.1:80;\n    server_name ${OK} ${DNS_SITE};\n    root {{DIR}}/www;\n}\n`);
  dir = t.dir;
  siteSha = sha256(fs.readFileSync(t.site));
  le = path.join(dir, 'le');
  await writeLineage(le, OK, 90, 80);
  stateDir = path.join(dir, 'state');
  const bin = path.join(dir, 'bin');
  fs.mkdirSync(bin);
  const recorder = (name: string, then: string): string => {
    const file = path.join(bin, name);
    fs.writeFileSync(file, `#!/bin/sh\necho "$@" >> ${path.join(dir, `${name}.calls`)}\n${then}\n`, { mode: 0o755 });
    return file;
  };
  fs.writeFileSync(
    path.join(dir, 'dns-plugin.mjs'),
    `import fs from 'node:fs';
// a DNS-01 provider that only records that it was asked
export default {
  name: 'recording-dns',
  apply(hooks) {
    const record = (what) => fs.appendFileSync(${JSON.stringify(path.join(dir, 'dns.calls'))}, what + '\\n');
    hooks.challenge.tapPromise({ name: 'recording-dns', stage: -100 }, async (ctx) => ctx.plan.challenge === 'dns-01'
      ? { type: 'dns-01', solver: { name: 'recording-dns', present: async (r) => record('present ' + r.fqdn), cleanup: async (r) => record('cleanup ' + r.fqdn) } }
      : undefined);
  },
};
`,
  );
  base = {
    certbot: { binary: recorder('certbot', 'exit 1'), configDir: le, workDir: path.join(dir, 'le-work'), logsDir: path.join(dir, 'le-logs') },
    nginx: {
      binary: recorder('nginx', `exec ${BINARIES.nginx} "$@"`),
      config: t.main,
      extraArgs: ['-p', dir, '-e', path.join(dir, 'error.log')],
      reloadCommand: [recorder('reload', 'exit 0')],
    },
    serverAddresses: ['127.0.0.1'],
    stateDir,
    preflight: { resolvers: ['127.0.0.1:9'], timeoutMs: 200 },
    dns01: { propagationTimeoutMs: 0 },
    plugins: ['./dns-plugin.mjs'],
    sites: [{ domain: OK }, { domain: DNS_SITE, challenge: 'dns-01' }],
  };
});

// each case starts with nothing recorded and no state (a failing case must not blame the next one)
afterEach(() => {
  for (const n of ['certbot', 'nginx', 'reload', 'dns']) fs.rmSync(path.join(dir, `${n}.calls`), { force: true });
  fs.rmSync(stateDir, { recursive: true, force: true });
});

function writeConfig(name: string, config: unknown): string {
  const file = path.join(dir, `${name}.config.json`);
  fs.writeFileSync(file, JSON.stringify(config));
  return file;
}

/** Nothing happened: the vhost's bytes, no program started, no state database (unless the command may create it). */
function expectUntouched(label: string, options: { stateMayExist?: boolean } = {}): void {
  expect(sha256(fs.readFileSync(t.site)), `${label}: the vhost changed`).toBe(siteSha);
  expect(calls(), `${label}: a program was started`).toEqual([]);
  if (!options.stateMayExist) expect(fs.existsSync(path.join(stateDir, 'state.db')), `${label}: the state database was created`).toBe(false);
}

/**
 * Runs many independent CLI calls a few at a time (each one is a node process; they share nothing), all to the end
 * even when one fails (a call still running must not write into the next case), then throws the first failure.
 */
async function each<T>(items: readonly T[], fn: (item: T) => Promise<void>, limit = 4): Promise<void> {
  let next = 0;
  const failures: unknown[] = [];
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) await fn(items[next++]!).catch((error: unknown) => failures.push(error));
    }),
  );
  if (failures.length) throw failures[0];
}

/** A hostile value never reaches the output raw: one line per message, the value JSON-quoted. */
function expectNoForgedLines(run: CliRun, label: string): void {
  for (const line of `${run.stdout}\n${run.stderr}`.split('\n')) expect(line, label).not.toMatch(/^\}|^`id`/);
}

describe('hostile input at the CLI', () => {
  // every value through issue; a sample through the commands that share its gate (cli.ts domainsOf / normalizeDomain)
  const SAMPLE = ['a.com\n}', '../x', '$host', '`id`.a.com', '*.a.com', ''];
  const commands: Array<[string, (d: string) => string[], string[]]> = [
    ['issue', (d) => ['issue', '--json', '--', OK, d], HOSTILE], // the valid name first: one hostile name stops the whole command
    ['check', (d) => ['check', '--json', '--', OK, d], SAMPLE],
    ['issue --dry-run', (d) => ['issue', '--dry-run', '--json', '--', d], SAMPLE],
    ['vhost show', (d) => ['vhost', 'show', '--json', '--', d], SAMPLE],
  ];

  it.each(commands)('%s refuses hostile domains before anything runs', async (label, args, values) => {
    const config = writeConfig('base', base);
    await each(values, async (domain) => {
      const run = await cli(args(domain), config);
      // a wildcard is a name, refused for an HTTP-01 site; `vhost show ""` is a usage error
      const error = expectCoded(run, ['DOMAIN_INVALID', 'WILDCARD_NEEDS_DNS01'], `${label} ${JSON.stringify(domain)}`);
      expect(run.exitCode, `${label} ${JSON.stringify(domain)}`).toBe(2);
      if (domain === '*.a.com') expect(error.code).toBe('WILDCARD_NEEDS_DNS01');
      expectNoForgedLines(run, domain);
    });
    expectUntouched(label);
  });

  it('renew --cert-name refuses a hostile name before recovery or the state database', async () => {
    const config = writeConfig('base', base);
    await each(['../x', 'a/b', '$(id)', 'a\nb', 'x'.repeat(300), '/etc/passwd'], async (name) => {
      const run = await cli(['renew', '--json', '--cert-name', name], config);
      expectCoded(run, ['USAGE_INVALID'], `renew --cert-name ${JSON.stringify(name)}`);
      expect(run.exitCode).toBe(2);
    });
    // an option-looking value is not taken as a name at all
    const dash = await cli(['renew', '--cert-name', '-rf'], config);
    expect(dash.exitCode).toBe(2);
    expectUntouched('renew --cert-name');
  });

  it('--config refuses a device, a FIFO, a directory', async () => {
    const fifo = path.join(dir, 'config.fifo');
    if (!fs.existsSync(fifo)) await execa('mkfifo', [fifo]);
    await each(['/dev/zero', fifo, dir, '/dev/null'], async (config) => {
      const run = await cli(['status', '--json'], config, { timeoutMs: 20_000 });
      expectCoded(run, ['CONFIG_INVALID', 'CONFIG_NOT_FOUND'], `--config ${config}`);
      expect(run.exitCode).toBe(2);
    });
    expectUntouched('--config');
  });

  it('recover --discard, --skip-check and renew --pass-only --force refuse what is not theirs', async () => {
    const config = writeConfig('base', base);
    const runs = [
      ...['/etc', path.join(stateDir, 'journal', '..', '..'), '../../etc', path.join(stateDir, 'journal', 'nope'), `${stateDir}/journal/x\n`].map((j) => [
        'recover',
        '--json',
        '--discard',
        j,
      ]),
      ...['dns;', 'all', '$(id)', ''].map((c) => ['issue', OK, '--json', '--skip-check', c]),
      // autossl's own pass and certbot's forced run of all are two different things
      ['renew', '--pass-only', '--force', '--json'],
    ];
    await each(runs, async (args) => {
      const run = await cli(args, config);
      expectCoded(run, ['USAGE_INVALID'], args.join(' '));
      expect(run.exitCode).toBe(2);
    });
    expect(fs.existsSync('/etc/passwd')).toBe(true);
    expectUntouched('recover --discard');
  });
});

describe('hostile values in the config', () => {
  const site = (extra: Record<string, unknown>) => ({ ...base, sites: [{ domain: OK, ...extra }] });
  const cases: Array<[string, unknown[], (v: unknown) => unknown]> = [
    ['sites[].domain', HOSTILE, (v) => ({ ...base, sites: [{ domain: v }] })],
    ['sites[].aliases', HOSTILE.filter((h) => h !== '*.a.com'), (v) => site({ aliases: [v] })],
    ['sites[].certName', [...HOSTILE_CERT_NAMES, ''], (v) => site({ certName: v })],
    // paths that end up in nginx's files: nginx expands "$" even inside quotes
    ['sites[].documentRoot', ['/srv/$host', '/srv/${x}', '/srv/a\nroot /etc', '/srv/a\u0000', ''], (v) => site({ documentRoot: v })],
    ['challengeDir', ['/var/lib/$remote_addr', '/x\ny'], (v) => ({ ...base, challengeDir: v })],
    ['certbot.configDir', ['/etc/le$x', '/etc/le\n'], (v) => ({ ...base, certbot: { ...(base.certbot as object), configDir: v } })],
    ['sites[].vhost', ['/etc/x\nserver {', ''], (v) => site({ vhost: v })],
    ['sites[].challenge', ['http-02', 'dns-01; rm -rf /'], (v) => site({ challenge: v })],
  ];

  it.each(cases)('%s: every hostile value is CONFIG_INVALID at load, naming the key', async (key, values, build) => {
    for (const value of values) {
      const file = writeConfig('hostile', build(value));
      await expect(loadConfig({ file }), `${key} = ${JSON.stringify(value)}`).rejects.toMatchObject({
        code: 'CONFIG_INVALID',
        message: expect.stringContaining(key.replace('[]', '[0]')),
      });
    }
  });

  // the config is loaded (and refused) the same way by every command: all of them for the first key, two for the others
  const ALL_COMMANDS = [
    ['issue', '--all', '--json'],
    ['check', '--all', '--json'],
    ['status', '--json'],
    ['vhost', 'show', OK, '--json'],
    ['renew', '--json'],
    ['recover', '--json'],
  ];
  it.each(cases)('%s: the commands refuse the config with exit 2 and touch nothing', async (key, values, build) => {
    const file = writeConfig(`hostile-${key.replace(/\W/g, '')}`, build(values[0]));
    const commands = key === cases[0]![0] ? ALL_COMMANDS : [ALL_COMMANDS[0]!, ALL_COMMANDS[2]!];
    await each(commands, async (args) => {
      const run = await cli(args, file);
      expectCoded(run, ['CONFIG_INVALID'], `${args[0]} with ${key}`);
      expect(run.exitCode).toBe(2);
    });
    expectUntouched(key);
  });

  it("a vhost that is not a file of nginx's config is never read or written (a device, a FIFO, a directory, /etc/passwd)", async () => {
    const fifo = path.join(dir, 'vhost.fifo');
    if (!fs.existsSync(fifo)) await execa('mkfifo', [fifo]);
    const passwd = sha256(fs.readFileSync('/etc/passwd'));
    for (const vhost of ['/dev/zero', fifo, dir, '/etc/passwd']) {
      const file = writeConfig('hostile-vhost', site({ vhost }));
      const run = await cli(['issue', OK, '--json', '--skip-check', 'dns', '--skip-check', 'caa'], file, { timeoutMs: 20_000 });
      expectCoded(run, ['VHOST_NOT_FOUND', 'CONFIG_INVALID'], `vhost ${vhost}`);
      expect(sha256(fs.readFileSync(t.site))).toBe(siteSha);
    }
    expect(sha256(fs.readFileSync('/etc/passwd'))).toBe(passwd);
    expect(calls().filter((c) => c !== 'nginx')).toEqual([]); // (nginx -v ran: the pre-flight asks it is there)
  });

  it('plugins: a device, a FIFO, a data: URL, a builtin, a file that is not a module are PLUGIN_LOAD_FAILED, quickly', async () => {
    const fifo = path.join(dir, 'plugin.fifo');
    if (!fs.existsSync(fifo)) await execa('mkfifo', [fifo]);
    const specs = [
      '/dev/zero',
      fifo,
      'data:text/javascript,export default {name:"x",apply(){}}',
      'node:child_process',
      '/etc/passwd',
      dir,
      '../../../../../etc/shadow',
      'autossl:../../x',
      'https://example.com/p.mjs',
    ];
    await each(specs, async (spec) => {
      const file = writeConfig(`hostile-plugin-${specs.indexOf(spec)}`, { ...base, plugins: [spec] });
      const started = Date.now();
      const run = await cli(['status', '--json'], file, { timeoutMs: 20_000 });
      expectCoded(run, ['PLUGIN_LOAD_FAILED', 'CONFIG_INVALID'], `plugin ${spec}`);
      expect(run.exitCode).toBe(2);
      expect(Date.now() - started, `plugin ${spec} took long`).toBeLessThan(10_000);
    });
    expectUntouched('plugins');
  });

  it('plugin options: the webhook refuses hostile options before it is applied', async () => {
    const bad = [
      { url: 'file:///etc/passwd', secret: 's'.repeat(32) },
      { url: 'javascript:alert(1)', secret: 's'.repeat(32) },
      { url: 'http://a b/', secret: 's'.repeat(32) },
      { url: 'http://x/\nX-Injected: 1', secret: 's'.repeat(32) },
      { url: 'https://x/', secret: 'short' },
      { url: 'https://x/', secret: { toString: 'x' } },
      { url: 'https://x/', secret: 's'.repeat(32), retries: 1e9 },
      { url: 'https://x/', secret: 's'.repeat(32), events: ['renewed', '__proto__'] },
    ];
    for (const options of bad) {
      const file = writeConfig('hostile-webhook', { ...base, plugins: [['autossl:webhook', options]] });
      await expect(
        loadConfig({ file }).then((c) => createAutoSsl(c)),
        JSON.stringify(options),
      ).rejects.toMatchObject({ code: 'PLUGIN_LOAD_FAILED' });
    }
    // and through the CLI: exit 2 before the command runs
    const run = await cli(['renew', '--json'], writeConfig('hostile-webhook', { ...base, plugins: [['autossl:webhook', bad[0]]] }));
    expectCoded(run, ['PLUGIN_LOAD_FAILED'], 'webhook through the CLI');
    expect(run.exitCode).toBe(2);
    expectUntouched('plugin options');
  });
});

describe('hostile values from certbot', () => {
  const hook = (args: string[], env: Record<string, string>, config: string) =>
    execa('node', [CLI, ...args, '--json', '--config', config], {
      reject: false,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
      extendEnv: false,
    });

  it('the deploy hook refuses every hostile RENEWED_DOMAINS and RENEWED_LINEAGE', async () => {
    const config = writeConfig('base', base);
    const lineage = path.join(le, 'live', OK);
    const envs: Array<Record<string, string>> = [
      ...HOSTILE.filter((h) => h !== '' && h !== '*.a.com').map((d) => ({ RENEWED_LINEAGE: lineage, RENEWED_DOMAINS: `${OK} ${d}` })),
      { RENEWED_LINEAGE: lineage, RENEWED_DOMAINS: ' ' },
      { RENEWED_LINEAGE: `${lineage}/..`, RENEWED_DOMAINS: OK },
      { RENEWED_LINEAGE: `${lineage}/../../../etc`, RENEWED_DOMAINS: OK },
      { RENEWED_LINEAGE: '/', RENEWED_DOMAINS: OK },
      { RENEWED_LINEAGE: `${le}/live/-rf`, RENEWED_DOMAINS: OK },
      { RENEWED_LINEAGE: `${le}/live/$(id)`, RENEWED_DOMAINS: OK },
      { RENEWED_LINEAGE: `${lineage}\nX`, RENEWED_DOMAINS: OK },
      { RENEWED_LINEAGE: `${le}/live/${'x'.repeat(5000)}`, RENEWED_DOMAINS: OK },
      { RENEWED_DOMAINS: OK },
    ];
    // every value through the engine (what `autossl deploy-hook` calls with its environment) ...
    const engine = await createAutoSsl(await loadConfig({ file: config }));
    for (const env of envs) await expect(engine.deploy(env), JSON.stringify(env).slice(0, 200)).rejects.toMatchObject({ code: 'HOOK_INPUT_INVALID' });
    await engine.close();
    // ... and a sample through the command certbot runs: exit 2
    await each([envs[0]!, envs[1]!, envs.at(-3)!, envs.at(-1)!], async (env) => {
      const r = await hook(['deploy-hook'], env, config);
      const run = { exitCode: r.exitCode, signal: r.signal ?? undefined, stdout: String(r.stdout), stderr: String(r.stderr) };
      expectCoded(run, ['HOOK_INPUT_INVALID'], `deploy-hook ${JSON.stringify(env).slice(0, 200)}`);
      expect(run.exitCode).toBe(2);
    });
    expectUntouched('deploy hook');
  });

  it('the DNS hook refuses every hostile CERTBOT_DOMAIN and CERTBOT_VALIDATION, auth and cleanup', async () => {
    const config = writeConfig('base', base);
    const valid = 'a'.repeat(43);
    const envs: Array<Record<string, string>> = [
      ...HOSTILE.filter((h) => h !== '').map((d) => ({ CERTBOT_DOMAIN: d, CERTBOT_VALIDATION: valid })),
      ...['a;b', 'a b', '$(id)', '`id`', 'x'.repeat(300), 'a\nb', '../x', '"', ''].map((v) => ({ CERTBOT_DOMAIN: DNS_SITE, CERTBOT_VALIDATION: v })),
      { CERTBOT_VALIDATION: valid },
    ];
    const engine = await createAutoSsl(await loadConfig({ file: config }));
    for (const env of envs) {
      for (const phase of ['auth', 'cleanup'] as const)
        await expect(engine.dnsHook(phase, env), `${phase} ${JSON.stringify(env).slice(0, 200)}`).rejects.toMatchObject({ code: 'HOOK_INPUT_INVALID' });
    }
    await engine.close();
    const sample: Array<readonly ['auth' | 'cleanup', Record<string, string>]> = [
      ['auth', envs[1]!],
      ['auth', envs[7]!],
      ['auth', envs.at(-4)!],
      ['cleanup', envs.at(-3)!],
      ['auth', envs.at(-1)!],
    ];
    await each(sample, async ([phase, env]) => {
      const r = await hook(['dns-hook', phase], env, config);
      const run = { exitCode: r.exitCode, signal: r.signal ?? undefined, stdout: String(r.stdout), stderr: String(r.stderr) };
      expectCoded(run, ['HOOK_INPUT_INVALID'], `dns-hook ${phase} ${JSON.stringify(env).slice(0, 200)}`);
      expect(run.exitCode).toBe(2);
    });
    expectUntouched('dns hook');
  });

  it('the renew hook refuses a hostile phase, and never uses a hostile --cert-name of the certbot that runs it', async () => {
    const config = writeConfig('base', base);
    for (const phase of ['$(id)', '../pre', 'PRE', 'pre;post', '']) {
      const r = await hook(['renew-hook', phase], {}, config);
      const run = { exitCode: r.exitCode, signal: r.signal ?? undefined, stdout: String(r.stdout), stderr: String(r.stderr) };
      expectCoded(run, ['HOOK_INPUT_INVALID'], `renew-hook ${JSON.stringify(phase)}`);
      expect(run.exitCode).toBe(2);
    }
    expectUntouched('renew-hook phase');
    // certbot (here a stand-in named certbot) runs the pre hook; its command line carries a hostile --cert-name
    const fakeBin = path.join(dir, 'fake-certbot');
    fs.mkdirSync(fakeBin, { recursive: true });
    const events = path.join(dir, 'renew-events.jsonl');
    fs.writeFileSync(
      path.join(dir, 'renew-plugin.mjs'),
      `import fs from 'node:fs';
export default { name: 'renew-log', apply(hooks) { hooks.beforeRenew.tapPromise('renew-log', async (e) => fs.appendFileSync(${JSON.stringify(events)}, JSON.stringify({ certName: e.certName ?? null, lineages: e.lineages.map((l) => l.name) }) + '\\n')); } };
`,
    );
    const withLog = writeConfig('renew-log', { ...base, plugins: ['./renew-plugin.mjs'] });
    fs.writeFileSync(path.join(fakeBin, 'certbot'), `#!/bin/sh\nnode ${CLI} renew-hook pre --config ${withLog}\n`, { mode: 0o755 });
    const evil = path.join(dir, 'evil');
    const run = await execa(path.join(fakeBin, 'certbot'), ['renew', '--cert-name', `../../../..${evil}`], { reject: false });
    expect(run.exitCode, String(run.stdout) + String(run.stderr)).toBe(0);
    const logged = fs
      .readFileSync(events, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { certName: string | null; lineages: string[] });
    expect(logged).toEqual([{ certName: null, lineages: [OK] }]);
    expect(fs.existsSync(evil)).toBe(false);
    expect(sha256(fs.readFileSync(t.site))).toBe(siteSha);
    expect(calls()).toEqual([]);
  });
});

describe('the engine API', () => {
  it('refuses hostile names (NUL included) before any stage or file', async () => {
    const engine = await createAutoSsl(await loadConfig({ file: writeConfig('base', base) }));
    // one hostile name refuses the whole call, before recovery, the state database or any domain runs
    for (const names of [['a\u0000.com'], ['ok.example.test', 'a.com\n}'], ['../x']]) {
      await expect(engine.issue(names, { dryRun: true })).rejects.toMatchObject({ code: 'DOMAIN_INVALID' });
      await expect(engine.issue(names)).rejects.toMatchObject({ code: 'DOMAIN_INVALID' });
    }
    await expect(engine.preview('a\u0000.com')).rejects.toMatchObject({ code: 'DOMAIN_INVALID' });
    await expect(engine.check(['$host'])).rejects.toMatchObject({ code: 'DOMAIN_INVALID' });
    await engine.close();
    expectUntouched('engine API');
  });
});
