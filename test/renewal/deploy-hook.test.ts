/**
 * The deploy hook refuses hostile RENEWED_LINEAGE / RENEWED_DOMAINS values (`..`, outside the live dir, a
 * symlink leading out, injection characters in a domain) and touches nothing: no vhost byte, no state row,
 * no nginx reload.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BINARIES, stopNginx } from '../../scripts/sandbox/rig.js';
import { sha256 } from '../../src/nginx/transaction.js';
import { makeTree, type NginxSandboxTree } from '../helpers/nginx-fixture.js';
import { writeLineage } from '../helpers/certs.js';
import { servedEventually } from '../helpers/served.js';
import { parseJson } from '../helpers/json.js';

const CLI = path.resolve(import.meta.dirname, '../../dist/src/cli.js');
let t: NginxSandboxTree;
let le: string;
let configFile: string;

beforeAll(async () => {
  t = await makeTree(
    `server {\n    listen 127.0.0.1:80;\n    listen 127.0.0.1:443 ssl;\n    server_name hook.example.test;\n    ssl_certificate {{DIR}}/old/fullchain.pem;\n    ssl_certificate_key {{DIR}}/old/privkey.pem;\n}\n`,
  );
  le = path.join(t.dir, 'le');
  await writeLineage(le, 'hook.example.test', 90, 89);
  // a lineage-looking directory that is a symlink to somewhere else, and one whose files lead outside
  fs.mkdirSync(path.join(t.dir, 'elsewhere'), { recursive: true });
  fs.symlinkSync(path.join(t.dir, 'elsewhere'), path.join(le, 'live', 'evil-dir.test'));
  fs.mkdirSync(path.join(le, 'live', 'evil-files.test'));
  for (const f of ['cert', 'chain', 'fullchain', 'privkey']) fs.symlinkSync('/etc/passwd', path.join(le, 'live', 'evil-files.test', `${f}.pem`));
  configFile = path.join(t.dir, 'autossl.config.json');
  fs.writeFileSync(
    configFile,
    JSON.stringify({
      certbot: { configDir: le, workDir: path.join(t.dir, 'le-work'), logsDir: path.join(t.dir, 'le-logs') },
      // a real reload of the test's own nginx, counted
      nginx: {
        binary: BINARIES.nginx,
        config: t.main,
        extraArgs: nginxArgs(),
        reloadCommand: [
          '/bin/sh',
          '-c',
          `echo reloaded >> ${path.join(t.dir, 'reloads')} && exec ${BINARIES.nginx} ${nginxArgs().join(' ')} -c ${t.main} -s reload`,
        ],
      },
      stateDir: path.join(t.dir, 'state'),
    }),
  );
  await execa(BINARIES.nginx, [...nginxArgs(), '-c', t.main]);
});

afterAll(async () => {
  if (t) await stopNginx(path.join(t.dir, 'nginx.pid'));
});

const nginxArgs = (): string[] => ['-p', t.dir, '-e', path.join(t.dir, 'error.log')];

function hook(env: Record<string, string>) {
  return execa('node', [CLI, 'deploy-hook', '--json', '--config', configFile], { reject: false, env, extendEnv: false });
}

describe('deploy hook', () => {
  const live = () => path.join(le, 'live');
  const cases: Array<[string, () => Record<string, string>]> = [
    ['a ".." in the lineage', () => ({ RENEWED_LINEAGE: `${live()}/../live/hook.example.test`, RENEWED_DOMAINS: 'hook.example.test' })],
    ['a lineage outside the live dir', () => ({ RENEWED_LINEAGE: path.join(t.dir, 'old'), RENEWED_DOMAINS: 'hook.example.test' })],
    ['/etc', () => ({ RENEWED_LINEAGE: '/etc', RENEWED_DOMAINS: 'hook.example.test' })],
    ['a lineage that is a symlink leading out', () => ({ RENEWED_LINEAGE: `${live()}/evil-dir.test`, RENEWED_DOMAINS: 'evil-dir.test' })],
    ['lineage files that are symlinks leading out', () => ({ RENEWED_LINEAGE: `${live()}/evil-files.test`, RENEWED_DOMAINS: 'evil-files.test' })],
    ['a relative lineage', () => ({ RENEWED_LINEAGE: 'live/hook.example.test', RENEWED_DOMAINS: 'hook.example.test' })],
    ['a newline in the lineage', () => ({ RENEWED_LINEAGE: `${live()}/hook.example.test\n`, RENEWED_DOMAINS: 'hook.example.test' })],
    ['a ";" in a domain', () => ({ RENEWED_LINEAGE: `${live()}/hook.example.test`, RENEWED_DOMAINS: 'hook.example.test;' })],
    ['a "}" and newline in a domain', () => ({ RENEWED_LINEAGE: `${live()}/hook.example.test`, RENEWED_DOMAINS: 'hook.example.test\n}' })],
    ['"$host" as a domain', () => ({ RENEWED_LINEAGE: `${live()}/hook.example.test`, RENEWED_DOMAINS: '$host' })],
    ['a command substitution', () => ({ RENEWED_LINEAGE: `${live()}/hook.example.test`, RENEWED_DOMAINS: '`id`.example.test' })],
    ['no domains', () => ({ RENEWED_LINEAGE: `${live()}/hook.example.test`, RENEWED_DOMAINS: '' })],
  ];

  it.each(cases)('refuses %s and touches nothing', async (_label, env) => {
    const before = sha256(fs.readFileSync(t.site));
    const run = await hook(env());
    expect(run.exitCode).toBe(2);
    const out = parseJson(run.stdout) as { error: { code: string; message: string } };
    expect(out.error.message).toMatch(/Refusing the deploy hook|Invalid domain/);
    expect(sha256(fs.readFileSync(t.site))).toBe(before);
    expect(fs.existsSync(path.join(t.dir, 'reloads'))).toBe(false);
    expect(fs.existsSync(path.join(t.dir, 'state', 'state.db'))).toBe(false); // not even the state store was opened
  });

  it('a genuine call re-points the vhost at the lineage, validates and reloads once', async () => {
    const run = await hook({ RENEWED_LINEAGE: `${live()}/hook.example.test`, RENEWED_DOMAINS: 'hook.example.test' });
    const out = parseJson(run.stdout) as { lineage: string; changedFiles: string[]; ok: boolean; serial: string };
    expect(run.exitCode, run.stdout + run.stderr).toBe(0);
    expect(out.ok).toBe(true);
    expect(out.lineage).toBe('hook.example.test');
    // nginx serves the lineage's certificate now
    expect(await servedEventually('hook.example.test', out.serial)).toBe(out.serial);
    expect(out.changedFiles).toEqual([t.site]);
    expect(fs.readFileSync(t.site, 'utf8')).toContain(`ssl_certificate ${live()}/hook.example.test/fullchain.pem;`);
    expect(fs.readFileSync(path.join(t.dir, 'reloads'), 'utf8')).toBe('reloaded\n');
    await expect(t.control.test()).resolves.toBeUndefined();
    // idempotent: a second call changes no file (and reloads, since certbot renewed the files behind the paths)
    const second = await hook({ RENEWED_LINEAGE: `${live()}/hook.example.test`, RENEWED_DOMAINS: 'hook.example.test' });
    expect(second.exitCode, second.stdout + second.stderr).toBe(0);
    const again = parseJson(second.stdout) as { changedFiles: string[]; ok: boolean };
    expect(again.ok).toBe(true);
    expect(again.changedFiles).toEqual([]);
    expect(fs.readFileSync(path.join(t.dir, 'reloads'), 'utf8')).toBe('reloaded\nreloaded\n');
  });
});
