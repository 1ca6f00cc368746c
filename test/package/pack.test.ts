/**
 * The published package, as a user gets it: `npm pack`, installed into a fresh folder, `import ... from 'autossl'`
 * in ESM, and a consumer's TypeScript typechecked against the published types (and a wrong use refused by them).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseJson } from '../helpers/json.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const TSC = path.join(ROOT, 'node_modules', '.bin', 'tsc');
let consumer: string;
let tarball: string;
let packDir: string;

const GOOD = `import { AutoSslError, STAGE, createAutoSsl, definePlugin, loadConfig, type AutoSsl, type DomainResult, type ErrorCode, type Notification, type PluginApi, type VhostEdit } from 'autossl';

interface Options { value: string }

export default definePlugin<Options>({
  name: 'consumer',
  options: (raw) => ({ value: String(raw.value ?? 'x') }),
  apply(hooks, api: PluginApi<Options>) {
    hooks.vhost.tapPromise({ name: 'consumer', stage: STAGE.USER }, async (edit: VhostEdit, ctx) => {
      edit.https._add('add_header', \`X-Consumer "\${api.options.value}" always\`);
      if (edit.current.https.some((b) => b.directives.some((d) => d.name === 'add_header' && d.args[0] === 'X-Old'))) edit.remove('https', 'add_header', 'X-Old');
      if (ctx.plan.names.length > 5) api.log('many names', ctx);
      return edit;
    });
    hooks.notify.tapPromise('consumer', async (n: Notification) => { void n.kind; });
    hooks.beforeRenew.tapPromise('consumer', async (e) => { void e.lineages.map((l) => l.due); });
    api.undo.handle('thing', async (payload) => { void payload; });
  },
});

export async function run(): Promise<DomainResult[]> {
  const engine: AutoSsl = await createAutoSsl(await loadConfig());
  const results = await engine.issue(['example.com'], { dryRun: true });
  await engine.close();
  return results;
}

export const code: ErrorCode = 'DNS_MISMATCH';
export const error = new AutoSslError('TIMEOUT', 'too slow');
`;

const BAD = `import { definePlugin, type ErrorCode } from 'autossl';
export const code: ErrorCode = 'NOT_A_CODE';
export default definePlugin({ name: 'bad', apply(hooks) { hooks.vhost.tapPromise('bad', async () => 42); } });
`;

beforeAll(async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'autossl-pack-'));
  const pack = await execa('npm', ['pack', '--ignore-scripts', '--pack-destination', dir], { cwd: ROOT });
  tarball = path.join(dir, pack.stdout.trim().split('\n').pop()!);
  packDir = dir;
  consumer = path.join(dir, 'consumer');
  fs.mkdirSync(consumer);
  fs.writeFileSync(path.join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  const typesNode = JSON.parse(fs.readFileSync(path.join(ROOT, 'node_modules/@types/node/package.json'), 'utf8')).version as string;
  // --ignore-scripts: importing needs no native build (the SQLite binding loads on first use)
  await execa('npm', ['install', '--prefer-offline', '--ignore-scripts', '--no-audit', '--no-fund', tarball, `@types/node@${typesNode}`], { cwd: consumer });
  fs.writeFileSync(
    path.join(consumer, 'tsconfig.json'),
    JSON.stringify({ compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, types: ['node'] } }),
  );
}, 180_000);

describe('the published package', () => {
  it('installs globally from the tarball as the README says (npm 11: --allow-scripts for the SQLite binding), and the installed command runs', async () => {
    const prefix = path.join(packDir, 'global');
    const install = await execa(
      'npm',
      ['install', '-g', '--prefix', prefix, '--allow-scripts=better-sqlite3', '--prefer-offline', '--no-audit', '--no-fund', tarball],
      { reject: false },
    );
    expect(install.exitCode, install.stderr.slice(-2000)).toBe(0);
    expect(install.stderr).not.toContain('EBADENGINE'); // every dependency supports this Node
    const bin = path.join(prefix, 'bin', 'autossl');
    const version = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version as string;
    expect((await execa(bin, ['--version'])).stdout.trim()).toBe(version);
    // status against a sandbox config: the state database (the native binding) and a lineage certbot would list
    const sandbox = path.join(packDir, 'sandbox');
    const { writeLineage } = await import('../helpers/certs.js');
    await writeLineage(path.join(sandbox, 'le'), 'installed.example.test', 90, 50);
    fs.writeFileSync(path.join(sandbox, 'nginx.conf'), 'events {}\nhttp {}\n');
    fs.writeFileSync(
      path.join(sandbox, 'autossl.config.json'),
      JSON.stringify({
        nginx: { config: path.join(sandbox, 'nginx.conf') },
        certbot: { configDir: path.join(sandbox, 'le') },
        stateDir: path.join(sandbox, 'state'),
      }),
    );
    const status = await execa(bin, ['status', '--json', '--config', path.join(sandbox, 'autossl.config.json')], { reject: false });
    expect(status.exitCode, status.stderr).toBe(0);
    expect(JSON.parse(status.stdout).certificates).toEqual([expect.objectContaining({ lineage: 'installed.example.test', state: 'ok' })]);
    // the shipped plugins and the units come with it
    for (const f of ['dist/plugins/cloudflare-proxy/index.js', 'dist/plugins/cloudflare-dns/index.js', 'systemd/autossl-agent.service', 'docs/openapi.json'])
      expect(fs.existsSync(path.join(prefix, 'lib', 'node_modules', 'autossl', f)), f).toBe(true);
  }, 300_000);

  it('imports from "autossl" in ESM: the engine factory, config loading, definePlugin, the hooks table and errors', async () => {
    const script = `import * as a from 'autossl';
const want = ['createAutoSsl', 'loadConfig', 'validateConfig', 'definePlugin', 'STAGE', 'HOOK_ORDER', 'createHooks', 'AutoSslError', 'ERROR_CODES', 'normalizeDomain'];
const missing = want.filter((k) => !(k in a));
const plugin = a.definePlugin({ name: 'p', apply() {} })({});
const config = a.validateConfig({});
console.log(JSON.stringify({ missing, plugin: plugin.name, order: a.HOOK_ORDER.join(','), code: new a.AutoSslError('TIMEOUT', 'x').code, keyType: config.certbot.keyType }));`;
    const run = await execa('node', ['--input-type=module', '-e', script], { cwd: consumer });
    expect(parseJson(run.stdout)).toEqual({
      missing: [],
      plugin: 'p',
      order: 'plan,preflight,findings,challenge,beforeIssue,issue,vhost,validate,reload,verify,finally',
      code: 'TIMEOUT',
      keyType: 'ecdsa',
    });
  });

  it('a consumer .ts file typechecks against the published types, and a wrong one does not', async () => {
    fs.writeFileSync(path.join(consumer, 'good.ts'), GOOD);
    const good = await execa(TSC, ['-p', 'tsconfig.json'], { cwd: consumer, reject: false });
    expect(good.stdout + good.stderr).toBe('');
    expect(good.exitCode).toBe(0);
    fs.writeFileSync(path.join(consumer, 'bad.ts'), BAD);
    const bad = await execa(TSC, ['-p', 'tsconfig.json'], { cwd: consumer, reject: false });
    fs.rmSync(path.join(consumer, 'bad.ts'));
    expect(bad.exitCode).not.toBe(0);
    expect(bad.stdout).toContain(`bad.ts(2,14): error TS2322: Type '"NOT_A_CODE"' is not assignable to type`);
    expect(bad.stdout).toMatch(/bad\.ts\(3,\d+\): error TS2322: Type 'Promise<number>' is not assignable to type 'Promise<VhostEdit>'/); // a vhost tap returns the edit
  });
});
